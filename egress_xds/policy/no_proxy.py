"""NO_PROXY semantics, following Go's `golang.org/x/net/http/httpproxy` (what Kubernetes components use).

See README "NO_PROXY semantics" (docs/no_proxy.md) for the table of differences to curl, Python and wget.

In short: entries are comma-separated, trimmed, case-insensitive, trailing dots ignored, empties skipped.

* `*` (anywhere in the list) sends everything direct.
* `example.com` matches the domain and its subdomains; `.example.com` and `*.example.com` subdomains only.
* `10.1.2.3`, `2001:db8::1`, `[2001:db8::1]` match that destination IP; `10.0.0.0/8`, `fd00::/8` a range.
* `example.com:8443`, `10.1.2.3:8443`, `[2001:db8::1]:8443` only match that destination port.

Deliberate differences to Go (all stricter or more explicit, none loosen a Go rule):

* Go ignores malformed entries; here each one becomes a `NoProxyError` (the valid entries are kept).
  Rejected: bad CIDRs, a CIDR with a port (`10.0.0.0/8:443`, which Go silently never matches), ports
  outside 1-65535, `@` (`user@host`), empty labels (`a..b`), characters not allowed in a host name, `*` other
  than alone or as a leading `*.`, URLs (`http://...`), IP zone indexes (`fe80::1%eth0`), names whose last label is all
  digits (an invalid IP such as `10.0.0.256`, or an IP "prefix" such as `10.0.`), `*` with a port, and an
  unbracketed IPv6 address with a port.
* Trailing dots are ignored (in the entry and in the host); Go compares them literally.
* IP/CIDR entries are tested against the destination IP Envoy sees, not only against IP-literal host names.
* Loopback addresses and `localhost` are not special here; the translator always sends them direct.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from egress_xds.redact import redact_value

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class DomainPattern:
    """A domain match: the name itself (`apex`), its subdomains, or both.

    `suffix` is lower case with no leading dot or `*.` and no trailing dot, e.g. "example.com".
    """

    suffix: str
    apex: bool
    subdomains: bool

    @classmethod
    def exact(cls, name: str) -> DomainPattern:
        return cls(normalize_host(name), apex=True, subdomains=False)

    @classmethod
    def subdomains_of(cls, name: str) -> DomainPattern:
        return cls(normalize_host(name), apex=False, subdomains=True)

    @classmethod
    def domain_and_subdomains(cls, name: str) -> DomainPattern:
        return cls(normalize_host(name), apex=True, subdomains=True)

    def matches(self, host: str) -> bool:
        host = normalize_host(host)
        if self.apex and host == self.suffix:
            return True
        return self.subdomains and host.endswith("." + self.suffix)

    def __str__(self) -> str:
        if self.apex and self.subdomains:
            return f"{self.suffix} (and subdomains)"
        return self.suffix if self.apex else f"*.{self.suffix}"


def normalize_host(host: str) -> str:
    """Lower case, surrounding whitespace and trailing dots removed (`Example.COM.` -> `example.com`)."""
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True)
class NoProxyEntry:
    """One valid NO_PROXY entry. Exactly one of `domain` and `network` is set, except for `EVERYTHING`."""

    raw: str  # the entry as written (trimmed)
    index: int  # 0-based position among the non-empty entries of the list
    domain: DomainPattern | None
    network: IPNetwork | None  # an IP literal becomes a /32 or /128
    port: int | None  # host:port restricts the entry to that destination port

    def __str__(self) -> str:
        return self.raw


@dataclass(frozen=True)
class NoProxyError:
    """A NO_PROXY entry that was rejected; it is reported, never silently dropped."""

    index: int  # 0-based position among the non-empty entries of the list
    raw: str
    message: str  # what is wrong and what was expected

    def __str__(self) -> str:
        return f"NO_PROXY entry {self.index} {redact_value(self.raw)!r}: {self.message}"


# What `NoProxy.match` returns when only a `*` entry applies. Its index is -1 because it stands for every `*`
# entry of the list (there may be several, and a NoProxy can also be built with `everything=True` directly).
EVERYTHING = NoProxyEntry(raw="*", index=-1, domain=None, network=None, port=None)


@dataclass(frozen=True)
class NoProxy:
    """A parsed NO_PROXY list. `*` entries are not in `entries`; they set `everything`."""

    entries: tuple[NoProxyEntry, ...] = ()
    everything: bool = False  # a `*` entry anywhere

    def match(self, host: str | None, ip: IPAddress | None, port: int | None) -> NoProxyEntry | None:
        """The first entry that sends this destination direct, `EVERYTHING` for `*`, or None (use the proxy).

        `host` is the name visible on the connection (TLS SNI or HTTP Host, without port), None for raw TCP;
        domain entries only apply to it. An IP literal given as `host` (`10.1.2.3`, `[::1]`) is treated as an
        IP. `ip` is the destination IP, None when unknown; IP/CIDR entries only apply to IPs. An entry with a
        port only matches that `port` (never when `port` is None). IPv4-mapped IPv6 addresses also match as
        IPv4. Entries are tried in list order; `*` is only reported when no written entry matched.
        """
        name, host_ip = _split_host(host)
        ips = _ip_candidates(ip, host_ip)
        for entry in self.entries:
            if entry.port is not None and entry.port != port:
                continue
            if entry.domain is not None and name is not None and entry.domain.matches(name):
                return entry
            if entry.network is not None and any(address in entry.network for address in ips):
                return entry
        return EVERYTHING if self.everything else None

    @property
    def domains(self) -> tuple[NoProxyEntry, ...]:
        """Entries with a domain (applicable only where a name is visible)."""
        return tuple(entry for entry in self.entries if entry.domain is not None)

    @property
    def networks(self) -> tuple[NoProxyEntry, ...]:
        """Entries with an IP network (IP literals are /32 or /128)."""
        return tuple(entry for entry in self.entries if entry.network is not None)


def parse_no_proxy(value: str | Sequence[str]) -> tuple[NoProxy, list[NoProxyError]]:
    """Parse a NO_PROXY value: a comma-separated string, or a list whose items may also be comma-separated.

    Returns the valid entries and one `NoProxyError` per rejected entry. Empty entries are skipped without an
    error and do not count for `index`.
    """
    items = [value] if isinstance(value, str) else list(value)
    entries: list[NoProxyEntry] = []
    errors: list[NoProxyError] = []
    everything = False
    index = 0
    for item in items:
        for part in item.split(","):
            raw = part.strip()
            if not raw:
                continue
            if raw == "*":
                everything = True
            else:
                try:
                    entries.append(_parse_entry(raw, index))
                except _EntryError as exc:
                    errors.append(NoProxyError(index=index, raw=raw, message=str(exc)))
            index += 1
    return NoProxy(entries=tuple(entries), everything=everything), errors


# --- parsing ------------------------------------------------------------------------------------------------


class _EntryError(ValueError):
    """Raised while parsing one entry; becomes a NoProxyError."""


_PORT_RE = re.compile(r"[0-9]+")
_LABEL_RE = re.compile(r"[a-z0-9_-]+")
_BAD_CHAR_RE = re.compile(r"[^a-z0-9_.-]")
_EXPECTED = "expected HOST, .DOMAIN, *.DOMAIN, IP, CIDR, HOST:PORT, IPv4:PORT or [IPv6]:PORT"


def _parse_entry(raw: str, index: int) -> NoProxyEntry:
    text = raw.lower()
    if "://" in text:
        raise _EntryError(f"a URL is not allowed, {_EXPECTED} (drop the scheme and any path)")
    if "@" in text:  # checked first: no message below may quote a part of `user:password@host`
        raise _EntryError(f"'@' is not allowed (no credentials in NO_PROXY), {_EXPECTED}")
    if text.startswith("["):
        bracketed, bracketed_port = _parse_bracketed(text)
        return NoProxyEntry(raw, index, None, _host_network(bracketed), bracketed_port)
    if "/" in text:
        return NoProxyEntry(raw, index, None, _parse_cidr(text), None)
    if text.count(":") >= 2:
        return NoProxyEntry(raw, index, None, _host_network(_parse_bare_ipv6(text)), None)
    port: int | None = None
    host = text
    if ":" in text:
        host, _, port_text = text.partition(":")
        if not host:
            shown = f" ':{port_text}'" if _PORT_RE.fullmatch(port_text) else ""
            raise _EntryError(f"missing host before the port{shown}, {_EXPECTED}")
        if host == "*":
            raise _EntryError("'*' cannot have a port; '*' alone sends everything direct")
        port = _parse_port(port_text)
    address = _parse_ip(host)
    if address is not None:
        return NoProxyEntry(raw, index, None, _host_network(address), port)
    return NoProxyEntry(raw, index, _parse_domain(host), None, port)


def _parse_bracketed(text: str) -> tuple[IPAddress, int | None]:
    """`[IPv6]` or `[IPv6]:PORT` (an IPv4 address in brackets is accepted too)."""
    inner, sep, rest = text[1:].partition("]")
    if not sep:
        raise _EntryError("missing ']' (expected [IPv6] or [IPv6]:PORT)")
    if "/" in inner:
        raise _EntryError("a CIDR must not be bracketed (write e.g. fd00::/8 without brackets, and no port)")
    address = _parse_ip(inner)
    if address is None:
        raise _EntryError(f"{inner!r} is not an IP address (expected [IPv6] or [IPv6]:PORT)")
    if not rest:
        return address, None
    if not rest.startswith(":"):
        raise _EntryError(f"unexpected {rest!r} after ']' (expected [IPv6] or [IPv6]:PORT)")
    return address, _parse_port(rest[1:])


def _parse_cidr(text: str) -> IPNetwork:
    address_text, _, prefix_text = text.partition("/")
    if ":" in prefix_text:
        raise _EntryError(
            "a CIDR cannot have a port (expected ADDRESS/PREFIX such as 10.0.0.0/8; "
            "use IP:PORT entries for single addresses)"
        )
    address = _parse_ip(address_text, unmap=False)
    if address is None:
        raise _EntryError(
            f"{address_text!r} is not an IP address (expected a CIDR ADDRESS/PREFIX such as 10.0.0.0/8 "
            "or fd00::/8; paths are not allowed)"
        )
    if not _PORT_RE.fullmatch(prefix_text):
        raise _EntryError(f"prefix length {prefix_text!r} is not a number (expected e.g. 10.0.0.0/8)")
    prefix = int(prefix_text)
    if prefix > address.max_prefixlen:
        raise _EntryError(f"prefix length {prefix} out of range 0-{address.max_prefixlen} for IPv{address.version}")
    # Host bits are masked off, as Go's net.ParseCIDR does: 10.1.2.3/8 means 10.0.0.0/8.
    return ipaddress.ip_network((address, prefix), strict=False)


def _parse_bare_ipv6(text: str) -> IPAddress:
    address = _parse_ip(text)
    if address is not None:
        return address
    head, _, tail = text.rpartition(":")
    if _PORT_RE.fullmatch(tail) and _parse_ip(head) is not None:
        raise _EntryError(f"an IPv6 address with a port must be bracketed, e.g. [{head}]:{tail}")
    raise _EntryError(f"not a valid IPv6 address, and a host name cannot contain ':' twice ({_EXPECTED})")


def _parse_port(text: str) -> int:
    if not text:
        raise _EntryError("empty port after ':' (expected a port 1-65535)")
    if not _PORT_RE.fullmatch(text):
        # not repeated: after a ':' may stand a password (`user:pw@host` split at a ',' inside the password)
        raise _EntryError("the port is not a number (expected a port 1-65535)")
    port = int(text)
    if not 1 <= port <= 65535:
        raise _EntryError(f"port {port} out of range 1-65535")
    return port


def _parse_ip(text: str, *, unmap: bool = True) -> IPAddress | None:
    """An IP literal, or None when `text` is not one.

    With `unmap`, an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) becomes IPv4, as Go compares them equal.
    """
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise _EntryError("an IPv6 zone index ('%...') is not supported; write the address without it")
        if unmap and address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def _host_network(address: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(address)


def _parse_domain(text: str) -> DomainPattern:
    subdomains_only = False
    if text.startswith("*."):
        subdomains_only, text = True, text[2:]
    elif text.startswith("."):
        subdomains_only, text = True, text[1:]
    if text.endswith("."):
        text = text[:-1]
    if "*" in text:
        raise _EntryError("'*' is only allowed alone or as a leading '*.' (e.g. *.example.com)")
    if not text:
        raise _EntryError(f"no domain name ({_EXPECTED})")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise _EntryError(f"not a valid internationalized domain name ({exc})") from None
    labels = text.split(".")
    if any(not label for label in labels):
        raise _EntryError("empty label (two dots in a row, or a leading dot after '*.' or '.')")
    bad = _BAD_CHAR_RE.search(text)
    if bad is not None:
        raise _EntryError(
            f"character {bad.group()!r} is not allowed in a host name (allowed: letters, digits, '-', '_', '.')"
        )
    if any(len(label) > 63 for label in labels):
        raise _EntryError("a label is longer than 63 characters")
    if len(text) > 253:
        raise _EntryError("the name is longer than 253 characters")
    if labels[-1].isdigit():
        raise _EntryError(
            "not a valid IP address, and a name ending in a numeric label is not a domain "
            "(for a range write a CIDR such as 10.0.0.0/8)"
        )
    return DomainPattern(text, apex=not subdomains_only, subdomains=True)


# --- matching -----------------------------------------------------------------------------------------------


def _split_host(host: str | None) -> tuple[str | None, IPAddress | None]:
    """(normalized name, None) for a name, (None, ip) for an IP literal, (None, None) for no host."""
    if host is None:
        return None, None
    text = host.strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    try:
        return None, ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        pass
    name = normalize_host(text)
    if not name:
        return None, None
    if not name.isascii():
        # A name that is not a valid IDN stays as written, and so matches no (ASCII) entry.
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii")
    return name, None


def _ip_candidates(*addresses: IPAddress | None) -> tuple[IPAddress, ...]:
    found: list[IPAddress] = []
    for address in addresses:
        if address is None:
            continue
        found.append(address)
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
    return tuple(found)

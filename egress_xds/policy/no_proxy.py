"""NO_PROXY semantics, following Go's `golang.org/x/net/http/httpproxy` (what Kubernetes components use).

See README "NO_PROXY semantics" (docs/no_proxy.md) for the table of differences to curl, Python and wget.

In short: entries are comma-separated, trimmed, case-insensitive, trailing dots ignored, empties skipped.

* `*` (anywhere in the list) sends everything direct.
* `example.com` matches the domain and its subdomains; `.example.com` and `*.example.com` subdomains only.
* `10.1.2.3`, `2001:db8::1`, `[2001:db8::1]` match that destination IP; `10.0.0.0/8`, `fd00::/8` a range.
* `example.com:8443`, `10.1.2.3:8443`, `[2001:db8::1]:8443` only match that destination port.

Deliberate differences to Go (all stricter or more explicit, none loosen a Go rule):

* Go ignores malformed entries; here each one becomes a `RejectedNoProxyEntry` (the valid entries are kept).
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
from collections.abc import Sequence
from dataclasses import dataclass

from egress_xds.policy.destinations import (
    BareName,
    DomainPattern,
    IPAddress,
    IPNetwork,
    normalize_host,
    parse_domain_pattern,
    parse_ip,
    parse_network,
    parse_port,
)
from egress_xds.redact import redact_value


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
class RejectedNoProxyEntry:
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


def parse_no_proxy(value: str | Sequence[str]) -> tuple[NoProxy, list[RejectedNoProxyEntry]]:
    """Parse a NO_PROXY value: a comma-separated string, or a list whose items may also be comma-separated.

    Returns the valid entries and one `RejectedNoProxyEntry` per rejected entry. Empty entries are skipped without an
    error and do not count for `index`.
    """
    items = [value] if isinstance(value, str) else list(value)
    entries: list[NoProxyEntry] = []
    errors: list[RejectedNoProxyEntry] = []
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
                except ValueError as exc:  # _EntryError, or a DestinationError of the form
                    errors.append(RejectedNoProxyEntry(index=index, raw=raw, message=str(exc)))
            index += 1
    return NoProxy(entries=tuple(entries), everything=everything), errors


# --- parsing ------------------------------------------------------------------------------------------------
# The forms (host names, IPs, CIDRs, ports, domain patterns) are read by `destinations`, as everywhere else; what
# is only NO_PROXY's is here: which forms an entry may take, brackets, and what is refused outright.


class _EntryError(ValueError):
    """Raised while parsing one entry; becomes a RejectedNoProxyEntry."""


_EXPECTED = "expected HOST, .DOMAIN, *.DOMAIN, IP, CIDR, HOST:PORT, IPv4:PORT or [IPv6]:PORT"


def _parse_entry(raw: str, index: int) -> NoProxyEntry:
    text = raw.lower()
    if "://" in text:
        raise _EntryError(f"a URL is not allowed, {_EXPECTED} (drop the scheme and any path)")
    if "@" in text:  # checked first: no message below may quote a part of `user:password@host`
        raise _EntryError(f"'@' is not allowed (no credentials in NO_PROXY), {_EXPECTED}")
    if text.startswith("["):
        bracketed, bracketed_port = _parse_bracketed(text)
        return NoProxyEntry(raw, index, None, ipaddress.ip_network(bracketed), bracketed_port)
    if "/" in text:
        return NoProxyEntry(raw, index, None, parse_network(text), None)
    if text.count(":") >= 2:
        return NoProxyEntry(raw, index, None, ipaddress.ip_network(_parse_bare_ipv6(text)), None)
    port: int | None = None
    host = text
    if ":" in text:
        host, _, port_text = text.partition(":")
        if not host:
            shown = f" ':{port_text}'" if _is_number(port_text) else ""
            raise _EntryError(f"missing host before the port{shown}, {_EXPECTED}")
        if host == "*":
            raise _EntryError("'*' cannot have a port; '*' alone sends everything direct")
        # not quoted: after a ':' may stand a password (`user:pw@host` split at a ',' inside the password)
        port = parse_port(port_text, quote=_is_number(port_text))
    address = parse_ip(host)
    if address is not None:
        return NoProxyEntry(raw, index, None, ipaddress.ip_network(address), port)
    return NoProxyEntry(raw, index, parse_domain_pattern(host, BareName.AND_SUBDOMAINS), None, port)


def _parse_bracketed(text: str) -> tuple[IPAddress, int | None]:
    """`[IPv6]` or `[IPv6]:PORT` (an IPv4 address in brackets is accepted too)."""
    inner, sep, rest = text[1:].partition("]")
    if not sep:
        raise _EntryError("missing ']' (expected [IPv6] or [IPv6]:PORT)")
    if "/" in inner:
        raise _EntryError("a CIDR must not be bracketed (write e.g. fd00::/8 without brackets, and no port)")
    address = parse_ip(inner)
    if address is None:
        raise _EntryError(f"{inner!r} is not an IP address (expected [IPv6] or [IPv6]:PORT)")
    if not rest:
        return address, None
    if not rest.startswith(":"):
        raise _EntryError(f"unexpected {rest!r} after ']' (expected [IPv6] or [IPv6]:PORT)")
    return address, parse_port(rest[1:], quote=_is_number(rest[1:]))


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _parse_bare_ipv6(text: str) -> IPAddress:
    address = parse_ip(text)
    if address is not None:
        return address
    head, _, tail = text.rpartition(":")
    if _is_number(tail) and parse_ip(head) is not None:
        raise _EntryError(f"an IPv6 address with a port must be bracketed, e.g. [{head}]:{tail}")
    raise _EntryError(f"not a valid IPv6 address, and a host name cannot contain ':' twice ({_EXPECTED})")


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

"""The destination grammar: how every surface reads a host name, a domain pattern, an IP address, a CIDR and a
port — rules, NO_PROXY, proxy URLs, standalone listeners and targets, listen flags, `explain`, the Kubernetes
conversion (which hands its values to the same parser). One function per form: a change to how a form is read is
made here, and every surface follows (tests/unit/test_destinations.py shows each surface).

The forms, and the one behaviour of each:

* **host name**: letters, digits, `-` and `_`; labels of 1-63 characters that neither start nor end with `-`, at
  most 253 in all; lower-cased, a trailing dot dropped; a non-ASCII name is converted to its IDNA (`xn--`) form.
  A name whose last label is all digits is refused: it is a mistyped IP address (`10.0.0.256`) or a prefix
  (`10.0.`), never a domain.
* **IP address**: IPv4 or IPv6 (brackets are the caller's business); no zone index (`%eth0`). Where an address
  is matched, an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) counts as its IPv4 address.
* **CIDR**: `ADDRESS/PREFIX`. Host bits are cleared, as Go's `net.ParseCIDR` (and so every NO_PROXY reader in
  Kubernetes) does: `10.1.2.3/8` means `10.0.0.0/8`, and `host_bits_note` gives the sentence `check` prints.
* **port**: 1-65535, written in ASCII digits (or an integer in YAML).
* **domain pattern**: `example.com`, `.example.com` or `*.example.com`. A leading `.` or `*.` means subdomains
  only; what a bare name means is the caller's (rules: exactly that name; NO_PROXY: the name and its
  subdomains). `*` anywhere else is refused.

Errors are `ValueError` with a message for the user that never repeats a value which may be part of a password
(a port position after `user:` in a URL cut short is not quoted when the caller says so).
"""

from __future__ import annotations

import enum
import ipaddress
import re
from dataclasses import dataclass

from egress_xds.policy.errors import describe
from egress_xds.redact import redact_value

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_NAME_LENGTH = 253
MAX_LABEL_LENGTH = 63
_LABEL_CHARACTERS = re.compile(r"[^a-z0-9_.-]")
_DIGITS = re.compile(r"[0-9]+")


class DestinationError(ValueError):
    """A host, address, network or port that cannot be read; the message is written for the user."""


# --- host names and addresses -----------------------------------------------------------------------------------


def normalize_host(host: str) -> str:
    """Lower case, surrounding whitespace and trailing dots removed (`Example.COM.` -> `example.com`)."""
    return host.strip().rstrip(".").lower()


def is_ip_literal(host: str) -> bool:
    """True for `10.0.0.1` or `::1`, false for a host name."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def parse_ip(text: str, *, unmap: bool = True) -> IPAddress | None:
    """An IP literal, or None when `text` is not one. Raises for an IPv6 zone index. With `unmap`, an IPv4-mapped
    IPv6 address becomes IPv4 (Go compares them equal)."""
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise DestinationError("an IPv6 zone index ('%...') is not supported; write the address without it")
        if unmap and address.ipv4_mapped is not None:
            return address.ipv4_mapped
    return address


def parse_hostname(text: str) -> str:
    """A host name in its normal form (see the module docstring); raises DestinationError."""
    name = text.strip().lower().removesuffix(".")  # one trailing dot is the DNS root; two are an empty label
    if not name:
        raise DestinationError("empty host name")
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise DestinationError(f"not a valid internationalized domain name ({exc})") from None
    labels = name.split(".")
    if any(not label for label in labels):
        raise DestinationError("empty label (two dots in a row, or a leading dot after '*.' or '.')")
    bad = _LABEL_CHARACTERS.search(name)
    if bad is not None:
        raise DestinationError(
            f"character {bad.group()!r} is not allowed in a host name (allowed: letters, digits, '-', '_', '.')"
        )
    if any(len(label) > MAX_LABEL_LENGTH for label in labels):
        raise DestinationError(f"a label is longer than {MAX_LABEL_LENGTH} characters")
    if any(label.startswith("-") or label.endswith("-") for label in labels):
        raise DestinationError("a label cannot start or end with '-'")
    if len(name) > MAX_NAME_LENGTH:
        raise DestinationError(f"the name is longer than {MAX_NAME_LENGTH} characters")
    if labels[-1].isdigit():
        raise DestinationError(
            "not a valid IP address, and a name ending in a numeric label is not a domain "
            "(for a range write a CIDR such as 10.0.0.0/8)"
        )
    return name


def parse_host(text: str) -> str:
    """A host name (normal form) or an IP literal (normalized, e.g. `2001:db8::1`); raises DestinationError
    naming the value."""
    host = text.strip()
    if not host:
        raise DestinationError("empty host")
    address = parse_ip(host, unmap=False)
    if address is not None:
        return str(address)
    try:
        return parse_hostname(host)
    except DestinationError as exc:
        raise DestinationError(
            f"{describe(normalize_host(host))} is not a valid host name or IP address: {exc}"
        ) from None


# --- ports --------------------------------------------------------------------------------------------------


def parse_port(value: object, *, quote: bool = True) -> int:
    """A port 1-65535 from ASCII digits or an integer. With `quote=False` the value is never repeated (it may be
    the password of a URL cut short, `http://alice:S3cret`)."""
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        if len(value) > 5:
            raise DestinationError(f"port {redact_value(value)} {_RANGE}" if quote else f"the port is {_RANGE}")
        port = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        port = value
    elif isinstance(value, str) and not value:
        raise DestinationError("empty port after ':' (expected 1-65535)")
    elif isinstance(value, float) and quote:
        raise DestinationError(f"port {value:g} is not a whole number (expected 1-65535)")
    elif not isinstance(value, str) and quote:
        raise DestinationError(f"expected a port number 1-65535, not {describe(value)}")
    else:
        raise DestinationError(
            f"port {describe(value)} is not a number (expected 1-65535)"
            if quote
            else "the port is not a number (expected 1-65535)"
        )
    if not 1 <= port <= 65535:
        shown = describe(port).removeprefix("the number ")
        raise DestinationError(f"port {shown} {_RANGE}" if quote else f"the port is {_RANGE}")
    return port


_RANGE = "out of range (expected 1-65535)"


def split_host_port(text: str) -> tuple[str, str | None]:
    """(host, port text or None) of `host:port`, `[v6]:port`, `[v6]`, a bare host or a bare IPv6 address; only
    brackets are checked here."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise DestinationError(f"{describe(text)}: unclosed '[' in IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise DestinationError(f"{describe(text)}: expected ':port' after ']'")
        return host, rest[1:] if rest else None
    if text.count(":") == 1:
        host, port_text = text.split(":")
        return host, port_text
    return text, None


def parse_host_port(text: str, *, default_port: int | None = None, quote_port: bool = True) -> tuple[str, int]:
    """`host:port`, `[v6]:port`, or (with a default port) a bare host or IPv6 address."""
    host, port_text = split_host_port(text)
    host = parse_host(host)
    if port_text is None:
        if default_port is None:
            raise DestinationError(f"{describe(text)}: expected host:port (the port is required)")
        return host, default_port
    return host, parse_port(port_text, quote=quote_port)


# --- networks -----------------------------------------------------------------------------------------------


def parse_network(text: str) -> IPNetwork:
    """`ADDRESS/PREFIX` with host bits cleared (`10.1.2.3/8` -> `10.0.0.0/8`); raises DestinationError."""
    address_text, slash, prefix_text = text.strip().partition("/")
    if not slash:
        raise DestinationError(f"{describe(text)} has no '/PREFIX' (expected a CIDR such as 10.0.0.0/8)")
    if ":" in prefix_text:
        raise DestinationError("a CIDR cannot have a port (expected ADDRESS/PREFIX such as 10.0.0.0/8)")
    address = parse_ip(address_text, unmap=False)
    if address is None:
        raise DestinationError(
            f"{describe(address_text)} is not an IP address (expected a CIDR ADDRESS/PREFIX such as 10.0.0.0/8 "
            "or fd00::/8)"
        )
    if not _DIGITS.fullmatch(prefix_text):
        raise DestinationError(f"prefix length {prefix_text!r} is not a number (expected e.g. 10.0.0.0/8)")
    prefix = int(prefix_text)
    if prefix > address.max_prefixlen:
        raise DestinationError(
            f"prefix length {prefix} out of range 0-{address.max_prefixlen} for IPv{address.version}"
        )
    return ipaddress.ip_network((address, prefix), strict=False)


def parse_address_or_network(text: str) -> IPNetwork:
    """A CIDR, or a single IP address as a /32 or /128 network (rule `cidrs` accept both)."""
    if "/" in text:
        return parse_network(text)
    address = parse_ip(text, unmap=False)
    if address is None:
        raise DestinationError(f"{describe(text)} is not an IP address or a CIDR (expected e.g. 10.0.0.0/8)")
    return ipaddress.ip_network(address)


def host_bits_note(text: str, network: IPNetwork) -> str | None:
    """What `check` says when a CIDR was written with host bits set, or None."""
    address_text = text.strip().partition("/")[0]
    if "/" not in text or ipaddress.ip_address(address_text) == network.network_address:
        return None
    return f"{text.strip()} has host bits set; read as {network} (as Go's net.ParseCIDR reads it)"


# --- domain patterns ----------------------------------------------------------------------------------------


class BareName(enum.Enum):
    """What a domain pattern without a leading `.` or `*.` means on a surface."""

    EXACTLY = "exactly"  # rules: `example.com` is that name only
    AND_SUBDOMAINS = "and_subdomains"  # NO_PROXY (Go): `example.com` is the name and every subdomain


@dataclass(frozen=True)
class DomainPattern:
    """A domain match: the name itself (`apex`), its subdomains, or both.

    `suffix` is a host name in normal form (lower case, no leading dot or `*.`, no trailing dot).
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


def parse_domain_pattern(text: str, bare: BareName) -> DomainPattern:
    """`example.com`, `.example.com` or `*.example.com`; raises DestinationError (also for an IP address: the
    caller says where addresses go)."""
    written = text.strip().lower()
    subdomains_only = written.startswith(("*.", "."))
    name = written[2:] if written.startswith("*.") else written[1:] if written.startswith(".") else written
    if "*" in name:
        raise DestinationError("'*' is only allowed alone or as a leading '*.' (e.g. *.example.com)")
    if not name.rstrip("."):
        raise DestinationError("no domain name after the leading '.' or '*.'")
    if parse_ip(name, unmap=False) is not None:
        raise DestinationError(f"{describe(text.strip())} is an IP address, not a domain")
    host = parse_hostname(name)
    if subdomains_only:
        return DomainPattern.subdomains_of(host)
    return DomainPattern.exact(host) if bare is BareName.EXACTLY else DomainPattern.domain_and_subdomains(host)

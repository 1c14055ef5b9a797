"""Proxy URLs as users write them in HTTP_PROXY: `http(s)://[user:password@]host[:port]`."""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from egress_xds.policy.errors import describe
from egress_xds.policy.model import Credentials, Scheme
from egress_xds.redact import redact_value

DEFAULT_PORTS = {Scheme.HTTP: 80, Scheme.HTTPS: 443}
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOSTNAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


class ProxyUrlError(ValueError):
    """The message never contains the password."""


@dataclass(frozen=True)
class ProxyUrl:
    scheme: Scheme
    host: str
    port: int
    credentials: Credentials | None = field(default=None)


def basic_credentials(username: str, password: str) -> Credentials:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return Credentials(header_value=f"Basic {token}", username=username)


def parse_host_port(text: str, *, default_port: int | None = None, quote_port: bool = True) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or (with a default port) a bare host. Raises ValueError with a clear message.

    With `quote_port=False` a bad port is not repeated (in a URL cut short, `alice:S3cret`, it is a password)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{describe(text)}: unclosed '[' in IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{describe(text)}: expected ':port' after ']'")
        port_text = rest[1:] if rest else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        host, port_text = text, ""  # a bare IPv6 address
    else:
        host, port_text = text, ""
    host = validate_host(host)
    if not port_text:
        if default_port is None:
            raise ValueError(f"{describe(text)}: expected host:port (the port is required)")
        return host, default_port
    return host, parse_port(port_text, quote=quote_port)


def parse_port(value: object, *, quote: bool = True) -> int:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        if len(value) > 5:
            raise ValueError(
                f"port {redact_value(value)} out of range (expected 1-65535)" if quote else _UNQUOTED_RANGE
            )
        port = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        port = value
    else:
        raise ValueError(f"port {describe(value)} is not a number (expected 1-65535)" if quote else _UNQUOTED_NAN)
    if not 1 <= port <= 65535:
        shown = describe(port).removeprefix("the number ")
        raise ValueError(f"port {shown} out of range (expected 1-65535)" if quote else _UNQUOTED_RANGE)
    return port


_UNQUOTED_NAN = "the port is not a number (expected 1-65535)"
_UNQUOTED_RANGE = "the port is out of range (expected 1-65535)"


def validate_host(host: str) -> str:
    """A lower-cased hostname or a normalized IP literal."""
    host = host.strip().rstrip(".").lower()
    if not host:
        raise ValueError("empty host")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    if not _HOSTNAME.match(host):
        raise ValueError(f"{describe(host)} is not a valid hostname or IP address")
    return host


def parse_proxy_url(url: str) -> ProxyUrl:
    """Parse a proxy URL. A missing port means the scheme's default (80/443), as Go and Python do.

    No message repeats the userinfo, nor, in a URL without `@` (perhaps cut short: `http://alice:S3cret`), what
    follows the host."""
    text = url.strip()
    if "://" not in text:
        raise ProxyUrlError(f"{_shown_url(text)} has no scheme: write http:// or https:// before it")
    try:
        parts = urlsplit(text)
    except ValueError:
        raise ProxyUrlError(f"{_shown_url(text)} is not a valid URL (a '[' or ']' out of place?)") from None
    try:
        scheme = Scheme(parts.scheme.lower())
    except ValueError:
        raise ProxyUrlError(
            f"unsupported scheme {describe(parts.scheme)} (expected http or https; socks is not supported)"
        ) from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyUrlError("a proxy URL has no path, query or fragment")
    userinfo, at, host_port = parts.netloc.rpartition("@")
    if not host_port.strip():
        raise ProxyUrlError("the proxy URL has no host")
    try:
        # Without `@`, what follows the host may be a password (a URL cut short: `http://alice:S3cret`); only a
        # port-like number of up to 5 digits is repeated.
        port_like = bool(re.fullmatch(r".*:[0-9]{1,5}", host_port))
        host, port = parse_host_port(host_port, default_port=DEFAULT_PORTS[scheme], quote_port=bool(at) or port_like)
    except ValueError as exc:
        raise ProxyUrlError(str(exc)) from None
    credentials = None
    if at:
        username, _, password = userinfo.partition(":")
        credentials = basic_credentials(unquote(username), unquote(password))
    return ProxyUrl(scheme=scheme, host=host, port=port, credentials=credentials)


def _shown_url(text: str) -> str:
    return repr(redact_value(text, url=True))

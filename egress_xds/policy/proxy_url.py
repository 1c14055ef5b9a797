"""Proxy URLs as users write them in HTTP_PROXY: `http(s)://[user:password@]host[:port]`."""

from __future__ import annotations

import base64
import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from egress_xds.policy.model import Credentials, Scheme

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


def parse_host_port(text: str, *, default_port: int | None = None) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or (with a default port) a bare host. Raises ValueError with a clear message."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"{text!r}: unclosed '[' in IPv6 address")
        host, rest = text[1:end], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{text!r}: expected ':port' after ']'")
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
            raise ValueError(f"{text!r}: expected host:port (the port is required)")
        return host, default_port
    return host, parse_port(port_text)


def parse_port(value: object) -> int:
    if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and value.isdigit())):
        raise ValueError(f"port {value!r} is not a number (expected 1-65535)")
    port = int(value)
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range (expected 1-65535)")
    return port


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
        raise ValueError(f"{host!r} is not a valid hostname or IP address")
    return host


def parse_proxy_url(url: str) -> ProxyUrl:
    """Parse a proxy URL. A missing port means the scheme's default (80/443), as Go and Python do."""
    text = url.strip()
    if "://" not in text:
        raise ProxyUrlError("expected a URL like http://proxy.example:3128 (scheme http or https)")
    try:
        parts = urlsplit(text)
    except ValueError as exc:
        raise ProxyUrlError(f"not a valid URL ({_strip_secrets(str(exc), text)})") from None
    try:
        scheme = Scheme(parts.scheme.lower())
    except ValueError:
        raise ProxyUrlError(
            f"unsupported scheme {parts.scheme!r} (expected http or https; socks is not supported)"
        ) from None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyUrlError("a proxy URL has no path, query or fragment")
    host_port = parts.netloc.rpartition("@")[2]
    try:
        host, port = parse_host_port(host_port, default_port=DEFAULT_PORTS[scheme])
    except ValueError as exc:
        raise ProxyUrlError(str(exc)) from None
    credentials = None
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        username, _, password = userinfo.partition(":")
        credentials = basic_credentials(unquote(username), unquote(password))
    return ProxyUrl(scheme=scheme, host=host, port=port, credentials=credentials)


def _strip_secrets(message: str, url: str) -> str:
    userinfo = url.split("://", 1)[-1].rpartition("@")[0]
    return message.replace(userinfo, "***") if userinfo else message


_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")


def redact_userinfo(text: str) -> str:
    """`http://user:secret@host` -> `http://***@host`, anywhere in a text meant for humans."""
    return _USERINFO.sub(lambda match: f"{match.group('scheme')}***@", text)

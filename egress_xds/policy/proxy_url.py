"""Proxy URLs as users write them in HTTP_PROXY: `http(s)://[user:password@]host[:port]`."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from egress_xds.policy.destinations import parse_host_port
from egress_xds.policy.errors import describe
from egress_xds.policy.model import Credentials, Scheme
from egress_xds.redact import redact_value

DEFAULT_PORTS = {Scheme.HTTP: 80, Scheme.HTTPS: 443}


class ProxyUrlError(ValueError):
    """The message never contains the password."""


@dataclass(frozen=True)
class ProxyUrl:
    scheme: Scheme
    host: str
    port: int
    credentials: Credentials | None = field(default=None)


# Envoy's limit on one header value (`HeaderValue.value`, max_bytes 16384): longer credentials pass every parser
# but Envoy rejects the listener or cluster that carries them.
MAX_HEADER_VALUE_BYTES = 16384


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be a `Proxy-Authorization` header Envoy accepts and a proxy reads, or None. Never quotes
    the value."""
    problem = _character_problem(value)
    if problem is not None:
        return f"contains {problem}, which an HTTP header cannot carry"
    size = len(value.encode())
    if size > MAX_HEADER_VALUE_BYTES:
        return f"makes a Proxy-Authorization value of {size} bytes; Envoy takes at most {MAX_HEADER_VALUE_BYTES}"
    return None


def basic_problem(username: str, password: str) -> str | None:
    """Why a user name and password cannot be Basic credentials (RFC 7617), or None. Never quotes them."""
    if ":" in username:
        return "the user name contains ':', which Basic authentication cannot carry (RFC 7617)"
    for part, value in (("user name", username), ("password", password)):
        problem = _character_problem(value)
        if problem is not None:
            return f"the {part} contains {problem} (RFC 7617 allows none)"
    return None


def _character_problem(value: str) -> str | None:
    """The first character of `value` no HTTP field value may carry, described, or None. Envoy refuses a line
    break or NUL outright; any other control character but a tab it sends, and squid ends the request unread
    (`error:transaction-end-before-headers`): RFC 9110 allows only visible characters, spaces and tabs."""
    for character in value:
        if character in "\r\n\0":
            return "a line break or NUL"
        if (character < " " and character != "\t") or character == "\x7f":
            return f"the control character U+{ord(character):04X}"
    return None


def basic_credentials(username: str, password: str) -> Credentials:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return Credentials(header_value=f"Basic {token}", username=username)


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
        # What follows the host may be a password (a URL cut short, `http://alice:S3cret`, or a password typed
        # after the host, `http://alice@proxy:S3cret`); only a port-like number of up to 5 digits is repeated.
        port_like = bool(re.fullmatch(r".*:[0-9]{1,5}", host_port))
        host, port = parse_host_port(host_port, default_port=DEFAULT_PORTS[scheme], quote_port=port_like)
    except ValueError as exc:
        raise ProxyUrlError(str(exc)) from None
    credentials = None
    if at:
        username, _, password = userinfo.partition(":")
        for part, text_part in (("user name", username), ("password", password)):
            if _BAD_ESCAPE.search(text_part):  # Go's url.Parse refuses it; unquote would keep it as it is
                raise ProxyUrlError(f"the URL's {part} has a '%' that is not a %XX escape (write a literal '%' as %25)")
        username, password = unquote(username), unquote(password)
        credentials = basic_credentials(username, password)
        problem = basic_problem(username, password) or header_value_problem(credentials.header_value)
        if problem is not None:
            raise ProxyUrlError(f"the URL's credentials: {problem}")
    return ProxyUrl(scheme=scheme, host=host, port=port, credentials=credentials)


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


def _shown_url(text: str) -> str:
    return repr(redact_value(text, url=True))

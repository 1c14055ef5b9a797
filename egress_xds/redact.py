"""Remove secrets (proxy credentials) from configuration and from text before humans or tools see it.

Two tools, one rule: what stands before the `@` of anything URL-shaped is a credential.

- `redact_config` cleans structured configuration, where a secret sits under a known key.
- `redact_url_text` cleans free text (log lines, error messages, Envoy's NACK details) without knowing the secret:
  the userinfo of every URL-shaped word is replaced, with or without a scheme (`http://u:p@h`, `u:p@h:3128`,
  `user@host`). An e-mail address looks the same and is redacted too; text without `@` is never changed.
  A scheme is kept only if it is one a proxy URL may carry (`http`, `https`, `socks5`, ...).
- `redact_value` shows one field value (whose boundaries are known, so a password with spaces or quotes is
  covered too) in an error message: its userinfo replaced, and a URL that breaks off before its `@`
  (`http://alice:S3cret`) shown without what follows the host, since that may be the password.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"proxy-authorization", "authorization"})
# How much of one value an error message quotes; the rest is elided (a 1 MB value is not worth reading twice).
SHOWN_VALUE_CHARS = 120

# Only schemes a proxy URL may carry are kept in front of a redacted userinfo: any other word before `://` might
# be part of a password (`Zq9x://y@proxy`), so it goes with the userinfo.
_SCHEME = r"(?i:https?|socks[45][ah]?)://"
# A word (up to whitespace) whose last `@` is followed by something host-like. The optional lead (quotes,
# brackets) and scheme are kept only at the start of the word, so no part of a password can pass for them.
_URL_USERINFO = re.compile(rf"(?<!\S)(?P<lead>[\"'(\[{{=]*(?:{_SCHEME})?)(?P<userinfo>\S+)@(?=[\w\[])")
_VALUE_SCHEME = re.compile(rf"^\s*{_SCHEME}")
_ANY_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
_PORT = re.compile(r"[0-9]*")


def redact_url_text(text: str) -> str:
    """`http://user:secret@host` -> `http://<redacted>@host`, `u:p@h:1` -> `<redacted>@h:1`, anywhere in a text."""
    if "@" not in text:
        return text
    return _URL_USERINFO.sub(_replace_userinfo, text)


def _replace_userinfo(match: re.Match[str]) -> str:
    if match.group("userinfo").endswith(REDACTED):  # already redacted: keep what stands before it
        return match.group(0)
    return f"{match.group('lead')}{REDACTED}@"


def redact_value(value: str, *, url: bool = False) -> str:
    """One field value, safe to quote: userinfo redacted, an unfinished URL cut after its host, long ones elided.

    `url` says the value is meant to be a URL even without a scheme (a proxy URL): `alice:S3cret` is then
    taken for a URL cut short too."""
    scheme_match = _ANY_SCHEME.match(value)
    scheme = scheme_match.group(0) if scheme_match else ""
    rest = value[len(scheme) :]
    if "@" in rest:
        # Only a proxy scheme is kept: any other word before `://` may be part of the password.
        scheme = scheme if _VALUE_SCHEME.match(scheme) else ""
        rest = f"{REDACTED}@{rest.rpartition('@')[2]}"
    elif (scheme or url) and not _authority_is_host_port(rest):
        rest = _cut_after_host(rest)  # `http://alice:S3cret`: what follows the ':' may be the start of a password
    text = scheme + rest
    if len(text) > SHOWN_VALUE_CHARS:
        text = f"{text[:SHOWN_VALUE_CHARS]}... ({len(value)} characters)"
    return text


def _authority_is_host_port(rest: str) -> bool:
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    _, colon, port = authority[_host_end(authority) :].partition(":")
    return not colon or bool(_PORT.fullmatch(port))


def _cut_after_host(rest: str) -> str:
    """`alice:S3cret/x` -> `alice:<redacted>`: the host (or user name) stays, all after its ':' goes."""
    colon = rest.find(":", _host_end(rest))
    return f"{rest[: colon + 1]}{REDACTED}" if colon >= 0 else REDACTED


def _host_end(authority: str) -> int:
    return authority.find("]") + 1 if authority.startswith("[") else 0


def redact_config(data: Any) -> Any:
    """A copy of plain config data (dicts/lists as from MessageToDict) with secret header values replaced."""
    if isinstance(data, list):
        return [redact_config(item) for item in data]
    if not isinstance(data, dict):
        return data
    result = {key: redact_config(value) for key, value in data.items()}
    if str(result.get("key", "")).lower() in SECRET_HEADERS and "value" in result:
        result["value"] = REDACTED
    return result


def contains_redactions(data: Any) -> bool:
    if isinstance(data, list):
        return any(contains_redactions(item) for item in data)
    if isinstance(data, dict):
        return any(contains_redactions(value) for value in data.values())
    return bool(data == REDACTED)

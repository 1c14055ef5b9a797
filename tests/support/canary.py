"""One test-wide canary secret, and the search for any trace of it in an output.

Every credential a canary test writes (URL userinfo, `credentialsFile`, a Kubernetes Secret, a `Bearer` token)
is built from `MARK`: eight characters that are neither hex (so no hash or version string holds a piece of them)
nor a piece of an English word, the same in every encoding the product uses (URL quoting, JSON, YAML). A 4-character
piece of `MARK` anywhere in an output means a secret, or part of one, leaked: a message that cut a password short
still shows its start. The password variants add the characters that break naive redaction (`://`, `@`, quotes,
spaces, YAML indicators), always after the mark.

`find_canary` also looks for the forms a password takes on the wire: `user:password` and its base64 (`Basic`
token), whole or in part.
"""

from __future__ import annotations

import base64
from urllib.parse import quote

MARK = "YjQ5vTzR"
USER = "alice"
PASSWORD = f"{MARK}-pw"
QUOTED_PASSWORD = quote(PASSWORD, safe="")
BASIC_TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
BEARER = f"Bearer {MARK}.tok3n"
# Passwords that hold what ends a URL, a word or a YAML scalar early; URL-quoted where a URL carries them.
AWKWARD_PASSWORDS = {
    "scheme-like": f"{MARK}://x",
    "at-sign": f"{MARK}@x",
    "quotes": f"{MARK}'\"q",
    "spaces": f"{MARK} sp ace",
    "yaml-special": f"{MARK}: #&*!|>%{{}}[],",
}
_PIECE = 4
# `alice:` is exactly 6 bytes, so the base64 of what follows it starts on a 4-character boundary: any 8 characters
# from there on encode bytes of the password only.
_TOKEN_PIECE = 8


def userinfo(password: str = PASSWORD, user: str = USER) -> str:
    """`alice:PASSWORD@`, URL-quoted."""
    return f"{quote(user, safe='')}:{quote(password, safe='')}@"


def basic_token(password: str = PASSWORD, user: str = USER) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _pieces() -> tuple[str, ...]:
    marks = {MARK[start : start + _PIECE] for start in range(len(MARK) - _PIECE + 1)}
    tokens: set[str] = set()
    for password in (PASSWORD, *AWKWARD_PASSWORDS.values()):
        token = basic_token(password)
        body = token[len(basic_token("")) :].rstrip("=")  # what follows the base64 of `alice:`
        tokens |= {body[start : start + _TOKEN_PIECE] for start in range(max(len(body) - _TOKEN_PIECE + 1, 0))}
    return (*sorted(marks), *sorted(tokens))


PIECES = _pieces()


def find_canary(output: str | bytes) -> str | None:
    """The first piece of the canary (4+ characters of the mark, 8+ of a Basic token of it) in `output`, or None."""
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
    for piece in PIECES:
        if piece in text:
            return piece
    return None


def where(output: str | bytes, piece: str, around: int = 80) -> str:
    """The text around the first occurrence of `piece`, for an assertion message."""
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
    at = text.find(piece)
    return text[max(at - around, 0) : at + len(piece) + around]

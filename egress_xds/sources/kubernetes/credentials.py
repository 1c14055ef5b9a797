"""Proxy credentials from a Secret: `username` + `password` (the keys of a `kubernetes.io/basic-auth` Secret), or
`proxyAuthorization`, a complete `Proxy-Authorization` value such as `Bearer ...`.

Every error names the Secret and the key, never a value: these messages end up in logs and in the status of a
resource that more people can read than the Secret.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

from egress_xds.policy.model import Credentials
from egress_xds.policy.proxy_url import basic_credentials, basic_problem, header_value_problem

USERNAME_KEY = "username"
PASSWORD_KEY = "password"
AUTHORIZATION_KEY = "proxyAuthorization"


def credentials_from_secret(secret: Mapping[str, Any], where: str) -> Credentials:
    """Raises ValueError (mentioning `where`, e.g. "Secret payments/corp-proxy") when the keys are wrong."""
    data = _decoded(secret, where)
    if AUTHORIZATION_KEY in data:
        if USERNAME_KEY in data or PASSWORD_KEY in data:
            raise ValueError(
                f"{where}: give either {AUTHORIZATION_KEY!r} or {USERNAME_KEY!r}+{PASSWORD_KEY!r}, not both"
            )
        value = data[AUTHORIZATION_KEY].strip()
        if not value:
            raise ValueError(f"{where}: key {AUTHORIZATION_KEY!r} is empty")
        return _usable(Credentials(header_value=value), where)
    missing = [key for key in (USERNAME_KEY, PASSWORD_KEY) if key not in data]
    if missing:
        raise ValueError(
            f"{where}: missing key {' and '.join(repr(key) for key in missing)} "
            f"(expected {USERNAME_KEY!r}+{PASSWORD_KEY!r} or {AUTHORIZATION_KEY!r})"
        )
    # `kubectl create secret --from-file` keeps the file's final newline, which no password is meant to have.
    username, password = data[USERNAME_KEY].rstrip("\r\n"), data[PASSWORD_KEY].rstrip("\r\n")
    if not username:
        raise ValueError(f"{where}: key {USERNAME_KEY!r} is empty")
    problem = basic_problem(username, password)
    if problem is not None:
        raise ValueError(f"{where}: keys {USERNAME_KEY!r}/{PASSWORD_KEY!r}: {problem}")
    return _usable(basic_credentials(username, password), where)


def _usable(credentials: Credentials, where: str) -> Credentials:
    problem = header_value_problem(credentials.header_value)
    if problem is not None:
        raise ValueError(f"{where}: the Proxy-Authorization value {problem}")
    return credentials


def _decoded(secret: Mapping[str, Any], where: str) -> dict[str, str]:
    """`data` values are base64 (what the API returns); `stringData` is write-only but accepted if present.

    Anything else in their place (a list, a string: a Secret the API server did not store) is a ValueError too."""
    result: dict[str, str] = {}
    for key, encoded in _mapping(secret, "data", where).items():
        try:
            result[key] = base64.b64decode(str(encoded), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ValueError(f"{where}: key {key!r} is not base64-encoded UTF-8 text") from None
    for key, text in _mapping(secret, "stringData", where).items():
        result[key] = str(text)
    return result


def _mapping(secret: Mapping[str, Any], field: str, where: str) -> Mapping[str, Any]:
    value = secret.get(field) if isinstance(secret, Mapping) else ()
    if value is None:
        return {}
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise ValueError(f"{where}: expected {field} to be a mapping of key to value")
    return value

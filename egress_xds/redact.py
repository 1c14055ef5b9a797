"""Remove secrets (proxy credentials) from configuration before humans or tools see it."""

from __future__ import annotations

from typing import Any

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"proxy-authorization", "authorization"})


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

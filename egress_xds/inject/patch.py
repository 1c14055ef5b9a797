"""RFC 6902 JSON Patch from one JSON value to another (what an admission webhook returns).

Mappings are compared key by key; a list or a scalar that differs is replaced whole (`add` on an existing member
replaces it, RFC 6902 4.1), so the patch is short and never depends on list positions another webhook may shift.
"""

from __future__ import annotations

from typing import Any


def json_patch(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    if isinstance(before, dict) and isinstance(after, dict):
        operations: list[dict[str, Any]] = []
        for key in before:
            if key not in after:
                operations.append({"op": "remove", "path": f"{path}/{escape(key)}"})
        for key, value in after.items():
            if key not in before:
                operations.append({"op": "add", "path": f"{path}/{escape(key)}", "value": value})
            elif before[key] != value or type(before[key]) is not type(value):
                operations += json_patch(before[key], value, f"{path}/{escape(key)}")
        return operations
    if before == after and type(before) is type(after):
        return []
    if not path:
        return [{"op": "replace", "path": "", "value": after}]
    return [{"op": "add", "path": path, "value": after}]


def escape(key: str) -> str:
    """A JSON Pointer reference token (RFC 6901): `~` -> `~0`, `/` -> `~1`."""
    return str(key).replace("~", "~0").replace("/", "~1")

"""Durations as Envoy, Kubernetes and Go users write them: `500ms`, `30s`, `10h`, `1h30m`, `0`.

The grammar is Go's `time.ParseDuration` (what kubectl, Envoy Gateway and most Kubernetes controllers accept)
without its signs and nanoseconds: one or more decimal numbers, each with a unit `ms`, `s`, `m` or `h`; a bare
`0` means zero.
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"([0-9]+(\.[0-9]*)?|\.[0-9]+)(ms|s|m|h)")
_WHOLE = re.compile(rf"({_PART.pattern})+")
# The same grammar as one anchored pattern, for the CRDs' OpenAPI `pattern` (tests/unit/test_durations.py checks
# that deploy/crds/ carry exactly this).
PATTERN = rf"^(0|({_PART.pattern})+)$"
EXAMPLES = "500ms, 30s, 10h or 1h30m"


def parse_duration(text: str) -> float:
    """Seconds. Raises ValueError whose message says what is expected and does not quote `text` (a secret pasted in
    the wrong field must not be repeated): the caller puts the value, shown safely, before it."""
    value = text.strip()
    if value == "0":
        return 0.0
    if not _WHOLE.fullmatch(value):
        raise ValueError(f"is not a duration: expected a number with a unit, like {EXAMPLES}")
    return sum(float(number) * _UNIT_SECONDS[unit] for number, _, unit in _PART.findall(value))


def format_duration(seconds: float) -> str:
    """The shortest of `parse_duration`'s forms for whole units (`10h`, `90s` -> `1m30s`, `0.5s` -> `500ms`)."""
    if seconds <= 0:
        return "0"
    milliseconds = round(seconds * 1000)
    parts = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, milliseconds = divmod(milliseconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0"

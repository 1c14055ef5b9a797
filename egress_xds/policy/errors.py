"""Configuration errors that name the source, the line and the field path, and say what was expected.

An issue never carries a credential: whatever builds one, its field path and message pass through
`redact_url_text` (the userinfo of anything URL-shaped is replaced), so a message that quotes a value cannot leak
a password even where the value was not shown with `redact_value` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from egress_xds.redact import redact_url_text, redact_value


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one place. `source` is a file path or e.g. "environment"; `line` is 1-based."""

    source: str
    line: int | None
    path: str
    message: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", redact_url_text(self.path))
        object.__setattr__(self, "message", redact_url_text(self.message))

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ConfigError(Exception):
    """Raised with every issue found, never just the first one, in file order."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(sorted(issues, key=lambda issue: (issue.source, issue.line or 0)))
        super().__init__("\n".join(str(issue) for issue in self.issues))


def describe(value: object) -> str:
    """How a value of any type appears in a message: a string quoted (credentials redacted, a long one elided),
    anything else by its kind, never by `repr` (a container may be nested thousands deep or hold secrets)."""
    if isinstance(value, str):
        return repr(redact_value(value))
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, int):
        return f"the number {value}" if value.bit_length() <= 64 else "a very large number"
    if isinstance(value, float):
        return f"the number {value}"
    return f"a value of type {type(value).__name__}"

"""Configuration errors that name the source, the line and the field path, and say what was expected."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in one place. `source` is a file path or e.g. "environment"; `line` is 1-based."""

    source: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ConfigError(Exception):
    """Raised with every issue found, never just the first one, in file order."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues: tuple[ConfigIssue, ...] = tuple(sorted(issues, key=lambda issue: (issue.source, issue.line or 0)))
        super().__init__("\n".join(str(issue) for issue in self.issues))

"""Reloading the policy source, and remembering how the last attempts went.

A reload is triggered by the file watcher ("file change"), by the admin API ("admin"), or is the initial load
("startup"). Every path goes through one `PolicyReloader`, so the admin API's `GetReloadErrors` reports the same
failures the log shows, whatever triggered them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import PolicySet

STARTUP = "startup"
FILE_CHANGE = "file change"
ADMIN = "admin"


@dataclass(frozen=True)
class ReloadAttempt:
    time: float  # time.time()
    trigger: str
    errors: tuple[ConfigIssue, ...] = ()
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


class PolicyReloader:
    """Reads the policy source (`read`: the file, or the environment), publishes a valid result (`publish`),
    reports an invalid one (`reject`, which logs and counts it), and keeps the latest attempt and failure."""

    def __init__(
        self,
        read: Callable[[], PolicySet],
        publish: Callable[[PolicySet], None],
        reject: Callable[[ConfigError], None],
    ) -> None:
        self._read = read
        self._publish = publish
        self._reject = reject
        self.last: ReloadAttempt | None = None
        self.last_failure: ReloadAttempt | None = None

    def reload(self, trigger: str = ADMIN) -> ReloadAttempt:
        """Re-read the source now and publish it if it is valid."""
        try:
            policies = self._read()
        except ConfigError as error:
            self.rejected(error, trigger)
        else:
            self.published(policies, trigger)
        assert self.last is not None
        return self.last

    def published(self, policies: PolicySet, trigger: str) -> None:
        """A valid policy set from the source (read here or by the file watcher): publish it."""
        self._publish(policies)
        self.loaded(policies, trigger)

    def loaded(self, policies: PolicySet, trigger: str = STARTUP) -> None:
        """Record a policy set that has been published (by the caller, for the initial one)."""
        names = ", ".join(policy.name for policy in policies.policies)
        self.last = ReloadAttempt(time.time(), trigger, message=f"{len(policies.policies)} policies ({names})")

    def rejected(self, error: ConfigError, trigger: str) -> None:
        """An invalid source: the last good policy keeps serving."""
        self._reject(error)
        self.last = self.last_failure = ReloadAttempt(
            time.time(),
            trigger,
            errors=error.issues,
            message=f"{len(error.issues)} error(s); still serving the last good policy",
        )

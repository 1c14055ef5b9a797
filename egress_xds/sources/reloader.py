"""Reloading the policy source, and remembering how the last attempts went.

A reload is triggered by the file watcher ("file change"), by the admin API ("admin"), by SIGHUP ("signal"), or
is the initial load ("startup"). Every path goes through one `PolicyReloader`, so the admin API's
`GetReloadErrors` reports the same failures the log shows, whatever triggered them.

Reading and parsing run in a worker thread (a large policy takes seconds to parse, and the event loop serves
every ADS stream meanwhile, from the last good policy); publishing the result stays on the loop. Reloads are
serialized, so two triggers close together publish in the order they read. Whatever reading raises ends as a
rejected reload: a `ConfigError` with its issues, anything else as an internal error of that reload.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import PolicySet

STARTUP = "startup"
FILE_CHANGE = "file change"
ADMIN = "admin"
SIGNAL = "signal"

MAX_EXCEPTION_TEXT = 200

_log = logging.getLogger("egress_xds.reloads")


@dataclass(frozen=True)
class ReloadAttempt:
    time: float  # time.time()
    trigger: str
    errors: tuple[ConfigIssue, ...] = ()
    message: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors


def unexpected_error(source: str, error: BaseException) -> ConfigError:
    """A reading failure that is not a `ConfigError` (a bug), as a rejection that says so. The traceback goes to
    the debug log; the message keeps the exception's first line, cut short (it may quote the file)."""
    _log.debug("internal error while reading %s", source, exc_info=error)
    first_line = (str(error).strip().splitlines() or [""])[0][:MAX_EXCEPTION_TEXT]
    detail = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    message = f"internal error while reading the policy (a bug in egress-xds, please report it): {detail}"
    return ConfigError([ConfigIssue(source, None, "", message)])


class PolicyReloader:
    """Reads the policy source (`read`: the file, or the environment), publishes a valid result (`publish`),
    reports an invalid one (`reject`, which logs and counts it), and keeps the latest attempt and failure.

    `source` names the source in an internal-error rejection (a file path, "environment")."""

    def __init__(
        self,
        read: Callable[[], PolicySet],
        publish: Callable[[PolicySet], None],
        reject: Callable[[ConfigError], None],
        *,
        source: str = "policy",
    ) -> None:
        self._read = read
        self._publish = publish
        self._reject = reject
        self._source = source
        self._lock = asyncio.Lock()
        self.last: ReloadAttempt | None = None
        self.last_failure: ReloadAttempt | None = None

    async def reload(self, trigger: str = ADMIN) -> ReloadAttempt:
        """Re-read the source now (in a worker thread) and publish it if it is valid. Never raises for what the
        source contains."""
        async with self._lock:
            try:
                policies = await asyncio.to_thread(self._read)
            except ConfigError as error:
                self.rejected(error, trigger)
            except Exception as error:  # whatever a file holds must not end the server
                self.rejected(unexpected_error(self._source, error), trigger)
            else:
                self.published(policies, trigger)
            assert self.last is not None
            return self.last

    def published(self, policies: PolicySet, trigger: str) -> None:
        """A valid policy set from the source: publish it."""
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

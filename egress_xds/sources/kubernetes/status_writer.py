"""Writes the `Accepted` condition to the status subresource, from a thread (the client blocks).

The latest wish per resource wins: a resource that changes twice while a write is in flight gets one more write,
not two. A wish already written (or being written) for the same resourceVersion is not written again, so the
reconciles that run before our own write's MODIFIED event arrives cannot queue it twice.

A write that fails is retried until it lands (a status that silently stays stale is worse than a retry every
`max_backoff` seconds): each resource on its own schedule, with exponential backoff and never sooner than the
server's `Retry-After`, so one throttled or failing resource does not hold up the others. A resource that is gone
(404) is dropped. A write the server refuses as malformed (400, 415, 422) is not retried: the same patch would be
refused again; the next different verdict, or the next resourceVersion, is written as usual.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from egress_xds.sources.kubernetes.api import ResourceRef
from egress_xds.sources.kubernetes.conditions import DesiredStatus, status_patch
from egress_xds.sources.kubernetes.watch import backoff_delay, describe_api_error, retry_after_seconds

_log = logging.getLogger("egress_xds.sources.kubernetes")

PatchFunction = Callable[[ResourceRef, dict[str, Any]], None]
HTTP_NOT_FOUND = 404
REFUSED = frozenset({400, 415, 422})  # the request itself is wrong: repeating it cannot help


@dataclass(frozen=True)
class _Wish:
    desired: DesiredStatus
    resource_version: str
    current_status: Mapping[str, Any] | None
    attempts: int = 0  # failed attempts so far
    not_before: float = 0.0  # time.monotonic() before which it is not tried (backoff, Retry-After)


@dataclass(frozen=True)
class _Outcome:
    done: bool  # written, or nothing more to do
    retry_after: float = 0.0


class StatusWriter:
    def __init__(self, patch: PatchFunction, *, initial_backoff: float = 0.5, max_backoff: float = 10.0) -> None:
        self._patch = patch
        self._pending: dict[ResourceRef, _Wish] = {}
        self._written: dict[ResourceRef, tuple[DesiredStatus, str]] = {}
        self._condition = threading.Condition()
        self._stopped = False
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self.writes = 0  # successful PATCHes, for logs and tests

    def start(self) -> None:
        self._thread.start()

    def submit(self, desired: DesiredStatus, resource: Mapping[str, Any]) -> None:
        version = str((resource.get("metadata") or {}).get("resourceVersion", ""))
        with self._condition:
            if self._written.get(desired.ref) == (desired, version):
                return
            waiting = self._pending.get(desired.ref)
            # A newer wish replaces a waiting retry, but keeps its schedule: a backoff or a Retry-After still holds.
            attempts, not_before = (waiting.attempts, waiting.not_before) if waiting is not None else (0, 0.0)
            self._pending[desired.ref] = _Wish(desired, version, resource.get("status"), attempts, not_before)
            self._condition.notify()

    def forget(self, ref: ResourceRef) -> None:
        """The resource was deleted: drop any write still queued for it."""
        with self._condition:
            self._pending.pop(ref, None)
            self._written.pop(ref, None)

    def stop(self, timeout: float = 5.0) -> None:
        with self._condition:
            self._stopped = True
            self._condition.notify()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._condition:
                wish = self._next_ready()
                if wish is None:
                    return
                ref = wish.desired.ref
                del self._pending[ref]
                # Counted as written from now on: a reconcile that runs while the PATCH is in flight (before its
                # MODIFIED event arrives) sees the old status and must not queue the same write again.
                self._written[ref] = (wish.desired, wish.resource_version)
            outcome = self._write(wish)
            if not outcome.done:
                self._retry_later(wish, outcome.retry_after)

    def _next_ready(self) -> _Wish | None:
        """The wish due first, once it is due; None when stopped. Call with the condition held."""
        while not self._stopped:
            if self._pending:
                first = min(self._pending.values(), key=lambda wish: wish.not_before)
                wait = first.not_before - time.monotonic()
                if wait <= 0:
                    return first
                self._condition.wait(wait)
            else:
                self._condition.wait()
        return None

    def _write(self, wish: _Wish) -> _Outcome:
        desired = wish.desired
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self._patch(desired.ref, status_patch(desired, wish.current_status, now))
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return _Outcome(done=True)  # deleted meanwhile: nothing to report to
            if error.status in REFUSED:
                _log.error(
                    "%s: status update refused (%s); not retried: the same patch would be refused again",
                    desired.ref,
                    describe_api_error(error),
                )
                return _Outcome(done=True)
            _log.warning("%s: status update failed: %s", desired.ref, describe_api_error(error))
            return _Outcome(done=False, retry_after=retry_after_seconds(error))
        except Exception as error:
            _log.warning("%s: status update failed: %s", desired.ref, type(error).__name__)
            return _Outcome(done=False)
        self.writes += 1
        _log.info("%s: status %s (generation %d)", desired.ref, desired.reason, desired.generation)
        return _Outcome(done=True)

    def _retry_later(self, wish: _Wish, retry_after: float) -> None:
        ref = wish.desired.ref
        delay = max(retry_after, backoff_delay(wish.attempts, self._initial_backoff, self._max_backoff))
        with self._condition:
            if self._written.get(ref) == (wish.desired, wish.resource_version):
                del self._written[ref]
            waiting = self._pending.get(ref, wish)  # a newer wish submitted meanwhile replaces this one
            self._pending[ref] = dataclasses.replace(
                waiting, attempts=max(waiting.attempts, wish.attempts + 1), not_before=time.monotonic() + delay
            )
            _log.info("%s: status update retried in %.1f s", ref, delay)
            self._condition.notify()

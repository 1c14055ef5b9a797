"""Writes the `Accepted` condition to the status subresource, from a thread (the client blocks).

The latest wish per resource wins: a resource that changes twice while a write is in flight gets one more write,
not two. A write that fails is retried with backoff a few times; a resource that is gone (404) is dropped. A wish
already written (or being written) for the same resourceVersion is not written again, so the reconciles that
run before our own write's MODIFIED event arrives cannot queue it twice.
"""

from __future__ import annotations

import datetime
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from egress_xds.sources.kubernetes.api import ResourceRef
from egress_xds.sources.kubernetes.conditions import DesiredStatus, status_patch
from egress_xds.sources.kubernetes.watch import Backoff

_log = logging.getLogger("egress_xds.sources.kubernetes")

PatchFunction = Callable[[ResourceRef, dict[str, Any]], None]
MAX_ATTEMPTS = 5
HTTP_NOT_FOUND = 404


@dataclass(frozen=True)
class _Wish:
    desired: DesiredStatus
    resource_version: str
    current_status: Mapping[str, Any] | None
    attempts: int = 0


class StatusWriter:
    def __init__(self, patch: PatchFunction, *, initial_backoff: float = 0.5, max_backoff: float = 10.0) -> None:
        self._patch = patch
        self._pending: dict[ResourceRef, _Wish] = {}
        self._written: dict[ResourceRef, tuple[DesiredStatus, str]] = {}
        self._condition = threading.Condition()
        self._stopped = False
        self._backoff = Backoff(initial_backoff, max_backoff)
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self.writes = 0  # successful PATCHes, for logs and tests

    def start(self) -> None:
        self._thread.start()

    def submit(self, desired: DesiredStatus, resource: Mapping[str, Any]) -> None:
        version = str((resource.get("metadata") or {}).get("resourceVersion", ""))
        with self._condition:
            if self._written.get(desired.ref) == (desired, version):
                return
            self._pending[desired.ref] = _Wish(desired, version, resource.get("status"))
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
                while not self._pending and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                ref, wish = next(iter(self._pending.items()))
                del self._pending[ref]
                # Counted as written from now on: a reconcile that runs while the PATCH is in flight (before its
                # MODIFIED event arrives) sees the old status and must not queue the same write again.
                self._written[ref] = (wish.desired, wish.resource_version)
            if not self._write(wish):
                with self._condition:
                    if self._written.get(ref) == (wish.desired, wish.resource_version):
                        del self._written[ref]
                self._retry_later(wish)

    def _write(self, wish: _Wish) -> bool:
        desired = wish.desired
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            self._patch(desired.ref, status_patch(desired, wish.current_status, now))
        except ApiException as error:
            if error.status == HTTP_NOT_FOUND:
                return True  # deleted meanwhile: nothing to report to
            _log.warning("%s: status update failed: %s %s", desired.ref, error.status, error.reason)
            return False
        except Exception as error:
            _log.warning("%s: status update failed: %s", desired.ref, type(error).__name__)
            return False
        self.writes += 1
        self._backoff.reset()
        _log.info("%s: status %s (generation %d)", desired.ref, desired.reason, desired.generation)
        return True

    def _retry_later(self, wish: _Wish) -> None:
        if wish.attempts + 1 >= MAX_ATTEMPTS:
            _log.error("%s: giving up on the status update after %d attempts", wish.desired.ref, MAX_ATTEMPTS)
            return
        delay = self._backoff.next()
        with self._condition:
            self._condition.wait_for(lambda: self._stopped, timeout=delay)
            if wish.desired.ref not in self._pending:  # a newer wish replaces this one
                self._pending[wish.desired.ref] = _Wish(
                    wish.desired, wish.resource_version, wish.current_status, wish.attempts + 1
                )

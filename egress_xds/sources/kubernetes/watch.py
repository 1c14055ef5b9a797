"""List, then watch from the list's resourceVersion, for one resource type, in a thread of its own.

The official client is synchronous, so each watched type gets a thread; what it sees is handed on through
callbacks (the source forwards them to the event loop). The protocol, as client-go's reflector does it:

- list, remember the list's `resourceVersion`, report the complete set (`on_list`);
- watch from that version with `allowWatchBookmarks`, report each ADDED / MODIFIED / DELETED (`on_event`) and
  advance the version with every event and BOOKMARK, so a reconnect resumes where it stopped;
- a watch the server ends (its `timeoutSeconds`) or a dropped connection: watch again from the last version;
- `410 Gone` (the version is older than the server's history, as after a compaction or an API server restart):
  list again, because events were lost;
- any other failure: retry after a bounded exponential backoff with jitter, reset by the next success.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

_log = logging.getLogger("egress_xds.sources.kubernetes")

HTTP_GONE = 410
ListFunction = Callable[..., Any]  # a bound list function of the client, e.g. CoreV1Api.list_secret_for_all_namespaces
Item = dict[str, Any]


@dataclass(frozen=True)
class WatchSettings:
    # The server closes each watch after this long (client-go picks 5-10 min); a fresh watch then resumes.
    watch_timeout_seconds: int = 300
    # A read that sees nothing for this long beyond the watch timeout means the connection is dead.
    read_timeout_margin_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0


class Backoff:
    """Exponential delays (doubling up to a cap) with +-20 % jitter, so that many servers do not retry in step."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def next(self) -> float:
        delay = min(self.maximum, self.initial * (2**self._attempt))
        self._attempt = min(self._attempt + 1, 32)
        return float(delay * random.uniform(0.8, 1.2))

    def reset(self) -> None:
        self._attempt = 0


class ListWatcher:
    """Keeps one resource type in step: `on_list(items)` after every (re)list, `on_event(type, item)` after."""

    def __init__(
        self,
        name: str,
        list_function: ListFunction,
        on_list: Callable[[list[Item]], None],
        on_event: Callable[[str, Item], None],
        settings: WatchSettings,
        *,
        label_selector: str | None = None,
    ) -> None:
        self.name = name
        self._list_function = list_function
        self._on_list = on_list
        self._on_event = on_event
        self._settings = settings
        self._label_selector = label_selector
        self._stop = threading.Event()
        self._watch: watch.Watch | None = None
        self._backoff = Backoff(settings.initial_backoff_seconds, settings.max_backoff_seconds)
        self._thread = threading.Thread(target=self._run, name=f"watch-{name}", daemon=True)
        self.lists = 0  # how many times it listed (the first list, then one per relist): for logs and tests
        # Where a new watch resumes; advanced by every event and BOOKMARK as it arrives, so that progress made
        # before a connection breaks is not lost with the exception. None: list first.
        self.resource_version: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; a watch blocked in a read is unblocked by shutting its socket down."""
        self._stop.set()
        current = self._watch
        if current is not None:
            current.stop()  # type: ignore[no-untyped-call]

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    # -- the loop ----------------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if self.resource_version is None:
                    self.resource_version = self._list()
                started = time.monotonic()
                events = self._watch_from(self.resource_version)
                if events == 0 and time.monotonic() - started < 1.0 and not self._stop.is_set():
                    self._pause("the watch ended at once")  # a server that closes every watch must not spin us
            except ApiException as error:
                if error.status == HTTP_GONE:
                    _log.info("%s: resourceVersion %s is gone (410); listing again", self.name, self.resource_version)
                    self.resource_version = None
                    continue
                self._pause(f"API error {error.status} {error.reason}")
            except Exception as error:  # connection refused, reset, timeouts, a half-read body: all retried
                self._pause(f"{type(error).__name__}: {_first_line(error)}")

    def _list(self) -> str:
        timeout = (self._settings.connect_timeout_seconds, self._settings.watch_timeout_seconds)
        kwargs: dict[str, Any] = {"_preload_content": False, "_request_timeout": timeout}
        if self._label_selector:
            kwargs["label_selector"] = self._label_selector
        response = self._list_function(**kwargs)
        try:
            body = json.loads(response.data)
        finally:
            response.release_conn()
        items: list[Item] = list(body.get("items") or [])
        version = str(body["metadata"]["resourceVersion"])
        self.lists += 1
        _log.info("%s: listed %d at resourceVersion %s", self.name, len(items), version)
        self._on_list(items)
        self._backoff.reset()
        return version

    def _watch_from(self, version: str) -> int:
        """Stream events until the server ends the watch or `stop()`. Returns how many events arrived."""
        settings = self._settings
        kwargs: dict[str, Any] = {
            "resource_version": version,
            "allow_watch_bookmarks": True,
            "timeout_seconds": settings.watch_timeout_seconds,
            "_request_timeout": (
                settings.connect_timeout_seconds,
                settings.watch_timeout_seconds + settings.read_timeout_margin_seconds,
            ),
        }
        if self._label_selector:
            kwargs["label_selector"] = self._label_selector
        events = 0
        self._watch = watch.Watch()  # type: ignore[no-untyped-call]
        try:
            # With timeout_seconds set, Watch.stream neither retries nor swallows an ERROR event: a 410 arrives
            # here as ApiException(410), which the caller turns into a relist.
            for event in self._watch.stream(self._list_function, **kwargs):  # type: ignore[no-untyped-call]
                item = event["raw_object"]
                self.resource_version = str(item.get("metadata", {}).get("resourceVersion") or self.resource_version)
                if event["type"] != "BOOKMARK":
                    events += 1
                    self._on_event(str(event["type"]), item)
                    self._backoff.reset()
                if self._stop.is_set():
                    break
        finally:
            self._watch = None
        return events

    def _pause(self, reason: str) -> None:
        if self._stop.is_set():
            return
        delay = self._backoff.next()
        _log.warning("%s: %s; retrying in %.1f s", self.name, reason, delay)
        self._stop.wait(delay)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""

"""List, then watch from the list's resourceVersion, for one resource type, in a thread of its own.

The official client is synchronous, so each watched type gets a thread; what it sees is handed on through
callbacks (the source forwards them to the event loop). The protocol, as client-go's reflector does it:

- list (in pages of `list_page_size`, as client-go's pager does; a continue token that expired mid-way, 410, falls
  back to one full list), remember the list's `resourceVersion`, report the complete set (`on_list`);
- watch from that version with `allowWatchBookmarks`, report each ADDED / MODIFIED / DELETED (`on_event`) and
  advance the version with every event and BOOKMARK, so a reconnect resumes where it stopped;
- a watch the server ends (its `timeoutSeconds`) or a dropped connection: watch again from the last version;
- `410 Gone` (the version is older than the server's history, as after a compaction or an API server restart):
  list again, because events were lost; at once the first time, with backoff when the watch from the fresh list
  is gone too (a server that answers 410 to everything must not be hammered with full lists);
- any other failure: retry after a bounded exponential backoff with jitter, reset by the next success, and never
  sooner than the server's `Retry-After` (429, 503);
- what is logged of a failure is its status code and reason word, never the server's message: that text can quote
  request or object content.
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
    # Lists are read in pages of this many items (client-go's default), so a large cluster's list is not one reply.
    list_page_size: int = 500


class Backoff:
    """Exponential delays (doubling up to a cap) with +-20 % jitter, so that many servers do not retry in step."""

    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self._attempt = 0

    def next(self) -> float:
        delay = backoff_delay(self._attempt, self.initial, self.maximum)
        self._attempt = min(self._attempt + 1, 32)
        return delay

    def reset(self) -> None:
        self._attempt = 0


def backoff_delay(attempt: int, initial: float, maximum: float) -> float:
    """The delay before retry number `attempt` (0: the first): doubling from `initial` up to `maximum`, +-20 %."""
    return float(min(maximum, initial * (2 ** min(attempt, 32))) * random.uniform(0.8, 1.2))


def retry_after_seconds(error: ApiException, limit: float = 300.0) -> float:
    """The server's `Retry-After` (seconds form, as the API server sends it), 0 when absent, capped at `limit`."""
    value = (error.headers or {}).get("Retry-After")
    try:
        return min(limit, max(0.0, float(value))) if value is not None else 0.0
    except ValueError:
        return 0.0


def describe_api_error(error: ApiException) -> str:
    """`403 Forbidden`: the code and the reason's first word. An ERROR event's reason is `Reason: message`, and
    the message may quote content."""
    reason = str(error.reason or "").split(":", 1)[0].strip()
    return f"{error.status} {reason}".strip()


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
        # Separate from _backoff, which every successful list resets: how long to wait after a 410 that followed
        # a 410 (the list in between succeeded, the watch from it was gone again).
        self._gone_backoff = Backoff(settings.initial_backoff_seconds, settings.max_backoff_seconds)
        self._gone_in_a_row = 0
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
                    self._gone_in_a_row += 1
                    if self._gone_in_a_row > 1:
                        self._pause("the watch from the new list was gone too", self._gone_backoff)
                    continue
                self._pause(f"API error {describe_api_error(error)}", minimum=retry_after_seconds(error))
            except Exception as error:  # connection refused, reset, timeouts, a half-read body: all retried
                self._pause(f"{type(error).__name__}: {_first_line(error)}")

    def _list(self) -> str:
        try:
            items, version = self._list_pages(self._settings.list_page_size)
        except ApiException as error:
            if error.status != HTTP_GONE:
                raise
            # The continue token expired between pages (a compaction): one full list instead, as client-go does.
            _log.info("%s: the paged list expired (410); listing in one go", self.name)
            items, version = self._list_pages(0)
        self.lists += 1
        _log.info("%s: listed %d at resourceVersion %s", self.name, len(items), version)
        self._on_list(items)
        self._backoff.reset()
        return version

    def _list_pages(self, page_size: int) -> tuple[list[Item], str]:
        """Every item, in pages of `page_size` (0: one reply), and the list's resourceVersion."""
        timeout = (self._settings.connect_timeout_seconds, self._settings.watch_timeout_seconds)
        kwargs: dict[str, Any] = {"_preload_content": False, "_request_timeout": timeout}
        if self._label_selector:
            kwargs["label_selector"] = self._label_selector
        if page_size > 0:
            kwargs["limit"] = page_size
        items: list[Item] = []
        while True:
            response = self._list_function(**kwargs)
            try:
                body = json.loads(response.data)
            finally:
                response.release_conn()
            items.extend(body.get("items") or [])
            metadata = body["metadata"]
            following = metadata.get("continue")
            if not following or self._stop.is_set():
                return items, str(metadata["resourceVersion"])
            kwargs["_continue"] = following

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
                if self._gone_in_a_row:
                    self._gone_in_a_row = 0
                    self._gone_backoff.reset()
                if event["type"] != "BOOKMARK":
                    events += 1
                    self._on_event(str(event["type"]), item)
                    self._backoff.reset()
                if self._stop.is_set():
                    break
        finally:
            self._watch = None
        return events

    def _pause(self, reason: str, backoff: Backoff | None = None, *, minimum: float = 0.0) -> None:
        if self._stop.is_set():
            return
        delay = max(minimum, (backoff or self._backoff).next())
        _log.warning("%s: %s; retrying in %.1f s", self.name, reason, delay)
        self._stop.wait(delay)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else ""

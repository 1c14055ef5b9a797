"""Watch the policy file and call back on every change of its content.

The directory is watched, not the file: editors and Kubernetes ConfigMap volumes replace a file by renaming or by
swapping a symlink, which a watch on the file itself would miss. A burst of changes is one reload, once the
directory has been quiet for `debounce_ms` (`--debounce-ms`): `watchfiles` hands over changes in batches (50 ms
apart at most) and `_Settle` waits for the quiet time after the last batch. (watchfiles' own `debounce` is only the
longest it groups a batch; its `rust_timeout` also ends a batch, so it cannot wait for a quiet time itself.)
Loading the new version is the callback's job (`PolicyReloader.reload`: off the event loop, an invalid version
reported and the last good one kept).

The watch survives whatever happens to the file and to itself: an exception from the callback is logged and the
next change is handled as usual; if the watch fails, or the directory is removed or replaced (a new inode, which
inotify does not follow), it is logged and set up again with backoff, and a change made meanwhile is picked up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import watchfiles

from egress_xds.defaults import FILE_DEBOUNCE_MS

_log = logging.getLogger("egress_xds.sources")

IDENTITY_CHECK_MS = 1000  # how often the directory's identity is checked when nothing changes
BATCH_MS = 1600  # the longest watchfiles groups changes into one batch (its `debounce`)
RESTART_BACKOFF_SECONDS = (0.1, 10.0)  # first and longest wait before watching again


async def watch_policy_file(
    path: Path,
    on_change: Callable[[], Awaitable[object]],
    *,
    debounce_ms: int = FILE_DEBOUNCE_MS,
    stop: asyncio.Event | None = None,
    backoff: tuple[float, float] = RESTART_BACKOFF_SECONDS,
) -> None:
    """Run until `stop` is set (or the task is cancelled), awaiting `on_change` once per coalesced change of the
    file's content."""
    path = path.absolute()
    stop = stop if stop is not None else asyncio.Event()
    settle = _Settle(path, await asyncio.to_thread(_read, path), on_change, debounce_ms / 1000)
    delay = backoff[0]
    first = True
    last_failure = ""
    try:
        while not stop.is_set():
            if not first:  # a change made while nothing watched
                settle.changed()
            first = False
            try:
                async for watched in _watch_round(path, stop):
                    delay, last_failure = backoff[0], ""
                    if watched:
                        settle.changed()
            except Exception as error:  # the watch is set up again, whatever failed
                failure = f"{type(error).__name__}: {error}"
                level = logging.DEBUG if failure == last_failure else logging.ERROR  # a lasting failure: logged once
                _log.log(level, "watching %s failed (%s); watching again in %.1fs", path, failure, delay)
                last_failure = failure
            else:
                if stop.is_set():
                    return
                _log.warning("the directory of %s was removed or replaced; watching again in %.1fs", path, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
            delay = min(delay * 2, backoff[1])
    finally:
        await settle.close()


class _Settle:
    """Handles a change once no other came for `quiet` seconds; one handling at a time, none lost: a change that
    comes while one is handled is handled after it (once its own quiet time passed)."""

    def __init__(
        self, path: Path, last_text: str | None, on_change: Callable[[], Awaitable[object]], quiet: float
    ) -> None:
        self._path = path
        self._last_text = last_text
        self._on_change = on_change
        self._quiet = quiet
        self._timer: asyncio.TimerHandle | None = None
        self._handling: asyncio.Task[None] | None = None
        self._again = False

    def changed(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(self._quiet, self._settled)

    def _settled(self) -> None:
        self._timer = None
        if self._handling is not None and not self._handling.done():
            self._again = True
            return
        self._handling = asyncio.get_running_loop().create_task(self._handle())

    async def _handle(self) -> None:
        while True:
            self._again = False
            self._last_text = await _handle(self._path, self._last_text, self._on_change)
            if not self._again:
                return

    async def close(self) -> None:
        """Stop waiting; a handling in progress finishes."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._handling is not None:
            await asyncio.shield(self._handling)


async def _watch_round(path: Path, stop: asyncio.Event) -> AsyncIterator[bool]:
    """Yield True per batch of changes that concern the file, False on a quiet interval; end when the directory
    is no longer the one being watched."""
    directory = path.parent
    identity = _identity(directory)

    def concerns_policy(_change: watchfiles.Change, changed_path: str) -> bool:
        # Kubernetes ConfigMaps swap a `..data` symlink; editors write temporary files next to the target.
        changed = Path(changed_path)
        return changed in (path, directory) or changed.name.startswith("..")

    async for changes in watchfiles.awatch(
        directory,
        watch_filter=concerns_policy,
        debounce=BATCH_MS,
        step=50,
        stop_event=stop,
        recursive=False,
        rust_timeout=IDENTITY_CHECK_MS,
        yield_on_timeout=True,
    ):
        if _identity(directory) != identity:
            return
        yield bool(changes)


async def _handle(path: Path, last_text: str | None, on_change: Callable[[], Awaitable[object]]) -> str | None:
    text = await asyncio.to_thread(_read, path)
    if text == last_text:
        return last_text
    try:
        await on_change()
    except Exception:  # a failing reload must not end the watch
        _log.exception("handling a change of %s failed (a bug in egress-xds); still watching", path)
    return text


def _identity(directory: Path) -> tuple[int, int] | None:
    try:
        status = os.stat(directory)
    except OSError:
        return None
    return (status.st_dev, status.st_ino)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None

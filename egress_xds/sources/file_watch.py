"""Watch the policy file and call back on every change of its content.

The directory is watched, not the file: editors and Kubernetes ConfigMap volumes replace a file by renaming or by
swapping a symlink, which a watch on the file itself would miss. Bursts of changes are coalesced by `watchfiles`'
debounce. Loading the new version is the callback's job (`PolicyReloader.reload`: off the event loop, an invalid
version reported and the last good one kept).

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
    last_text = await asyncio.to_thread(_read, path)
    delay = backoff[0]
    first = True
    last_failure = ""
    while not stop.is_set():
        if not first:  # a change made while nothing watched
            last_text = await _handle(path, last_text, on_change)
        first = False
        try:
            async for watched in _watch_round(path, debounce_ms, stop):
                delay, last_failure = backoff[0], ""
                if watched:
                    last_text = await _handle(path, last_text, on_change)
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


async def _watch_round(path: Path, debounce_ms: int, stop: asyncio.Event) -> AsyncIterator[bool]:
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
        debounce=debounce_ms,
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

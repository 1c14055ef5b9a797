"""When the file watch calls back, on a real directory (inotify): a change of the file's *content* does, anything
else does not (found by mutation testing, scripts/mutation.sh file_watch; the reload side is test_file_watch.py).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from egress_xds.sources.file_watch import watch_policy_file
from tests.support.egress import replace_file

DEBOUNCE_MS = 50
QUIET_SECONDS = 0.5  # several debounce intervals: a callback that was going to come has come
WAIT_SECONDS = 10.0


class Calls:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.texts: list[str | None] = []

    async def on_change(self) -> None:
        self.texts.append(self.path.read_text() if self.path.exists() else None)

    async def wait_for(self, count: int) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while len(self.texts) < count:
            assert time.monotonic() < deadline, f"timed out waiting for call {count}: {self.texts}"
            await asyncio.sleep(0.02)
        await asyncio.sleep(QUIET_SECONDS)
        assert len(self.texts) == count, self.texts


@asynccontextmanager
async def watching(path: Path, stop: asyncio.Event | None) -> AsyncIterator[tuple[Calls, asyncio.Task[None]]]:
    calls = Calls(path)
    task = asyncio.create_task(
        watch_policy_file(path, calls.on_change, debounce_ms=DEBOUNCE_MS, stop=stop, backoff=(0.05, 0.2))
    )
    await asyncio.sleep(0.2)  # the watch is set up
    try:
        yield calls, task
    finally:
        if stop is not None:
            stop.set()
            await asyncio.wait_for(task, timeout=5)
        else:
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=5)


def _policy(tmp_path: Path, text: str = "one\n") -> Path:
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "policy.yaml"
    path.write_text(text)
    return path


async def test_rewriting_the_same_content_is_no_change(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    async with watching(path, asyncio.Event()) as (calls, _):
        replace_file(path, "one\n")
        path.touch()
        await asyncio.sleep(QUIET_SECONDS)
        assert calls.texts == []
        replace_file(path, "two\n")
        await calls.wait_for(1)
        assert calls.texts == ["two\n"]


async def test_other_files_in_the_directory_are_ignored(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    async with watching(path, asyncio.Event()) as (calls, _):
        (path.parent / "notes.txt").write_text("x")
        (path.parent / "policy.yaml.bak").write_text("y")
        await asyncio.sleep(QUIET_SECONDS)
        assert calls.texts == []


async def test_a_removed_file_is_a_change_and_so_is_its_return(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    async with watching(path, asyncio.Event()) as (calls, _):
        path.unlink()
        await calls.wait_for(1)
        path.write_text("back\n")
        await calls.wait_for(2)
        assert calls.texts == [None, "back\n"]


async def test_a_configmap_symlink_swap_is_a_change(tmp_path: Path) -> None:
    # A Kubernetes ConfigMap volume: policy.yaml -> ..data/policy.yaml, ..data -> ..2024_01; an update writes a
    # new ..2024_02 and swaps the ..data symlink: the file itself is never written.
    directory = tmp_path / "etc"
    directory.mkdir()
    for version, text in (("..v1", "one\n"), ("..v2", "two\n")):
        (directory / version).mkdir()
        (directory / version / "policy.yaml").write_text(text)
    (directory / "..data").symlink_to("..v1")
    path = directory / "policy.yaml"
    path.symlink_to("..data/policy.yaml")
    async with watching(path, asyncio.Event()) as (calls, _):
        (directory / "..data_tmp").symlink_to("..v2")
        os.replace(directory / "..data_tmp", directory / "..data")
        await calls.wait_for(1)
        assert calls.texts == ["two\n"]


async def test_without_a_stop_event_the_watch_runs_until_cancelled(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    async with watching(path, None) as (calls, task):
        replace_file(path, "two\n")
        await calls.wait_for(1)
        assert not task.done()


async def test_a_replaced_directory_with_the_same_content_is_no_change(tmp_path: Path) -> None:
    path = _policy(tmp_path)
    async with watching(path, asyncio.Event()) as (calls, _):
        # A new directory (a new inode: the watch is set up again) holding the same file.
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        (fresh / "policy.yaml").write_text("one\n")
        os.rename(path.parent, tmp_path / "old")
        os.rename(fresh, path.parent)
        await asyncio.sleep(1.5)  # past the watch's identity check (IDENTITY_CHECK_MS) and its restart
        assert calls.texts == []
        replace_file(path, "two\n")  # and the new directory is watched
        await calls.wait_for(1)
        assert calls.texts == ["two\n"]

"""The policy file watcher with the real reloader, on a real directory (inotify): it survives anything a file or
a reload can do, follows a directory that is replaced, and never blocks the event loop while a file is parsed."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import PolicySet
from egress_xds.sources.file import load_policy_file
from egress_xds.sources.file_watch import watch_policy_file
from egress_xds.sources.reloader import FILE_CHANGE, PolicyReloader
from tests.support.egress import replace_file

DEBOUNCE_MS = 50
WAIT_SECONDS = 10.0


def policy_text(port: int) -> str:
    return f"httpsProxy: http://10.0.0.1:{port}\n"


@dataclass
class Watched:
    path: Path
    published: list[PolicySet] = field(default_factory=list)
    rejected: list[ConfigError] = field(default_factory=list)

    def ports(self) -> list[int]:
        return [
            endpoint.port
            for policies in self.published
            for policy in policies.policies
            for proxy in policy.proxies.values()
            for endpoint in proxy.endpoints[:1]
        ]

    async def wait(self, condition: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_SECONDS
        while not condition():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {self}"
            await asyncio.sleep(0.02)


@asynccontextmanager
async def run_watch(
    tmp_path: Path,
    read: Callable[[Path], PolicySet],
    on_change: Callable[[PolicyReloader], object] | None = None,
    debounce_ms: int = DEBOUNCE_MS,
) -> AsyncIterator[Watched]:
    directory = tmp_path / "etc"
    directory.mkdir()
    path = directory / "policy.yaml"
    path.write_text(policy_text(3128))
    watched = Watched(path)
    reloader = PolicyReloader(lambda: read(path), watched.published.append, watched.rejected.append, source=str(path))
    stop = asyncio.Event()

    async def changed() -> object:
        return await (on_change(reloader) if on_change is not None else reloader.reload(FILE_CHANGE))  # type: ignore[misc]

    task = asyncio.create_task(
        watch_policy_file(path, changed, debounce_ms=debounce_ms, stop=stop, backoff=(0.05, 0.2))
    )
    await asyncio.sleep(0.2)  # the watch is set up
    try:
        yield watched
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=5)


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[Watched]:
    async with run_watch(tmp_path, load_policy_file) as watched:
        yield watched


async def test_a_loader_that_raises_anything_is_a_rejected_reload_and_watching_goes_on(tmp_path: Path) -> None:
    def fragile_load(path: Path) -> PolicySet:
        if "boom" in path.read_text():
            raise RecursionError("maximum recursion depth exceeded")  # what a parser bug looks like
        return load_policy_file(path)

    async with run_watch(tmp_path, fragile_load) as watched:
        replace_file(watched.path, "# boom\n" + policy_text(3129))
        await watched.wait(lambda: len(watched.rejected) == 1, "the rejection")
        (issue,) = watched.rejected[0].issues
        assert "internal error" in issue.message and "RecursionError" in issue.message
        replace_file(watched.path, policy_text(3130))
        await watched.wait(lambda: watched.ports() == [3130], "the next valid edit")


async def test_a_failing_change_handler_does_not_end_the_watch(tmp_path: Path) -> None:
    calls: list[int] = []

    async def flaky(reloader: PolicyReloader) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the handler")
        return await reloader.reload(FILE_CHANGE)

    async with run_watch(tmp_path, load_policy_file, flaky) as watched:
        replace_file(watched.path, policy_text(3131))
        await watched.wait(lambda: len(calls) == 1, "the first change")
        replace_file(watched.path, policy_text(3132))
        await watched.wait(lambda: watched.ports() == [3132], "the second change")


async def test_a_removed_and_recreated_directory_is_watched_again(strict: Watched) -> None:
    directory = strict.path.parent
    shutil.rmtree(directory)
    await asyncio.sleep(0.3)
    directory.mkdir()
    strict.path.write_text(policy_text(3133))  # written while the old watch sees nothing
    await strict.wait(lambda: strict.ports() == [3133], "the file in the new directory")
    replace_file(strict.path, policy_text(3134))
    await strict.wait(lambda: strict.ports() == [3133, 3134], "a later edit in the new directory")


async def test_parsing_does_not_block_the_event_loop(tmp_path: Path) -> None:
    parse_seconds = 1.0

    def slow_load(path: Path) -> PolicySet:
        if "slow" in path.read_text():
            time.sleep(parse_seconds)  # a large file: the parse holds its thread this long
        return load_policy_file(path)

    async with run_watch(tmp_path, slow_load) as watched:
        replace_file(watched.path, "# slow\n" + policy_text(3135))
        longest, last = 0.0, time.perf_counter()
        deadline = last + WAIT_SECONDS
        while not watched.published and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            longest, last = max(longest, now - last), now
        assert watched.ports() == [3135]
        assert longest < 0.3, f"the event loop stalled {longest:.2f}s while a policy was parsed"


async def test_a_burst_of_edits_is_one_reload_once_the_file_was_quiet_for_the_debounce(tmp_path: Path) -> None:
    """`--debounce-ms 600`: nine edits 100 ms apart are one reload, of the last edit, no sooner than 600 ms after
    it (watchfiles' own `debounce` is only a cap; its quiet time was fixed at 50 ms, so each edit was a reload)."""
    async with run_watch(tmp_path, load_policy_file, debounce_ms=600) as watched:
        for port in range(4000, 4009):
            watched.path.write_text(policy_text(port))
            await asyncio.sleep(0.1)
        last_edit = time.monotonic()
        await watched.wait(lambda: bool(watched.published), "the reload")
        settled_after = time.monotonic() - last_edit
        await asyncio.sleep(1.0)  # nothing more comes
    assert watched.ports() == [4008]
    assert settled_after >= 0.5, settled_after

"""From a policy set to snapshots in the cache: the one place where sources meet the xDS server.

Each (policy, node mode) pair is one group with one snapshot, shared by every node it selects. On a new policy set
only the groups whose resources changed get a new snapshot (the cache compares content hashes), so only their
streams are woken; groups that disappeared are removed, and streams whose selector result changed move.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from egress_xds.policy.model import PolicySet
from egress_xds.policy.node import Node, NodeMode, PolicyGroup, select_policy
from egress_xds.translate import translate
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.snapshot import Snapshot

_log = logging.getLogger("egress_xds.publish")

# A build in a worker thread that another publish overtook is built again there this many times in all, then on the
# loop (where nothing can overtake it): a burst of publishes cannot keep one waiting forever.
_OVERTAKEN_BUILDS_IN_THREAD = 3


@dataclass(frozen=True)
class PublishReport:
    """What a publish did: groups whose snapshot changed, groups removed, streams moved, time spent."""

    changed: tuple[PolicyGroup, ...]
    removed: tuple[Hashable, ...]
    moved_streams: int
    build_seconds: float


def group_of(policies: PolicySet, node: Node) -> PolicyGroup | None:
    policy = select_policy(policies, node)
    return PolicyGroup(policy.name, node.mode) if policy is not None else None


@dataclass(frozen=True)
class Build:
    """The snapshots of a policy set, built but not yet in the cache."""

    policies: PolicySet
    snapshots: dict[PolicyGroup, Snapshot]
    seconds: float


def build_snapshots(policies: PolicySet) -> Build:
    """Translate every (policy, mode) and prepare its snapshot. Pure: touches no shared state, so it may run in a
    worker thread while the event loop serves streams."""
    started = time.perf_counter()
    snapshots: dict[PolicyGroup, Snapshot] = {}
    for policy in policies.policies:
        for mode in NodeMode:
            resources = translate(policy, mode)
            snapshots[PolicyGroup(policy.name, mode)] = Snapshot(resources.by_type_url())
    return Build(policies, snapshots, time.perf_counter() - started)


class PolicyPublisher:
    """Keeps the cache in step with the current policy set."""

    def __init__(self, cache: SnapshotCache) -> None:
        self.cache = cache
        self.policies = PolicySet(())
        self.generation = 0  # how many publishes were applied: tells a build in a thread that it was overtaken

    def publish(self, policies: PolicySet) -> PublishReport:
        """Build and apply now, on the caller's thread."""
        return self.apply(build_snapshots(policies))

    async def publish_off_loop(self, current: Callable[[], PolicySet]) -> PublishReport:
        """Build `current()` in a worker thread (translating a large policy takes seconds, and the event loop keeps
        serving every stream from the last snapshots meanwhile), then apply it on the loop. A publish applied in
        between (another source) may have made that build stale: it is then built again from `current()`."""
        for _ in range(_OVERTAKEN_BUILDS_IN_THREAD):
            generation = self.generation
            built = await asyncio.to_thread(build_snapshots, current())
            if self.generation == generation:
                return self.apply(built)
        return self.apply(build_snapshots(current()))  # overtaken every time: build where nothing can overtake it

    def apply(self, built: Build) -> PublishReport:
        """Swap the cache to `built`: only groups whose content changed wake their streams."""
        snapshots = built.snapshots
        changed = tuple(key for key, snapshot in snapshots.items() if self.cache.set_snapshot(key, snapshot))
        existing = self.cache.keys()
        removed = tuple(key for key in existing if key not in snapshots)
        for key in removed:
            self.cache.remove(key)
        moved = 0
        if _selection(built.policies) != _selection(self.policies):  # re-matching every stream is O(streams)
            moved = self.cache.set_grouping(lambda node: group_of(built.policies, node))
        self.policies = built.policies
        self.generation += 1
        return PublishReport(changed, removed, moved, built.seconds)


def _selection(policies: PolicySet) -> list[tuple[str, object]]:
    """What decides a node's group: the policies' names and selectors, in order."""
    return [(policy.name, policy.selector) for policy in policies.policies]


class CoalescedPublishes:
    """Publishes `current()` off the loop, one build at a time, for a source whose changes arrive as events (the
    Kubernetes watch): a request while a build runs is folded into one more build after it, so a burst of N events
    costs at most two builds, and the event loop never translates."""

    def __init__(
        self,
        publisher: PolicyPublisher,
        current: Callable[[], PolicySet],
        on_report: Callable[[PublishReport], None],
    ) -> None:
        self._publisher = publisher
        self._current = current
        self._on_report = on_report
        self._requested = False
        self._task: asyncio.Task[None] | None = None

    def request(self) -> None:
        """Publish soon (called on the event loop)."""
        self._requested = True
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def idle(self) -> None:
        """Wait until every requested publish has been applied."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._requested:
            self._requested = False
            try:
                report = await self._publisher.publish_off_loop(self._current)
            except Exception:  # a policy that parsed must translate: this is a bug, and the next change may pass
                _log.exception("internal error while publishing (a bug in egress-xds; the last snapshots stay)")
                continue
            self._on_report(report)

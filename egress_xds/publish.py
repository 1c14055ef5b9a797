"""From a policy set to snapshots in the cache: the one place where sources meet the xDS server.

Each (policy, node mode) pair is one group with one snapshot, shared by every node it selects. On a new policy set
only the groups whose resources changed get a new snapshot (the cache compares content hashes), so only their
streams are woken; groups that disappeared are removed, and streams whose selector result changed move.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable
from dataclasses import dataclass

from egress_xds.policy.model import PolicySet
from egress_xds.policy.node import Node, NodeMode, PolicyGroup, select_policy
from egress_xds.translate import translate
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.snapshot import Snapshot

_log = logging.getLogger("egress_xds.publish")


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


class PolicyPublisher:
    """Keeps the cache in step with the current policy set."""

    def __init__(self, cache: SnapshotCache) -> None:
        self.cache = cache
        self.policies = PolicySet(())

    def publish(self, policies: PolicySet) -> PublishReport:
        started = time.perf_counter()
        snapshots: dict[PolicyGroup, Snapshot] = {}
        for policy in policies.policies:
            for mode in NodeMode:
                resources = translate(policy, mode)
                snapshots[PolicyGroup(policy.name, mode)] = Snapshot(resources.by_type_url())
        build_seconds = time.perf_counter() - started
        changed = tuple(key for key, snapshot in snapshots.items() if self.cache.set_snapshot(key, snapshot))
        existing = self.cache.keys()
        removed = tuple(key for key in existing if key not in snapshots)
        for key in removed:
            self.cache.remove(key)
        moved = 0
        if _selection(policies) != _selection(self.policies):  # re-matching every stream is O(streams)
            moved = self.cache.set_grouping(lambda node: group_of(policies, node))
        self.policies = policies
        return PublishReport(changed, removed, moved, build_seconds)


def _selection(policies: PolicySet) -> list[tuple[str, object]]:
    """What decides a node's group: the policies' names and selectors, in order."""
    return [(policy.name, policy.selector) for policy in policies.policies]

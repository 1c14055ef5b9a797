"""The snapshot cache: only affected watches wake; grouping decides who gets what."""

from __future__ import annotations

from collections.abc import Hashable

from egress_xds.policy.node import Node
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.xds.cache import SnapshotCache, Watch
from tests.xds.data import cluster, snapshot


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def by_team(node: Node) -> Hashable | None:
    return node.metadata.get("team")


def watch(cache: SnapshotCache, node_id: str, team: str | None) -> tuple[Watch, Wakes]:
    wakes = Wakes()
    metadata = {"team": team} if team else {}
    return cache.watch(Node(node_id, metadata), wakes), wakes


def test_set_snapshot_wakes_only_that_group() -> None:
    cache = SnapshotCache(by_team)
    red, red_wakes = watch(cache, "r", "red")
    blue, blue_wakes = watch(cache, "b", "blue")
    cache.set_snapshot("red", snapshot([cluster("a")]))
    assert (red_wakes.count, blue_wakes.count) == (1, 0)
    assert red.snapshot() is cache.get("red")
    assert blue.snapshot() is None  # no snapshot for its group yet: it waits


def test_identical_snapshot_wakes_nobody() -> None:
    cache = SnapshotCache(by_team)
    _, wakes = watch(cache, "r", "red")
    first = snapshot([cluster("a")])
    assert cache.set_snapshot("red", first)
    assert not cache.set_snapshot("red", snapshot([cluster("a")]))
    assert wakes.count == 1
    assert cache.get("red") is first


def test_regrouping_moves_and_wakes_only_moved_streams() -> None:
    cache = SnapshotCache(by_team)
    cache.set_snapshot("red", snapshot([cluster("r")]))
    cache.set_snapshot("blue", snapshot([cluster("b")]))
    mover, mover_wakes = watch(cache, "mover", "red")
    stayer, stayer_wakes = watch(cache, "stayer", "red")
    moved = cache.set_grouping(lambda node: "blue" if node.id == "mover" else by_team(node))
    assert moved == 1
    assert (mover_wakes.count, stayer_wakes.count) == (1, 0)
    assert mover.snapshot() is cache.get("blue") and stayer.snapshot() is cache.get("red")
    assert (cache.watch_count("red"), cache.watch_count("blue")) == (1, 1)


def test_unmatched_nodes_get_an_empty_snapshot_or_wait() -> None:
    empty_by_default = SnapshotCache(by_team)
    lonely, _ = watch(empty_by_default, "lonely", None)
    unmatched = lonely.snapshot()
    assert unmatched is not None and len(unmatched.resources(CDS)) == 0
    waiting = SnapshotCache(by_team, unmatched=None)
    lonely, _ = watch(waiting, "lonely", None)
    assert lonely.snapshot() is None


def test_removed_group_keeps_streams_waiting_until_it_returns() -> None:
    cache = SnapshotCache(by_team)
    red, wakes = watch(cache, "r", "red")
    cache.set_snapshot("red", snapshot([cluster("a")]))
    cache.remove("red")
    assert red.snapshot() is None
    cache.set_snapshot("red", snapshot([cluster("a")]))
    assert red.snapshot() is not None and wakes.count == 2


def test_closed_watch_is_forgotten() -> None:
    cache = SnapshotCache(by_team)
    red, wakes = watch(cache, "r", "red")
    red.close()
    cache.set_snapshot("red", snapshot([cluster("a")]))
    assert wakes.count == 0 and cache.watch_count("red") == 0

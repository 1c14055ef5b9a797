"""The traffic store: counts per workload and destination within a fixed memory budget."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from egress_xds.traffic.entry import TrafficEvent
from egress_xds.traffic.outcome import Outcome
from egress_xds.traffic.store import OTHER, TrafficStore


def event(destination: str, *, failure: str = "", sent: int = 1) -> TrafficEvent:
    return TrafficEvent(
        protocol="tcp",
        chain="tunnel-corp",
        kind="proxy",
        proxy="corp",
        decision="",
        destination=destination,
        address="",
        response_code=0,
        flags=("UF",) if failure else (),
        failure=failure,
        bytes_sent=sent,
        bytes_received=2 * sent,
        duration_ms=1,
    )


def test_counts_bytes_and_the_last_failure() -> None:
    store = TrafficStore()
    store.record("pod-a", "team-a", "team-a", event("api.example:443", sent=5), Outcome.OK, now=100.0)
    store.record(
        "pod-a",
        "team-a",
        "team-a",
        event("api.example:443", failure="tunnel_response:407"),
        Outcome.PROXY_AUTH_REQUIRED,
        now=160.0,
    )
    store.record("pod-a", "team-a", "team-a", event("api.example:443"), Outcome.OK, now=200.0)
    (workload,) = list(store)
    (row,) = workload.rows()
    assert row.outcomes() == {"ok": 2, "proxy-auth-required": 1}
    assert (row.bytes_sent, row.bytes_received) == (7, 14)
    assert (row.last_failure, row.last_failure_time, row.last_seen) == ("tunnel_response:407", 160.0, 200.0)


def test_a_reconnecting_node_keeps_its_counts_and_workloads_stay_apart() -> None:
    store = TrafficStore()
    for _ in range(2):  # two streams of the same node: the store is keyed by node id, not by stream
        store.record("pod-a", "team-a", "p", event("x:443"), Outcome.OK, now=1.0)
    store.record("pod-b", "team-b", "p", event("x:443"), Outcome.PROXY_FORBIDDEN, now=2.0)
    rows = {workload.node_id: workload.rows()[0].outcomes() for workload in store}
    assert rows == {"pod-a": {"ok": 2}, "pod-b": {"proxy-forbidden": 1}}


def test_the_busiest_destinations_stay_and_the_rest_is_other() -> None:
    store = TrafficStore(max_destinations=3)
    for _ in range(5):
        store.record("pod", "ns", "p", event("busy:443"), Outcome.OK, now=1.0)
    for number in range(50):
        store.record("pod", "ns", "p", event(f"d{number}:443"), Outcome.OK, now=2.0 + number)
    (workload,) = list(store)
    rows = workload.rows()
    assert len(workload.destinations) == 3
    assert rows[0].destination == "busy:443" and rows[0].total == 5
    assert rows[-1].destination == OTHER
    assert sum(row.total for row in rows) == 55  # nothing is lost: evicted counts are in "other"


def test_the_oldest_workload_goes_past_the_limit() -> None:
    store = TrafficStore(max_workloads=2)
    for node, now in (("a", 1.0), ("b", 2.0), ("a", 3.0), ("c", 4.0)):
        store.record(node, "", "", event("x:1"), Outcome.OK, now=now)
    assert sorted(workload.node_id for workload in store) == ["a", "c"]


@given(
    st.lists(
        st.tuples(st.sampled_from("abcd"), st.integers(min_value=0, max_value=30), st.sampled_from(list(Outcome))),
        max_size=200,
    )
)
def test_budget_and_totals_hold_for_any_sequence(records: list[tuple[str, int, Outcome]]) -> None:
    store = TrafficStore(max_workloads=3, max_destinations=4)
    seen: dict[str, int] = {}
    for position, (node, destination, outcome) in enumerate(records):
        before = {workload.node_id for workload in store}
        store.record(node, "", "", event(f"host{destination}:443"), outcome, now=float(position))
        for forgotten in before - {workload.node_id for workload in store}:
            del seen[forgotten]  # the workload seen longest ago went, with its counts
        seen[node] = seen.get(node, 0) + 1
    assert len(store) <= 3
    for workload in store:
        assert len(workload.destinations) <= 4
        assert sum(row.total for row in workload.rows()) == seen[workload.node_id]


def test_a_flood_of_distinct_destinations_stays_within_the_memory_budget() -> None:
    """5,000 distinct destinations for one workload, then 30,000 over 200 workloads: memory follows the budget, not
    the flood (measured with tracemalloc, the store's own allocations only)."""
    store = TrafficStore(max_workloads=200, max_destinations=100)
    tracemalloc.start()
    try:
        for number in range(5_000):
            store.record("pod-0", "ns", "p", event(f"flood-{number}.example:443"), Outcome.OK, now=float(number))
        one_workload, _ = tracemalloc.get_traced_memory()
        for number in range(30_000):
            node = f"pod-{number % 200}"
            store.record(node, "ns", "p", event(f"more-{number}.example:443"), Outcome.OK, now=float(number))
        full, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(store) == 200 and all(len(workload.destinations) <= 100 for workload in store)
    # About 0.6 KiB per tracked destination (bench/access_log_load.py measures it): one workload's 100 rows stay
    # well under 200 KiB whatever the flood, and the full store (20,000 rows) under 20 MiB.
    assert one_workload < 200 * 1024, one_workload
    assert full < 20 * 1024 * 1024, full

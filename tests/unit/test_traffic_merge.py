"""`traffic` over several replicas: one node's counts split over replicas add up to what one server would show."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.admin.traffic_merge import merge_traffic
from egress_xds.admin.v1 import admin_pb2

pytestmark = pytest.mark.fuzz

DESTINATIONS = ["api.example.test:443", "db.example.test:5432", "other"]
OUTCOMES = ["ok", "proxy-forbidden", "connect-failed"]


def row(destination: str, counts: dict[str, int], seen: int, failure: str = "") -> admin_pb2.DestinationTraffic:
    traffic = admin_pb2.DestinationTraffic(
        destination=destination, other=destination == "other", kind="proxy", proxy="corp", protocol="tcp"
    )
    traffic.outcomes.update(counts)
    traffic.bytes_sent = 10 * sum(counts.values())
    traffic.last_seen.FromSeconds(seen)
    if failure:
        traffic.last_failure = failure
        traffic.last_failure_time.FromSeconds(seen)
    return traffic


def answer(node: str, rows: list[admin_pb2.DestinationTraffic], seen: int) -> admin_pb2.GetTrafficResponse:
    response = admin_pb2.GetTrafficResponse(max_workloads=1000, max_destinations=100)
    workload = response.workloads.add(node_id=node, namespace="team-a", policy="team-a")
    workload.last_seen.FromSeconds(seen)
    workload.destinations.extend(rows)
    response.server_time.FromSeconds(seen + 1)
    return response


def test_one_node_counted_on_two_replicas_is_one_workload_with_the_sums() -> None:
    first = answer("pod-a", [row("api.example.test:443", {"ok": 3}, 100)], 100)
    second = answer(
        "pod-a",
        [row("api.example.test:443", {"ok": 2, "proxy-forbidden": 1}, 200, "HTTP 403"), row("other", {"ok": 9}, 50)],
        200,
    )
    merged = merge_traffic([first, second])
    (workload,) = merged.workloads
    assert [r.destination for r in workload.destinations] == ["api.example.test:443", "other"]  # other last
    api = workload.destinations[0]
    assert dict(api.outcomes) == {"ok": 5, "proxy-forbidden": 1} and api.bytes_sent == 60
    assert api.last_failure == "HTTP 403" and api.last_seen.ToSeconds() == 200
    assert workload.last_seen.ToSeconds() == 200 and merged.server_time.ToSeconds() == 201


split_counts = st.dictionaries(
    st.sampled_from(DESTINATIONS),
    st.dictionaries(st.sampled_from(OUTCOMES), st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=1),
    min_size=1,
)


@given(split_counts)
def test_counts_split_over_replicas_add_up(counts: dict[str, dict[str, tuple[int, int]]]) -> None:
    halves = [
        answer("pod-a", [row(d, {o: pair[side] for o, pair in c.items()}, 100 + side) for d, c in counts.items()], 1)
        for side in (0, 1)
    ]
    (workload,) = merge_traffic(halves).workloads
    got = {r.destination: dict(r.outcomes) for r in workload.destinations}
    assert got == {d: {o: a + b for o, (a, b) in c.items()} for d, c in counts.items()}
    totals = [(r.other, -sum(r.outcomes.values())) for r in workload.destinations]
    assert totals == sorted(totals)  # busiest first, other last


def test_no_answer_merges_to_an_empty_view() -> None:
    assert not merge_traffic([]).workloads

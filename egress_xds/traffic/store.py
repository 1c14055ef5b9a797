"""Counts per workload and destination, within a fixed memory budget.

A workload is one Envoy node (its id), with the namespace it claims (or its certificate says) and the policy that
selects it. Per workload at most `max_destinations` destinations are tracked, each by name and path (a destination
reached through two proxies, e.g. across a policy change, has a row for each); when a new one arrives and the
table is full, the destination seen least often so far is folded into the workload's "other" row (so the
busiest ones stay, and totals stay exact). At most `max_workloads` workloads are kept; past that the one seen
longest ago is forgotten. The memory used is therefore bounded whatever Envoys send.

Kept in memory only: across Envoy reconnects (keyed by node id, not by stream), reset when the server restarts.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

from egress_xds.traffic.entry import TrafficEvent
from egress_xds.traffic.outcome import FAILURES, OUTCOMES, Outcome, proxy_status

MAX_WORKLOADS = 1000
MAX_DESTINATIONS = 100
OTHER = "other"
_INDEX = {name: position for position, name in enumerate(OUTCOMES)}
_eviction_order = operator.attrgetter("total", "last_seen")  # seen least often, then longest ago


@dataclass(slots=True)
class DestinationStats:
    destination: str
    protocol: str = ""
    kind: str = ""
    proxy: str = ""
    decision: str = ""
    address: str = ""
    counts: list[int] = field(default_factory=lambda: [0] * len(OUTCOMES))
    total: int = 0  # sum(counts), kept for the eviction's ordering
    bytes_sent: int = 0
    bytes_received: int = 0
    last_seen: float = 0.0
    last_failure: str = ""
    last_failure_time: float = 0.0

    def outcomes(self) -> dict[str, int]:
        """Outcome -> count, only the outcomes seen."""
        return {name: count for name, count in zip(OUTCOMES, self.counts, strict=True) if count}

    def add(self, event: TrafficEvent, outcome: Outcome, now: float) -> None:
        self.counts[_INDEX[outcome.value]] += 1
        self.total += 1
        self.bytes_sent += event.bytes_sent
        self.bytes_received += event.bytes_received
        self.last_seen = now
        self.protocol, self.address = event.protocol, event.address
        if event.decision:
            self.decision = event.decision
        if outcome in FAILURES:
            self.last_failure = failure_detail(event)
            self.last_failure_time = now

    def fold(self, other: DestinationStats) -> None:
        """Add `other`'s counts to these (the "other" row absorbing an evicted destination)."""
        self.counts = [mine + theirs for mine, theirs in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        self.last_seen = max(self.last_seen, other.last_seen)
        if other.last_failure_time > self.last_failure_time:
            self.last_failure, self.last_failure_time = other.last_failure, other.last_failure_time


def failure_detail(event: TrafficEvent) -> str:
    """`tunnel_response:407`, `HTTP 403`, or Envoy's flags: what the proxy or Envoy said, in its own words."""
    if event.failure:
        return event.failure
    parts = []
    if event.protocol == "http" and event.response_code:
        parts.append(f"HTTP {proxy_status(event)}")
    if event.flags:
        parts.append("flags " + ",".join(event.flags))
    return " ".join(parts) or "closed"


@dataclass(slots=True)
class WorkloadStats:
    node_id: str
    namespace: str
    policy: str
    destinations: dict[tuple[str, str, str], DestinationStats] = field(default_factory=dict)  # by _key
    other: DestinationStats = field(default_factory=lambda: DestinationStats(OTHER))
    last_seen: float = 0.0

    def rows(self) -> list[DestinationStats]:
        """The destinations, busiest first, and "other" last when it holds anything."""
        rows = sorted(self.destinations.values(), key=lambda row: (-row.total, row.destination))
        return [*rows, self.other] if self.other.total else rows


@dataclass
class TrafficStore:
    max_workloads: int = MAX_WORKLOADS
    max_destinations: int = MAX_DESTINATIONS
    _workloads: OrderedDict[str, WorkloadStats] = field(default_factory=OrderedDict)

    def record(
        self, node_id: str, namespace: str, policy: str, event: TrafficEvent, outcome: Outcome, now: float
    ) -> None:
        workload = self._workload(node_id, namespace, policy)
        workload.last_seen = now
        key = (event.destination, event.kind, event.proxy)
        row = workload.destinations.get(key)
        if row is None:
            if len(workload.destinations) >= self.max_destinations:
                least = min(workload.destinations.values(), key=_eviction_order)
                del workload.destinations[(least.destination, least.kind, least.proxy)]
                workload.other.fold(least)
            row = DestinationStats(event.destination, kind=event.kind, proxy=event.proxy)
            workload.destinations[key] = row
        row.add(event, outcome, now)

    def __iter__(self) -> Iterator[WorkloadStats]:
        return iter(list(self._workloads.values()))

    def __len__(self) -> int:
        return len(self._workloads)

    def _workload(self, node_id: str, namespace: str, policy: str) -> WorkloadStats:
        workload = self._workloads.get(node_id)
        if workload is None:
            if len(self._workloads) >= self.max_workloads:
                self._workloads.popitem(last=False)
            workload = WorkloadStats(node_id, namespace, policy)
            self._workloads[node_id] = workload
        else:
            self._workloads.move_to_end(node_id)
            workload.namespace, workload.policy = namespace, policy
        return workload

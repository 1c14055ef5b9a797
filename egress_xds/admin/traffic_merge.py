"""One `GetTraffic` answer from the answers of several replicas.

An Envoy's access-log stream and its ADS stream are separate gRPC streams to the xDS cluster, so with several
replicas one node's traffic may be counted on more than one of them (and after a move, on the old and the new).
Merging sums what was counted for the same workload and the same path to the same destination: outcome counts and
bytes add up, the latest `last_seen` and its failure detail win. Rows stay busiest first, `other` last, as one
server orders them.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from egress_xds.admin.v1 import admin_pb2

_RowKey = tuple[str, bool, str, str, str, str, str]


def merge_traffic(responses: Sequence[admin_pb2.GetTrafficResponse]) -> admin_pb2.GetTrafficResponse:
    merged = admin_pb2.GetTrafficResponse()
    if not responses:
        return merged
    workloads: dict[str, admin_pb2.WorkloadTraffic] = {}
    rows: dict[str, dict[_RowKey, admin_pb2.DestinationTraffic]] = {}
    for response in responses:
        for workload in response.workloads:
            into = workloads.get(workload.node_id)
            if into is None:
                into = workloads[workload.node_id] = admin_pb2.WorkloadTraffic(node_id=workload.node_id)
                rows[workload.node_id] = {}
            if _later(workload.last_seen, into.last_seen) or not into.HasField("last_seen"):
                into.namespace, into.policy = workload.namespace, workload.policy
                into.last_seen.CopyFrom(workload.last_seen)
            for row in workload.destinations:
                _add_row(rows[workload.node_id], row)
    for node_id, workload in workloads.items():
        workload.destinations.extend(sorted(rows[node_id].values(), key=_busiest_first))
    merged.workloads.extend(sorted(workloads.values(), key=lambda workload: workload.node_id))
    merged.server_time.CopyFrom(max((response.server_time for response in responses), key=_nanoseconds))
    merged.max_workloads = responses[0].max_workloads
    merged.max_destinations = responses[0].max_destinations
    return merged


def _add_row(rows: dict[_RowKey, admin_pb2.DestinationTraffic], row: admin_pb2.DestinationTraffic) -> None:
    key = (row.destination, row.other, row.address, row.protocol, row.kind, row.proxy, row.decision)
    into = rows.get(key)
    if into is None:
        rows[key] = admin_pb2.DestinationTraffic()
        rows[key].CopyFrom(row)
        return
    for outcome, count in row.outcomes.items():
        into.outcomes[outcome] += count
    into.bytes_sent += row.bytes_sent
    into.bytes_received += row.bytes_received
    if _later(row.last_seen, into.last_seen):
        into.last_seen.CopyFrom(row.last_seen)
    if row.last_failure and (_later(row.last_failure_time, into.last_failure_time) or not into.last_failure):
        into.last_failure = row.last_failure
        into.last_failure_time.CopyFrom(row.last_failure_time)


def _busiest_first(row: admin_pb2.DestinationTraffic) -> tuple[bool, int, str]:
    return (row.other, -sum(row.outcomes.values()), row.destination)


def _later(stamp: Timestamp, than: Timestamp) -> bool:
    return _nanoseconds(stamp) > _nanoseconds(than)


def _nanoseconds(stamp: Timestamp) -> int:
    return int(stamp.ToNanoseconds())

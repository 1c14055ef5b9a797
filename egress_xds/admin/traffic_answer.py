"""The admin API's GetTraffic answer, read from the traffic store (egress_xds/traffic/store.py).

Texts in it came from Envoys (destinations, failure reasons) or from the policy (proxy names, decisions); every
one goes through the secret scrubber, like every other answer of the admin service.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from egress_xds.admin import messages
from egress_xds.admin.traffic_decisions import decision_finder
from egress_xds.admin.v1 import admin_pb2
from egress_xds.policy.model import PolicySet
from egress_xds.scrub import SecretScrubber
from egress_xds.traffic.store import DestinationStats, TrafficStore, WorkloadStats


def traffic_answer(
    store: TrafficStore, request: admin_pb2.GetTrafficRequest, scrubber: SecretScrubber, policies: PolicySet
) -> admin_pb2.GetTrafficResponse:
    response = admin_pb2.GetTrafficResponse(max_workloads=store.max_workloads, max_destinations=store.max_destinations)
    wanted = set(request.outcomes)
    decision = decision_finder(policies)
    for workload in sorted(store, key=lambda item: (item.namespace, item.node_id)):
        if request.node_id and workload.node_id != request.node_id:
            continue
        if request.namespace and workload.namespace != request.namespace:
            continue
        rows = [row for row in workload.rows() if not wanted or wanted.intersection(row.outcomes())]
        if rows:
            response.workloads.append(_workload(workload, rows, scrubber, decision))
    response.server_time.CopyFrom(messages.timestamp(time.time()))
    return response


def _workload(
    workload: WorkloadStats,
    rows: list[DestinationStats],
    scrubber: SecretScrubber,
    decision: Callable[[str, DestinationStats], str],
) -> admin_pb2.WorkloadTraffic:
    message = admin_pb2.WorkloadTraffic(
        node_id=scrubber.scrub(workload.node_id),
        namespace=scrubber.scrub(workload.namespace),
        policy=workload.policy,
        last_seen=messages.timestamp(workload.last_seen),
    )
    for row in rows:
        other = row is workload.other
        message.destinations.append(_destination(row, other, "" if other else decision(workload.policy, row), scrubber))
    return message


def _destination(
    row: DestinationStats, other: bool, decision: str, scrubber: SecretScrubber
) -> admin_pb2.DestinationTraffic:
    message = admin_pb2.DestinationTraffic(
        destination=scrubber.scrub(row.destination),
        other=other,
        address=row.address,
        protocol=row.protocol,
        kind=row.kind,
        proxy=scrubber.scrub(row.proxy),
        decision=scrubber.scrub(decision),
        outcomes=row.outcomes(),
        bytes_sent=row.bytes_sent,
        bytes_received=row.bytes_received,
        last_seen=messages.timestamp(row.last_seen),
        last_failure=scrubber.scrub(row.last_failure),
    )
    if row.last_failure_time:
        message.last_failure_time.CopyFrom(messages.timestamp(row.last_failure_time))
    return message

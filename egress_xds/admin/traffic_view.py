"""What `egress-xds traffic` prints: a table per workload, its JSON form, and the rules `--suggest-rules` prints.

node pod-a  namespace team-a  policy team-a
  api.example.test:443    via corp  ok 412  proxy-auth-required 3 (last 2m ago: tunnel_response:407)
"""

from __future__ import annotations

from typing import Any

from egress_xds.admin.status_view import format_age
from egress_xds.admin.v1 import admin_pb2
from egress_xds.policy.destinations import parse_host_port, parse_ip
from egress_xds.traffic.outcome import OUTCOMES

SUGGESTED_HEADER = (
    "# Rules suggested by `egress-xds traffic --suggest-rules` from what Envoys reported (review them first):\n"
    "# destinations reached directly stay direct; destinations a proxy refuses (403) are denied, so they fail at\n"
    "# once instead of after a round trip to the proxy.\n"
)


def traffic_table(response: admin_pb2.GetTrafficResponse) -> str:
    if not response.workloads:
        return "no traffic reported yet (Envoys stream their access log to this server as connections close)\n"
    now = _seconds(response.server_time)
    lines: list[str] = []
    for workload in response.workloads:
        header = f"node {workload.node_id}"
        if workload.namespace:
            header += f"  namespace {workload.namespace}"
        header += (
            f"  policy {workload.policy or '(none)'}  last seen {format_age(now - _seconds(workload.last_seen))} ago"
        )
        lines.append(header)
        width = max(len(row.destination) for row in workload.destinations)
        for row in workload.destinations:
            lines.append(f"  {row.destination:<{width}}  {_path(row):<12}  {_counts(row, now)}")
    other = [workload for workload in response.workloads if any(row.other for row in workload.destinations)]
    if other:
        lines.append(f"(other: destinations past the budget of {response.max_destinations} per workload)")
    return "\n".join(lines) + "\n"


def traffic_document(response: admin_pb2.GetTrafficResponse) -> dict[str, Any]:
    """The machine-readable form (`traffic -o json`)."""
    return {
        "serverTime": response.server_time.ToJsonString(),
        "maxWorkloads": response.max_workloads,
        "maxDestinationsPerWorkload": response.max_destinations,
        "workloads": [
            {
                "node": workload.node_id,
                "namespace": workload.namespace,
                "policy": workload.policy,
                "lastSeen": workload.last_seen.ToJsonString(),
                "destinations": [_row_document(row) for row in workload.destinations],
            }
            for workload in response.workloads
        ],
    }


def suggested_rules(response: admin_pb2.GetTrafficResponse) -> dict[str, Any]:
    """Policy `rules` reproducing what was observed: direct destinations as `direct`, destinations a proxy
    refused (proxy-forbidden) as `deny`; one rule per action and port. Empty `rules` when there is nothing."""
    groups: dict[tuple[str, int], tuple[set[str], set[str]]] = {}
    for workload in response.workloads:
        for row in workload.destinations:
            if row.other:
                continue
            outcomes = dict(row.outcomes)
            if outcomes.get("proxy-forbidden"):
                action = "deny"
            elif outcomes.get("direct") and row.kind == "direct":
                action = "direct"
            else:
                continue
            try:
                host, port = parse_host_port(row.destination)
            except ValueError:
                continue
            domains, cidrs = groups.setdefault((action, port), (set(), set()))
            ip = parse_ip(host)
            if ip is None:
                domains.add(host)
            else:
                cidrs.add(f"{ip}/{ip.max_prefixlen}")
    rules: list[dict[str, Any]] = []
    for (action, port), (domains, cidrs) in sorted(groups.items()):
        verb = "refused by the proxy" if action == "deny" else "reached directly"
        rule: dict[str, Any] = {"name": f"observed: {verb} on port {port}"}
        if domains:
            rule["domains"] = sorted(domains)
        if cidrs:
            rule["cidrs"] = sorted(cidrs)
        rule["ports"] = [port]
        rule["action"] = action
        rules.append(rule)
    return {"rules": rules}


def _path(row: admin_pb2.DestinationTraffic) -> str:
    if row.other:
        return ""
    if row.kind == "proxy":
        return f"via {row.proxy}"
    return row.kind


def _counts(row: admin_pb2.DestinationTraffic, now: float) -> str:
    outcomes = dict(row.outcomes)
    text = "  ".join(f"{name} {outcomes[name]}" for name in OUTCOMES if outcomes.get(name))
    if row.last_failure:
        text += f" (last {format_age(now - _seconds(row.last_failure_time))} ago: {row.last_failure})"
    return text


def _row_document(row: admin_pb2.DestinationTraffic) -> dict[str, Any]:
    document: dict[str, Any] = {
        "destination": row.destination,
        "other": row.other,
        "address": row.address,
        "protocol": row.protocol,
        "kind": row.kind,
        "proxy": row.proxy,
        "decision": row.decision,
        "outcomes": {name: row.outcomes[name] for name in OUTCOMES if name in row.outcomes},
        "bytesSent": row.bytes_sent,
        "bytesReceived": row.bytes_received,
        "lastSeen": row.last_seen.ToJsonString(),
        "lastFailure": row.last_failure,
    }
    if row.HasField("last_failure_time"):
        document["lastFailureTime"] = row.last_failure_time.ToJsonString()
    return document


def _seconds(stamp: Any) -> float:
    return float(stamp.ToNanoseconds()) / 1e9

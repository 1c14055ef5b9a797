"""`egress-xds status` output: pure functions from `ListNodesResponse` to text.

The table reads like `istioctl proxy-status`: one line per ADS stream, a column per resource type with its sync
status and how long it has been so, then every current NACK with Envoy's message in full, because that message
is the answer to "why is my sidecar not tunnelling". The detail view of one node adds the versions and the diff
between what the node ACKed and what it should have, resource by resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from egress_xds.admin.v1 import admin_pb2
from egress_xds.type_urls import ads_sort_key

ALWAYS_SHOWN = ("cds", "lds")
STATUS_TEXT = {
    admin_pb2.SYNC_STATUS_SYNCED: "SYNCED",
    admin_pb2.SYNC_STATUS_NOT_SENT: "NOT SENT",
    admin_pb2.SYNC_STATUS_STALE: "STALE",
    admin_pb2.SYNC_STATUS_NACKED: "NACK",
}
PROTOCOL_TEXT = {admin_pb2.PROTOCOL_SOTW: "sotw", admin_pb2.PROTOCOL_DELTA: "delta"}


def format_age(seconds: float) -> str:
    """45s, 12m, 3h, 2d: the resolution people read ages at."""
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Stream:
    """One ADS stream as a replica reported it: ages are by that replica's clock (`server_time`)."""

    node: admin_pb2.NodeStatus
    server_time: Timestamp
    replica: str = ""  # which replica holds the stream; "" when only one server was asked


def streams_of(response: admin_pb2.ListNodesResponse, replica: str = "") -> list[Stream]:
    return [Stream(node, response.server_time, replica) for node in response.nodes]


def status_table(response: admin_pb2.ListNodesResponse) -> str:
    """The table of every stream of one server, then the current NACKs in full."""
    return streams_table(streams_of(response))


def streams_table(streams: Sequence[Stream]) -> str:
    """The table of every stream (with a REPLICA column when they come from several replicas), then the current
    NACKs in full."""
    if not streams:
        return "no Envoy is connected\n"
    with_replica = any(stream.replica for stream in streams)
    type_columns = _type_columns(stream.node for stream in streams)
    header = ["NODE", *(["REPLICA"] if with_replica else []), "POLICY", "PROTOCOL"]
    rows = [[*header, *(name.upper() for name in type_columns), "ADDRESS", "CONNECTED"]]
    for stream in streams:
        node, now = stream.node, _seconds(stream.server_time)
        by_type = {sync.short_name: sync for sync in node.types}
        cells = [_type_cell(by_type.get(name), now) for name in type_columns]
        rows.append(
            [
                node.node_id or "(no id)",
                *([stream.replica] if with_replica else []),
                _policy_cell(node),
                PROTOCOL_TEXT.get(node.protocol, "?"),
                *cells,
                _address(node.address),
                format_age(now - _seconds(node.connected_at)),
            ]
        )
    lines = [_table(rows)]
    for stream in streams:
        for sync in stream.node.types:
            if sync.status == admin_pb2.SYNC_STATUS_NACKED:
                lines.append("")
                lines.append(_nack_text(stream.node, sync, _seconds(stream.server_time), stream.replica))
    return "\n".join(lines) + "\n"


def node_detail(node: admin_pb2.NodeStatus, server_time: Timestamp, replica: str = "") -> str:
    """One stream in detail: who, which policy, per-type versions, NACKs, and the ACKed-vs-expected diff."""
    now = _seconds(server_time)
    metadata = " ".join(f"{key}={value}" for key, value in sorted(node.metadata.items())) or "-"
    on = f" on replica {replica}" if replica else ""
    lines = [
        f"node {node.node_id or '(no id)'} (stream {node.stream_id}){on}",
        f"  connection  {PROTOCOL_TEXT.get(node.protocol, '?')} from {node.address}, "
        f"connected {format_age(now - _seconds(node.connected_at))} ago",
        f"  envoy       {node.user_agent or '-'}, cluster {node.cluster or '-'}",
        f"  metadata    {metadata}",
        f"  policy      {_policy_cell(node)} (mode {node.mode})",
        "",
    ]
    rows = [["TYPE", "STATUS", "SENT", "ACKED", "EXPECTED"]]
    for sync in node.types:
        rows.append(
            [
                sync.short_name.upper(),
                _type_cell(sync, now),
                sync.version_sent or "-",
                sync.version_acked or "-",
                sync.version_expected or "-",
            ]
        )
    lines.append(_table(rows))
    for sync in node.types:
        if sync.HasField("last_nack"):
            lines += ["", _nack_text(node, sync, now, replica)]
    lines += ["", "diff (what the node ACKed -> what it should have):"]
    for sync in node.types:
        lines += _diff_lines(sync)
    return "\n".join(lines) + "\n"


def _diff_lines(sync: admin_pb2.TypeSync) -> list[str]:
    name = sync.short_name.upper()
    if not sync.version_expected:
        return [f"  {name}: nothing to compare with yet (the node's policy has no snapshot)"]
    changes = [resource for resource in sync.resources if resource.acked_version != resource.expected_version]
    if not changes and sync.version_acked == sync.version_expected:
        return [f"  {name}: no difference ({len(sync.resources)} resources)"]
    if not changes:  # the same resources, but not the same set (versions are hashes of name/version pairs)
        return [f"  {name}: set version {sync.version_acked or '(none)'} -> {sync.version_expected}"]
    width = max(len(resource.name) for resource in changes)
    lines = [f"  {name}:"]
    for resource in changes:
        if not resource.acked_version:
            mark, before, after = "+", "(not held)", resource.expected_version
        elif not resource.expected_version:
            mark, before, after = "-", resource.acked_version, "(remove)"
        else:
            mark, before, after = "~", resource.acked_version, resource.expected_version
        sent = ""
        if resource.sent_version and resource.sent_version != resource.acked_version:
            outcome = "rejected (NACK)" if sync.status == admin_pb2.SYNC_STATUS_NACKED else "not ACKed yet"
            sent = f"   sent {resource.sent_version}: {outcome}"
        lines.append(f"    {mark} {resource.name.ljust(width)}  {before} -> {after}{sent}")
    return lines


def _nack_text(node: admin_pb2.NodeStatus, sync: admin_pb2.TypeSync, now: float, replica: str = "") -> str:
    nack = sync.last_nack
    age = format_age(now - _seconds(nack.time))
    state = "still rejected" if nack.current else "since replaced by a version it ACKed"
    serving = f"; it keeps {sync.version_acked}" if nack.current and sync.version_acked else ""
    head = (
        f"NACK from {node.node_id or '(no id)'} (stream {node.stream_id}{' on ' + replica if replica else ''}) "
        f"for {sync.short_name.upper()} "
        f"version {nack.version}, {age} ago, {state}{serving}:"
    )
    body = "\n".join(f"  {line}" for line in nack.message.splitlines() or [""])
    return f"{head}\n{body}"


def _type_columns(nodes: Iterable[admin_pb2.NodeStatus]) -> list[str]:
    seen = {sync.short_name: sync.type_url for node in nodes for sync in node.types}
    extra = sorted((url, name) for name, url in seen.items() if name not in ALWAYS_SHOWN)
    return [*ALWAYS_SHOWN, *(name for _, name in sorted(extra, key=lambda item: ads_sort_key(item[0])))]


def _type_cell(sync: admin_pb2.TypeSync | None, now: float) -> str:
    if sync is None:
        return "-"
    text = STATUS_TEXT.get(sync.status, "?")
    return f"{text} ({format_age(now - _seconds(sync.status_since))})"


def _policy_cell(node: admin_pb2.NodeStatus) -> str:
    if not node.policy:
        return "(none)"
    return f"{node.policy} (waiting)" if node.waiting else node.policy


def _address(peer: str) -> str:
    """`ipv4:10.0.0.7:51234` -> `10.0.0.7:51234`; other forms unchanged."""
    for prefix in ("ipv4:", "ipv6:"):
        if peer.startswith(prefix):
            return peer[len(prefix) :]
    return peer


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) for row in rows)
    return "\n".join(line.rstrip() for line in lines)


def _seconds(stamp: Timestamp) -> float:
    return float(stamp.seconds) + stamp.nanos / 1e9

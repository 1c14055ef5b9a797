"""`egress-xds status` formatting, from hand-built admin responses (the live command is tested with Envoy)."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from egress_xds.admin.status_view import format_age, node_detail, status_table
from egress_xds.admin.v1 import admin_pb2
from egress_xds.xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.xds.type_urls import LISTENER_TYPE_URL as LDS

NOW = 1_800_000_000


def at(seconds_ago: int) -> Timestamp:
    return Timestamp(seconds=NOW - seconds_ago)


def sync(type_url: str, name: str, status: int, since: int, **fields: object) -> admin_pb2.TypeSync:
    return admin_pb2.TypeSync(type_url=type_url, short_name=name, status=status, status_since=at(since), **fields)


def response() -> admin_pb2.ListNodesResponse:
    nack = admin_pb2.Nack(
        message="Error adding/updating listener(s) bad: cannot bind '192.0.2.1:8080'\nsecond line",
        version="v2",
        time=at(7),
        current=True,
    )
    healthy = admin_pb2.NodeStatus(
        node_id="pod-1",
        stream_id=1,
        protocol=admin_pb2.PROTOCOL_DELTA,
        address="ipv4:10.0.0.7:51234",
        connected_at=at(7200),
        policy="corp",
        mode="sidecar",
        types=[
            sync(CDS, "cds", admin_pb2.SYNC_STATUS_SYNCED, 65),
            sync(LDS, "lds", admin_pb2.SYNC_STATUS_SYNCED, 3),
        ],
    )
    broken = admin_pb2.NodeStatus(
        node_id="vm-2",
        stream_id=2,
        protocol=admin_pb2.PROTOCOL_SOTW,
        address="ipv4:127.0.0.1:40000",
        connected_at=at(30),
        policy="corp",
        mode="standalone",
        user_agent="envoy 1.40.0",
        types=[
            sync(
                CDS, "cds", admin_pb2.SYNC_STATUS_STALE, 2, version_sent="c2", version_acked="c1", version_expected="c2"
            ),
            sync(
                LDS,
                "lds",
                admin_pb2.SYNC_STATUS_NACKED,
                7,
                version_sent="v2",
                version_acked="v1",
                version_expected="v2",
                last_nack=nack,
                resources=[
                    admin_pb2.ResourceSync(name="bad", sent_version="b1", expected_version="b1"),
                    admin_pb2.ResourceSync(name="good", acked_version="g1", sent_version="g1", expected_version="g1"),
                    admin_pb2.ResourceSync(name="gone", acked_version="o1"),
                ],
            ),
        ],
    )
    waiting = admin_pb2.NodeStatus(
        node_id="pod-3",
        stream_id=3,
        protocol=admin_pb2.PROTOCOL_SOTW,
        connected_at=at(1),
        policy="new",
        waiting=True,
        types=[sync(CDS, "cds", admin_pb2.SYNC_STATUS_NOT_SENT, 1)],
    )
    return admin_pb2.ListNodesResponse(nodes=[healthy, broken, waiting], server_time=Timestamp(seconds=NOW))


def test_ages_read_like_kubectl() -> None:
    assert [format_age(value) for value in (0, 59, 60, 3599, 3600, 86400 * 3)] == ["0s", "59s", "1m", "59m", "1h", "3d"]


def test_table_has_a_line_per_stream_and_the_current_nack_in_full() -> None:
    lines = status_table(response()).splitlines()
    assert lines[0].split() == ["NODE", "POLICY", "PROTOCOL", "CDS", "LDS", "ADDRESS", "CONNECTED"]
    assert lines[1].split() == ["pod-1", "corp", "delta", "SYNCED", "(1m)", "SYNCED", "(3s)", "10.0.0.7:51234", "2h"]
    assert lines[2].split() == ["vm-2", "corp", "sotw", "STALE", "(2s)", "NACK", "(7s)", "127.0.0.1:40000", "30s"]
    assert lines[3].split() == ["pod-3", "new", "(waiting)", "sotw", "NOT", "SENT", "(1s)", "-", "1s"]
    assert lines[5] == "NACK from vm-2 (stream 2) for LDS version v2, 7s ago, still rejected; it keeps v1:"
    assert lines[6:8] == ["  Error adding/updating listener(s) bad: cannot bind '192.0.2.1:8080'", "  second line"]


def test_detail_shows_versions_the_nack_and_the_diff() -> None:
    node = response().nodes[1]
    text = node_detail(node, Timestamp(seconds=NOW))
    assert "node vm-2 (stream 2)" in text and "envoy 1.40.0" in text and "policy      corp (mode standalone)" in text
    assert "LDS   NACK (7s)   v2    v1     v2" in text
    assert "still rejected; it keeps v1:\n  Error adding/updating listener(s) bad" in text
    assert "    + bad   (not held) -> b1   sent b1: rejected (NACK)" in text
    assert "    - gone  o1 -> (remove)" in text
    assert "good" not in text.split("diff (")[1]  # in sync: not part of the diff
    assert "  CDS: set version c1 -> c2" in text


def test_no_envoy_connected() -> None:
    assert status_table(admin_pb2.ListNodesResponse()) == "no Envoy is connected\n"

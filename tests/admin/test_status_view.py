"""`egress-xds status` formatting, from hand-built admin responses (the live command is tested with Envoy)."""

from __future__ import annotations

import json

from google.protobuf.timestamp_pb2 import Timestamp

from egress_xds.admin.client import StatusAnswers
from egress_xds.admin.out_of_sync import out_of_sync
from egress_xds.admin.replicas import Answer, FanOut, Replica
from egress_xds.admin.server_view import server_summary
from egress_xds.admin.status_json import status_document
from egress_xds.admin.status_view import format_age, node_detail, status_table
from egress_xds.admin.v1 import admin_pb2
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS

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


def server_side() -> tuple[admin_pb2.GetPolicyResponse, admin_pb2.GetReloadErrorsResponse]:
    policy = admin_pb2.GetPolicyResponse(
        source="/etc/egress/policy.yaml",
        policies=[admin_pb2.PolicySummary(name="corp"), admin_pb2.PolicySummary(name="default")],
        snapshots=[
            admin_pb2.SnapshotSummary(policy="corp", mode="sidecar", versions={LDS: "l1", CDS: "c1"}, streams=3)
        ],
    )
    failure = admin_pb2.ReloadAttempt(
        time=at(10),
        trigger="file change",
        ok=False,
        message="1 error(s); still serving the last good policy",
        errors=[admin_pb2.ConfigIssue(text="/etc/egress/policy.yaml:3: proxies.corp.url: port 99999 out of range")],
    )
    reloads = admin_pb2.GetReloadErrorsResponse(failing=True, last_failure=failure, last_attempt=failure)
    return policy, reloads


def test_the_server_side_shows_source_snapshots_and_the_last_reload_error() -> None:
    policy, reloads = server_side()
    text = server_summary("127.0.0.1:18000", policy, reloads, Timestamp(seconds=NOW))
    assert text.splitlines() == [
        "server 127.0.0.1:18000: policy from /etc/egress/policy.yaml, 2 policies (corp, default)",
        "  snapshot     corp/sidecar  cds c1  lds l1  (3 streams)",
        "  reload error 10s ago (file change), still failing: 1 error(s); still serving the last good policy",
        "    /etc/egress/policy.yaml:3: proxies.corp.url: port 99999 out of range",
    ]
    reloads.failing = False
    reloads.last_attempt.CopyFrom(admin_pb2.ReloadAttempt(time=at(5), trigger="signal", ok=True, message="2 policies"))
    assert server_summary("127.0.0.1:18000", policy, reloads, Timestamp(seconds=NOW)).splitlines()[2:] == [
        "  last reload  ok, 5s ago (signal): 2 policies",
        "  last error   10s ago (file change), fixed by a later reload: 1 error(s)",
    ]


def test_out_of_sync_counts_by_the_servers_clock_from_the_status_change() -> None:
    nodes = response()  # vm-2: CDS STALE for 2 s, LDS NACK for 7 s
    assert out_of_sync(nodes, nack_after=None, stale_after=None) == []
    assert [str(item) for item in out_of_sync(nodes, nack_after=7, stale_after=None)] == [
        "node vm-2 (stream 2): LDS NACK for 7s"
    ]
    assert out_of_sync(nodes, nack_after=8, stale_after=3) == []
    assert [(item.type, item.status) for item in out_of_sync(nodes, nack_after=0, stale_after=0)] == [
        ("cds", "STALE"),
        ("lds", "NACK"),
    ]


def test_status_json_is_the_admin_answers_in_proto_field_names() -> None:
    policy, reloads = server_side()
    nodes = response()
    problems = out_of_sync(nodes, nack_after=5, stale_after=None)
    one = FanOut((Answer(Replica("127.0.0.1:18000"), StatusAnswers(nodes, policy, reloads)),), ())
    document = json.loads(json.dumps(status_document(one, [("127.0.0.1:18000", problem) for problem in problems])))
    assert set(document) == {"servers", "unreachable", "partial", "server", "server_time", "nodes", "out_of_sync"}
    assert document["servers"] == [{**document["server"], "server_time": document["server_time"]}]
    assert document["unreachable"] == [] and document["partial"] is False
    server = document["server"]
    assert server["address"] == "127.0.0.1:18000" and server["source"] == "/etc/egress/policy.yaml"
    assert [item["name"] for item in server["policies"]] == ["corp", "default"]
    assert server["snapshots"][0]["versions"] == {LDS: "l1", CDS: "c1"} and server["snapshots"][0]["streams"] == 3
    assert server["reloads"]["failing"] is True
    assert server["reloads"]["last_failure"]["errors"][0]["text"].endswith("port 99999 out of range")
    assert document["server_time"] == "2027-01-15T08:00:00Z"
    first, broken, _ = document["nodes"]
    assert first["node_id"] == "pod-1" and first["stream_id"] == 1 and first["waiting"] is False  # defaults shown
    assert broken["types"][1]["status"] == "SYNC_STATUS_NACKED" and broken["types"][1]["last_nack"]["current"]
    assert document["out_of_sync"] == [
        {
            "node_id": "vm-2",
            "stream_id": 2,
            "type": "lds",
            "status": "NACK",
            "seconds": 7.0,
            "replica": "127.0.0.1:18000",
        }
    ]

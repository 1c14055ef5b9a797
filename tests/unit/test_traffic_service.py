"""The access-log service and GetTraffic over real gRPC on loopback (the server `serve` builds, in-process):
entries a client streams as Envoy does come back from the admin API, per node, filtered, without their paths."""

from __future__ import annotations

import grpc
import pytest
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry, TCPAccessLogEntry
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from egress_xds.admin import DebugView, add_debug_services
from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import StreamRegistry
from egress_xds.xds.server import AdsServer


def _identifier(node_id: str, namespace: str) -> als_pb2.StreamAccessLogsMessage:
    message = als_pb2.StreamAccessLogsMessage()
    message.identifier.node.id = node_id
    message.identifier.node.metadata.fields["namespace"].string_value = namespace
    message.identifier.log_name = "egress-xds"
    return message


def _tunnel(sni: str, failure: str = "") -> als_pb2.StreamAccessLogsMessage:
    entry = TCPAccessLogEntry()
    entry.common_properties.custom_tags.update({"egress.kind": "proxy", "egress.proxy": "corp"})
    entry.common_properties.tls_properties.tls_sni_hostname = sni
    entry.common_properties.downstream_local_address.socket_address.port_value = 443
    entry.common_properties.upstream_transport_failure_reason = failure
    entry.common_properties.response_flags.upstream_connection_failure = bool(failure)
    message = als_pb2.StreamAccessLogsMessage()
    message.tcp_logs.log_entry.append(entry)
    return message


def _request(authority: str, path: str) -> als_pb2.StreamAccessLogsMessage:
    entry = HTTPAccessLogEntry()
    entry.common_properties.upstream_cluster = "egress-proxy-corp-http"
    entry.request.authority = authority
    entry.request.path = path
    entry.response.response_code.value = 407
    message = als_pb2.StreamAccessLogsMessage()
    message.http_logs.log_entry.append(entry)
    return message


async def test_streamed_entries_are_answered_by_get_traffic() -> None:
    cache = SnapshotCache(lambda node: None)
    registry = StreamRegistry()

    server = AdsServer(cache, "127.0.0.1:0", registry=registry)
    await add_debug_services(server, DebugView(cache, registry))
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            logs = als_pb2_grpc.AccessLogServiceStub(channel)
            first = [_identifier("pod-a", "team-a"), _tunnel("api.example"), _tunnel("api.example")]
            await logs.StreamAccessLogs(iter([*first, _tunnel("other.example", "tunnel_response:403")]))
            # A reconnect of the same node adds to its counts.
            await logs.StreamAccessLogs(iter([_identifier("pod-a", "team-a"), _request("plain.example", "/p?t=1")]))
            await logs.StreamAccessLogs(iter([_identifier("pod-b", "team-b"), _tunnel("api.example")]))
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await logs.StreamAccessLogs(iter([_tunnel("no-identifier.example")]))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            admin = admin_pb2_grpc.AdminStub(channel)
            everything = await admin.GetTraffic(admin_pb2.GetTrafficRequest())
            refused = await admin.GetTraffic(
                admin_pb2.GetTrafficRequest(namespace="team-a", outcomes=["proxy-forbidden", "proxy-auth-required"])
            )
    finally:
        await server.stop(grace=1)

    assert [workload.node_id for workload in everything.workloads] == ["pod-a", "pod-b"]
    rows = {row.destination: dict(row.outcomes) for row in everything.workloads[0].destinations}
    assert rows == {
        "api.example:443": {"ok": 2},
        "other.example:443": {"proxy-forbidden": 1},
        "plain.example:80": {"proxy-auth-required": 1},
    }
    assert "/p" not in str(everything) and "t=1" not in str(everything)
    assert [row.destination for row in refused.workloads[0].destinations] == ["other.example:443", "plain.example:80"]
    assert len(refused.workloads) == 1


async def test_traffic_over_two_replicas_adds_up_and_names_a_silent_one() -> None:
    """One node's access log split over two replicas (its log stream and its ADS stream may land on different ones,
    and a move leaves counts on the old one): `egress-xds traffic --server A --server B` shows the sums; a third
    replica that does not answer is named and the exit code says the view is partial."""
    import asyncio
    import json
    import socket
    import subprocess
    import sys

    from tests.support.egress import REPO_ROOT

    servers = []
    for _ in range(2):
        cache = SnapshotCache(lambda node: None)
        registry = StreamRegistry()
        server = AdsServer(cache, "127.0.0.1:0", registry=registry)
        await add_debug_services(server, DebugView(cache, registry))
        await server.start()
        servers.append(server)
    silent = socket.socket()  # bound, never listening: connections are refused
    silent.bind(("127.0.0.1", 0))
    silent_address = f"127.0.0.1:{silent.getsockname()[1]}"
    try:
        for server, failure in zip(servers, ("", "tunnel_response:403"), strict=True):
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                logs = als_pb2_grpc.AccessLogServiceStub(channel)
                await logs.StreamAccessLogs(
                    iter([_identifier("pod-a", "team-a"), _tunnel("api.example"), _tunnel("api.example", failure)])
                )
        addresses = [f"127.0.0.1:{server.port}" for server in servers]
        base = [sys.executable, "-m", "egress_xds.cli", "traffic", "-o", "json"]
        both = [*base, "--server", addresses[0], "--server", addresses[1]]
        with_silent = [*both, "--server", silent_address]

        def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
            return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO_ROOT, check=False)

        merged, partial = await asyncio.gather(asyncio.to_thread(run, both), asyncio.to_thread(run, with_silent))
    finally:
        silent.close()
        for server in servers:
            await server.stop(grace=1)

    assert merged.returncode == 0, merged.stderr
    document = json.loads(merged.stdout)
    (workload,) = document["workloads"]
    (api,) = workload["destinations"]
    assert api["destination"] == "api.example:443" and api["outcomes"] == {"ok": 3, "proxy-forbidden": 1}
    assert [server["address"] for server in document["servers"]] == addresses and not document["partial"]
    assert partial.returncode == 4, partial.stderr
    assert silent_address in partial.stderr
    assert json.loads(partial.stdout)["partial"] is True

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

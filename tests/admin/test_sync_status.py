"""Sync status as CSDS and the admin API report it, driven by raw xDS clients over a real channel.

The mapping under test (egress_xds/admin/sync.py): NOT SENT (nothing sent yet), STALE (sent, not ACKed; or the
ACKed set is not what the node should have), NACK (latest response rejected; CSDS ERROR), SYNCED.
"""

from __future__ import annotations

import asyncio
import json

import grpc
import pytest
from envoy.admin.v3.config_dump_shared_pb2 import ClientResourceStatus
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.service.status.v3 import csds_pb2_grpc
from envoy.service.status.v3.csds_pb2 import ClientConfig, ClientStatusRequest, ConfigStatus
from envoy.type.matcher.v3.node_pb2 import NodeMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.matcher.v3.struct_pb2 import StructMatcher
from envoy.type.matcher.v3.value_pb2 import ValueMatcher
from grpc_health.v1 import health_pb2, health_pb2_grpc

from egress_xds.admin import DebugView, add_debug_services
from egress_xds.admin.v1 import admin_pb2
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import StreamRegistry
from egress_xds.xds.server import AdsServer
from tests.admin.conftest import Debug
from tests.xds.client import DeltaClient, SotwClient, eventually
from tests.xds.conftest import group_by_metadata
from tests.xds.data import cluster, listener, snapshot

SYNCED, NOT_SENT, STALE, NACKED = (
    admin_pb2.SYNC_STATUS_SYNCED,
    admin_pb2.SYNC_STATUS_NOT_SENT,
    admin_pb2.SYNC_STATUS_STALE,
    admin_pb2.SYNC_STATUS_NACKED,
)


def version_of(response: object) -> str:
    return str(getattr(response, "version_info", "") or getattr(response, "system_version_info", ""))


async def type_status(debug: Debug, node_id: str, type_url: str = CDS) -> admin_pb2.TypeSync:
    [node] = await debug.nodes(node_id=node_id, include_resources=True)
    return next(sync for sync in node.types if sync.type_url == type_url)


def entries(config: ClientConfig, type_url: str = CDS) -> dict[str, ClientConfig.GenericXdsConfig]:
    """The CSDS entries of one type by resource name ("" is the per-type summary)."""
    return {entry.name: entry for entry in config.generic_xds_configs if entry.type_url == type_url}


async def wait_status(debug: Debug, node_id: str, expected: int, type_url: str = CDS) -> admin_pb2.TypeSync:
    last: list[admin_pb2.TypeSync] = []

    async def probe() -> bool:
        if not await debug.nodes(node_id=node_id):  # the stream is not registered yet
            return False
        last[:] = [await type_status(debug, node_id, type_url)]
        return last[0].status == expected

    for _ in range(200):
        if await probe():
            return last[0]
        await asyncio.sleep(0.02)
    raise AssertionError(f"{node_id} never reached {admin_pb2.SyncStatus.Name(expected)}: {last}")


@pytest.mark.parametrize("protocol", ["sotw", "delta"])
async def test_a_type_goes_stale_synced_nacked_and_synced_again(debug: Debug, protocol: str) -> None:
    debug.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client: SotwClient | DeltaClient = debug.sotw("envoy-1") if protocol == "sotw" else debug.delta("envoy-1")
    await client.send(CDS)
    first = await client.recv()
    stale = await wait_status(debug, "envoy-1", STALE)  # sent, not ACKed yet
    assert stale.version_sent == version_of(first) and not stale.version_acked

    await client.ack(first)
    synced = await wait_status(debug, "envoy-1", SYNCED)
    assert synced.version_acked == synced.version_sent == synced.version_expected == version_of(first)
    assert not synced.HasField("last_nack")

    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=1)]))
    rejected = await client.recv()
    await client.nack(rejected, "cluster a: port 1 is not allowed here")
    nacked = await wait_status(debug, "envoy-1", NACKED)
    assert nacked.version_acked == version_of(first) and nacked.version_sent == version_of(rejected)
    assert nacked.last_nack.message == "cluster a: port 1 is not allowed here"
    assert nacked.last_nack.version == version_of(rejected) and nacked.last_nack.current
    [resource] = nacked.resources
    assert (resource.name, resource.acked_version != resource.sent_version) == ("a", True)

    [config] = (await debug.csds()).config
    by_name = entries(config)
    summary, cluster_a = by_name[""], by_name["a"]
    assert summary.config_status == ConfigStatus.ERROR and summary.client_status == ClientResourceStatus.NACKED
    assert summary.version_info == version_of(first)
    assert summary.error_state.details == "cluster a: port 1 is not allowed here"
    assert summary.error_state.version_info == version_of(rejected)
    assert cluster_a.client_status == ClientResourceStatus.NACKED and cluster_a.config_status == ConfigStatus.ERROR
    held, offered = Cluster(), Cluster()
    cluster_a.xds_config.Unpack(held)
    cluster_a.error_state.failed_configuration.Unpack(offered)
    held_port = held.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value
    offered_port = offered.load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value
    assert (held_port, offered_port) == (3128, 1)  # what Envoy runs, and what it refused

    await client.expect_silence()  # the NACKed version is never sent again
    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=2)]))
    fixed = await client.recv()
    await client.ack(fixed)
    again = await wait_status(debug, "envoy-1", SYNCED)
    assert again.last_nack.version == version_of(rejected) and not again.last_nack.current


@pytest.mark.parametrize("protocol", ["sotw", "delta"])
async def test_resources_a_nack_does_not_name_are_shown_applied(debug: Debug, protocol: str) -> None:
    """Envoy applies clusters and listeners one by one and names the failed ones in its NACK; the rest of the
    response runs (a new-user trial saw a listener serving traffic that status called "not held, rejected")."""
    debug.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    client: SotwClient | DeltaClient = debug.sotw("envoy-p") if protocol == "sotw" else debug.delta("envoy-p")
    await client.send(CDS)
    await client.ack(await client.recv())
    await wait_status(debug, "envoy-p", SYNCED)

    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=1), cluster("b", port=2), cluster("c")]))
    rejected = await client.recv()
    await client.nack(rejected, "Error adding/updating cluster(s) a: port 1 is not allowed here")
    nacked = await wait_status(debug, "envoy-p", NACKED)
    by_name = {resource.name: resource for resource in nacked.resources}
    assert by_name["a"].acked_version != by_name["a"].expected_version  # still the old a
    for name in ("b", "c"):  # applied: held at the version sent
        assert by_name[name].acked_version == by_name[name].sent_version == by_name[name].expected_version
    [config] = (await debug.csds()).config
    csds = entries(config)
    assert (csds["a"].client_status, csds["a"].config_status) == (ClientResourceStatus.NACKED, ConfigStatus.ERROR)
    for name in ("b", "c"):
        assert (csds[name].client_status, csds[name].config_status) == (ClientResourceStatus.ACKED, ConfigStatus.SYNCED)

    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=1), cluster("b", port=3)]))
    vague = await client.recv()
    await client.nack(vague, "Proto constraint validation failed")  # names nothing: the whole response refused
    await eventually(
        lambda: (
            debug.state.registry.for_node("envoy-p")[0].types[CDS].nack_message == "Proto constraint validation failed"
        )
    )
    [config] = (await debug.csds()).config
    assert entries(config)["b"].client_status == ClientResourceStatus.NACKED


async def test_delta_keeps_a_refused_resource_rejected_after_acking_later_changes(debug: Debug) -> None:
    debug.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    client = debug.delta("refuser")
    await client.send(CDS)
    first = await client.recv()
    await client.ack(first)
    await wait_status(debug, "refuser", SYNCED)
    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=1), cluster("b")]))
    await client.nack(await client.recv(), "a: bad port")
    await wait_status(debug, "refuser", NACKED)
    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=1), cluster("b", port=5)]))
    only_b = await client.recv()
    assert [resource.name for resource in only_b.resources] == ["b"]  # the refused "a" is not sent again
    await client.ack(only_b)
    await eventually(lambda: debug.state.registry.for_node("refuser")[0].types[CDS].ack_time is not None)
    await asyncio.sleep(0.1)
    status = await wait_status(debug, "refuser", NACKED)  # Envoy still lacks the new "a"
    resources = {resource.name: resource for resource in status.resources}
    original_a = {resource.name: resource.version for resource in first.resources}["a"]
    assert resources["a"].acked_version == original_a != resources["a"].expected_version
    assert resources["b"].acked_version == resources["b"].expected_version
    [config] = (await debug.csds()).config
    assert entries(config)["a"].client_status == ClientResourceStatus.NACKED
    assert entries(config)["b"].client_status == ClientResourceStatus.ACKED
    assert entries(config)["b"].config_status == ConfigStatus.SYNCED

    debug.cache.set_snapshot("g1", snapshot([cluster("a", port=2), cluster("b", port=5)]))
    await client.ack(await client.recv())
    await wait_status(debug, "refuser", SYNCED)


async def test_a_node_waiting_for_its_snapshot_is_not_sent(debug: Debug) -> None:
    client = debug.sotw("early", group="not-built-yet")
    await client.send(CDS)
    status = await wait_status(debug, "early", NOT_SENT)
    assert not status.version_sent and not status.version_expected
    [node] = await debug.nodes(node_id="early")
    assert node.waiting and node.policy == "not-built-yet"
    [config] = (await debug.csds()).config
    assert entries(config)[""].config_status == ConfigStatus.NOT_SENT
    assert entries(config)[""].client_status == ClientResourceStatus.REQUESTED


async def test_a_cluster_kept_for_make_before_break_is_stale_until_the_listener_goes(debug: Debug) -> None:
    debug.cache.set_snapshot("g1", snapshot([cluster("old")], [listener("l", "old")]))
    client = debug.sotw("mbb")
    await client.send(CDS, [])
    await client.ack(await client.recv())
    await client.send(LDS, [])
    await client.ack(await client.recv())
    await wait_status(debug, "mbb", SYNCED, LDS)

    debug.cache.set_snapshot("g1", snapshot([cluster("new")], [listener("l", "new")]))
    clusters = await client.recv()  # new cluster, old one kept: the held listener still uses it
    await client.ack(clusters)
    stale = await wait_status(debug, "mbb", STALE)
    assert stale.version_acked == stale.version_sent != stale.version_expected
    extra = {resource.name: resource for resource in stale.resources}["old"]
    assert extra.acked_version and not extra.expected_version
    [config] = (await debug.csds()).config
    old = entries(config)["old"]
    assert old.client_status == ClientResourceStatus.ACKED and old.config_status == ConfigStatus.STALE

    await client.ack(await client.recv())  # LDS without "old"
    await client.ack(await client.recv())  # CDS without "old"
    await wait_status(debug, "mbb", SYNCED)


async def test_node_matchers_select_by_id_and_metadata(debug: Debug) -> None:
    debug.cache.set_snapshot("g1", snapshot([cluster("a")]))
    for node_id, team in (("pod-a1", "payments"), ("pod-a2", "search"), ("vm-b", "payments")):
        client = debug.sotw(node_id, team=team)
        await client.send(CDS)
        await client.recv()
    await eventually(lambda: len(debug.state.registry) == 3)

    async def ids(*matchers: NodeMatcher) -> list[str]:
        response = await debug.csds(ClientStatusRequest(node_matchers=list(matchers)))
        return [config.node.id for config in response.config]

    team = StructMatcher(path=[StructMatcher.PathSegment(key="team")], value=ValueMatcher())
    team.value.string_match.exact = "payments"
    assert await ids() == ["pod-a1", "pod-a2", "vm-b"]
    assert await ids(NodeMatcher(node_id=StringMatcher(exact="pod-a2"))) == ["pod-a2"]
    assert await ids(NodeMatcher(node_id=StringMatcher(prefix="pod-"))) == ["pod-a1", "pod-a2"]
    assert await ids(NodeMatcher(node_id=StringMatcher(prefix="POD-", ignore_case=True))) == ["pod-a1", "pod-a2"]
    assert await ids(NodeMatcher(node_metadatas=[team])) == ["pod-a1", "vm-b"]
    assert await ids(NodeMatcher(node_id=StringMatcher(prefix="pod-"), node_metadatas=[team])) == ["pod-a1"]
    either = (NodeMatcher(node_id=StringMatcher(exact="vm-b")), NodeMatcher(node_id=StringMatcher(suffix="a2")))
    assert await ids(*either) == ["pod-a2", "vm-b"]  # several matchers: OR
    regex = NodeMatcher(node_id=StringMatcher())
    regex.node_id.safe_regex.regex = "pod-a[0-9]"
    assert await ids(regex) == ["pod-a1", "pod-a2"]

    unsupported = NodeMatcher(node_metadatas=[StructMatcher(path=[StructMatcher.PathSegment(key="team")])])
    unsupported.node_metadatas[0].value.list_match.one_of.string_match.exact = "x"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await debug.csds(ClientStatusRequest(node_matchers=[unsupported]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "list_match" in str(raised.value.details())


async def test_a_matcher_it_cannot_evaluate_is_refused_with_no_node_connected(debug: Debug) -> None:
    """A bad regex was answered OK with no config while nothing was connected, INVALID_ARGUMENT once a stream was."""
    assert len(debug.state.registry) == 0
    broken = NodeMatcher(node_id=StringMatcher())
    broken.node_id.safe_regex.regex = "("
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await debug.csds(ClientStatusRequest(node_matchers=[broken]))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "safe_regex '('" in str(raised.value.details())
    fine = NodeMatcher(node_id=StringMatcher(exact="pod-a1"))
    assert len((await debug.csds(ClientStatusRequest(node_matchers=[fine]))).config) == 0


async def test_stream_client_status_answers_every_request_and_contents_can_be_left_out(debug: Debug) -> None:
    debug.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = debug.delta("streamed")
    await client.send(CDS)
    await client.ack(await client.recv())
    await wait_status(debug, "streamed", SYNCED)
    stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(debug.channel)
    call = stub.StreamClientStatus()
    await call.write(ClientStatusRequest())
    with_contents = await asyncio.wait_for(call.read(), 5)
    await call.write(ClientStatusRequest(exclude_resource_contents=True))
    without = await asyncio.wait_for(call.read(), 5)
    await call.done_writing()
    assert entries(with_contents.config[0])["a"].HasField("xds_config")
    assert not entries(without.config[0])["a"].HasField("xds_config")
    assert entries(without.config[0])[""].HasField("xds_config")  # the summary (versions) is not a resource
    detail = admin_pb2.TypeSync()
    entries(without.config[0])[""].xds_config.Unpack(detail)
    assert detail.status == SYNCED and detail.version_sent == detail.version_acked


async def test_node_config_shows_what_the_node_should_have_or_acked(debug: Debug) -> None:
    debug.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l", "a")]))
    client = debug.sotw("configured")
    await client.send(CDS, [])
    await client.ack(await client.recv())
    await client.send(LDS, [])
    await client.ack(await client.recv())
    await wait_status(debug, "configured", SYNCED, LDS)
    debug.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")], [listener("l", "a")]))
    await client.recv()  # CDS with b, not ACKed

    admin = debug.admin()
    expected = await admin.GetNodeConfig(admin_pb2.GetNodeConfigRequest(node_id="configured"))
    acked = await admin.GetNodeConfig(
        admin_pb2.GetNodeConfigRequest(node_id="configured", view=admin_pb2.CONFIG_VIEW_ACKED)
    )
    names = [item["name"] for item in json.loads(expected.config_json)["clusters"]]
    assert names == ["a", "b"] and [item["name"] for item in json.loads(acked.config_json)["clusters"]] == ["a"]
    assert [item["name"] for item in json.loads(expected.config_json)["listeners"]] == ["l"]
    assert expected.policy == "g1" and expected.versions[CDS] != acked.versions[CDS]

    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await admin.GetNodeConfig(admin_pb2.GetNodeConfigRequest(node_id="nobody"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_serves_every_service_and_turns_not_serving_on_stop() -> None:
    cache = SnapshotCache(group_by_metadata)
    registry = StreamRegistry()

    server = AdsServer(cache, "127.0.0.1:0", registry=registry)
    await add_debug_services(server, DebugView(cache, registry))
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in (
            "",
            "envoy.service.discovery.v3.AggregatedDiscoveryService",
            "envoy.service.status.v3.ClientStatusDiscoveryService",
            "egress_xds.admin.v1.Admin",
        ):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(server.stop(grace=2))
        assert (await asyncio.wait_for(watch.read(), 5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        await stopping

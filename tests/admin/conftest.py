"""An in-process ADS server with the debug services (CSDS, admin, health, reflection) on 127.0.0.1, raw xDS
clients connected to it, and typed stubs for the debug services over the same real gRPC channel."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
import pytest
from envoy.service.status.v3 import csds_pb2_grpc
from envoy.service.status.v3.csds_pb2 import ClientStatusRequest, ClientStatusResponse

from egress_xds.admin import DebugView, add_debug_services
from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc
from egress_xds.policy.model import PolicySet
from egress_xds.scrub import SecretScrubber
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import StreamRegistry
from egress_xds.xds.server import AdsServer
from tests.xds.client import DeltaClient, SotwClient
from tests.xds.conftest import Ads, group_by_metadata


@dataclass
class Debug:
    """The server, what the debug services read, and clients of both sides (xDS clients come from the
    tests/xds harness, on the same channel)."""

    server: AdsServer
    state: DebugView
    channel: grpc.aio.Channel
    ads: Ads

    @property
    def cache(self) -> SnapshotCache:
        return self.state.cache

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def sotw(self, node_id: str = "node-1", group: str | None = "g1", **metadata: str) -> SotwClient:
        return self.ads.sotw(node_id, group, **metadata)

    def delta(self, node_id: str = "node-1", group: str | None = "g1", **metadata: str) -> DeltaClient:
        return self.ads.delta(node_id, group, **metadata)

    async def csds(self, request: ClientStatusRequest | None = None) -> ClientStatusResponse:
        stub = csds_pb2_grpc.ClientStatusDiscoveryServiceStub(self.channel)
        response: ClientStatusResponse = await stub.FetchClientStatus(request or ClientStatusRequest())
        return response

    def admin(self) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(self.channel)

    async def nodes(self, **request: object) -> list[admin_pb2.NodeStatus]:
        response = await self.admin().ListNodes(admin_pb2.ListNodesRequest(**request))
        return list(response.nodes)


@pytest.fixture
def policies() -> list[PolicySet]:
    """What `DebugView.policies` returns: tests replace `policies[0]`."""
    return [PolicySet(())]


@pytest.fixture
async def debug(policies: list[PolicySet]) -> AsyncIterator[Debug]:
    cache = SnapshotCache(group_by_metadata)
    registry = StreamRegistry()
    state = DebugView(cache, registry, lambda: policies[0], "test", None, SecretScrubber(lambda: policies[0]))

    server = AdsServer(cache, "127.0.0.1:0", registry=registry)
    await add_debug_services(server, state)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    harness = Debug(server, state, channel, Ads(cache, registry, channel))
    try:
        yield harness
    finally:
        for client in harness.ads.clients:
            await client.close()
        await channel.close()
        await server.stop(grace=0)

"""A real ADS server on 127.0.0.1 (OS-assigned port) and raw clients connected to it over a real channel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Hashable, Mapping
from typing import Any

import grpc
import pytest

from egress_xds.policy.node import Node
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import StreamRecord, StreamRegistry
from egress_xds.xds.server import AdsServer
from tests.xds.client import DeltaClient, SotwClient, eventually, make_node

GROUP_KEY = "group"


def group_by_metadata(node: Node) -> Hashable | None:
    """Tests put nodes in groups with a `group` metadata key; nodes without one belong to no group."""
    return node.metadata.get(GROUP_KEY)


class Ads:
    """A running server, its cache and registry, and a factory for connected clients."""

    def __init__(
        self,
        cache: SnapshotCache,
        registry: StreamRegistry,
        channel: grpc.aio.Channel,
        server: AdsServer | None = None,
    ) -> None:
        self.server = server
        self.cache = cache
        self.registry = registry
        self.channel = channel
        self.clients: list[SotwClient | DeltaClient] = []

    def sotw(self, node_id: str = "node-1", group: str | None = "g1", **metadata: str) -> SotwClient:
        client = SotwClient(self.channel, _node(node_id, group, metadata))
        self.clients.append(client)
        return client

    def delta(self, node_id: str = "node-1", group: str | None = "g1", **metadata: str) -> DeltaClient:
        client = DeltaClient(self.channel, _node(node_id, group, metadata))
        self.clients.append(client)
        return client

    async def acked(self, type_url: str, version: str, node_id: str = "node-1") -> None:
        """Wait until the server has processed the client's ACK of `version` (ACKs have no response)."""
        await eventually(lambda: self.record(node_id).types[type_url].version_acked == version)

    def record(self, node_id: str = "node-1") -> StreamRecord:
        records = self.registry.for_node(node_id)
        assert len(records) == 1, records
        return records[0]


def _node(node_id: str, group: str | None, metadata: Mapping[str, str]) -> Any:
    values = dict(metadata)
    if group is not None:
        values[GROUP_KEY] = group
    return make_node(node_id, values)


@pytest.fixture
def cache() -> SnapshotCache:
    return SnapshotCache(group_by_metadata)


@contextlib.asynccontextmanager
async def open_ads(cache: SnapshotCache) -> AsyncIterator[Ads]:
    """A server on 127.0.0.1 (port 0) and a channel to it; closes clients, channel and server on exit."""
    registry = StreamRegistry()
    server = AdsServer(cache, "127.0.0.1:0", registry=registry)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    harness = Ads(cache, registry, channel, server)
    try:
        yield harness
    finally:
        for client in harness.clients:
            await client.close()
        await channel.close()
        await server.stop(grace=0)


@pytest.fixture
async def ads(cache: SnapshotCache) -> AsyncIterator[Ads]:
    async with open_ads(cache) as harness:
        yield harness

"""Raw ADS clients over a real gRPC channel, built only on the `xds-protos` stubs.

Each client reads responses in a background task into a queue, so a test can wait for the next response with a
timeout, or assert that none arrives, without cancelling a pending gRPC read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.base_pb2 import Node
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
)
from google.protobuf.struct_pb2 import Struct
from google.rpc.status_pb2 import Status

from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL

TIMEOUT = 5.0
SILENCE = 0.3

_MESSAGE_TYPES: dict[str, Any] = {CLUSTER_TYPE_URL: Cluster, LISTENER_TYPE_URL: Listener}


def make_node(node_id: str, metadata: Mapping[str, str] | None = None) -> Node:
    struct = Struct()
    struct.update(dict(metadata or {}))
    return Node(id=node_id, metadata=struct)


def decode(type_url: str, packed: Any) -> Any:
    message = _MESSAGE_TYPES[type_url]()
    assert packed.type_url == type_url
    packed.Unpack(message)
    return message


async def eventually(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Wait until `predicate()` holds (server-side state reached), bounded by `timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


class _Client:
    def __init__(self, call: Any) -> None:
        self.call = call
        self.responses: asyncio.Queue[Any] = asyncio.Queue()
        self.ended = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._first = True

    async def _read(self) -> None:
        try:
            async for response in self.call:
                await self.responses.put(response)
        except grpc.aio.AioRpcError:
            pass
        finally:
            self.ended.set()

    async def recv(self, timeout: float = TIMEOUT) -> Any:
        return await asyncio.wait_for(self.responses.get(), timeout)

    async def expect_silence(self, seconds: float = SILENCE) -> None:
        await asyncio.sleep(seconds)
        assert self.responses.empty(), f"unexpected response: {self.responses.get_nowait()}"

    async def close(self) -> None:
        self.call.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


class SotwClient(_Client):
    """StreamAggregatedResources. Sends `node` on the first request only, like the protocol allows."""

    def __init__(self, channel: grpc.aio.Channel, node: Node) -> None:
        super().__init__(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources())
        self.node = node
        self.names: dict[str, list[str]] = {}

    async def send(
        self,
        type_url: str,
        names: Iterable[str] | None = None,
        *,
        nonce: str = "",
        version: str = "",
        error: str | None = None,
    ) -> None:
        if names is not None:
            self.names[type_url] = list(names)
        request = DiscoveryRequest(
            type_url=type_url,
            resource_names=self.names.get(type_url, []),
            response_nonce=nonce,
            version_info=version,
        )
        if error is not None:
            request.error_detail.CopyFrom(Status(code=3, message=error))
        if self._first:
            request.node.CopyFrom(self.node)
            self._first = False
        await self.call.write(request)

    async def ack(self, response: DiscoveryResponse) -> None:
        await self.send(response.type_url, nonce=response.nonce, version=response.version_info)

    async def nack(self, response: DiscoveryResponse, message: str, acked_version: str = "") -> None:
        await self.send(response.type_url, nonce=response.nonce, version=acked_version, error=message)


class DeltaClient(_Client):
    """DeltaAggregatedResources."""

    def __init__(self, channel: grpc.aio.Channel, node: Node) -> None:
        super().__init__(ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).DeltaAggregatedResources())
        self.node = node

    async def send(
        self,
        type_url: str,
        subscribe: Iterable[str] = (),
        unsubscribe: Iterable[str] = (),
        *,
        initial: Mapping[str, str] | None = None,
        nonce: str = "",
        error: str | None = None,
    ) -> None:
        request = DeltaDiscoveryRequest(
            type_url=type_url,
            resource_names_subscribe=list(subscribe),
            resource_names_unsubscribe=list(unsubscribe),
            initial_resource_versions=dict(initial or {}),
            response_nonce=nonce,
        )
        if error is not None:
            request.error_detail.CopyFrom(Status(code=3, message=error))
        if self._first:
            request.node.CopyFrom(self.node)
            self._first = False
        await self.call.write(request)

    async def ack(self, response: DeltaDiscoveryResponse) -> None:
        await self.send(response.type_url, nonce=response.nonce)

    async def nack(self, response: DeltaDiscoveryResponse, message: str) -> None:
        await self.send(response.type_url, nonce=response.nonce, error=message)


def sotw_names(response: DiscoveryResponse) -> list[str]:
    """Resource names in a SotW response, in order (duplicates kept, so tests can see them)."""
    return [decode(response.type_url, packed).name for packed in response.resources]


def delta_names(response: DeltaDiscoveryResponse) -> list[str]:
    return [resource.name for resource in response.resources]


def delta_versions(response: DeltaDiscoveryResponse) -> dict[str, str]:
    return {resource.name: resource.version for resource in response.resources}

"""The floor: the least an ADS server on grpc.aio can do, to measure egress-xds against in the same run.

It serves the same snapshot egress-xds would (the real translator builds it once), as response bytes built once
per (version, type, protocol) and shared by every stream: one write per subscribed type per change, requests read
and thrown away except for the type a stream subscribes to first. No ACK bookkeeping, no registry, no metrics, no
logging, cyclic GC thresholds raised as `serve` raises them. Whatever egress-xds spends above this is its own
per-stream work (the ratio columns of `ads_fanout.py`), since Python and grpc.aio cost the same on both sides.

It answers the coordinator's pipe commands as `ads_fanout.server_main` does (`ready`, `stats`, `change`, `stop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import time
from collections.abc import AsyncIterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

import grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
    Resource,
)
from server_side import TYPES, Commands, GcClock, ServerStats, build_snapshot, child_setup, cpu_seconds, rss_kb

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
# Per stream: wake-ups it has not handled yet. A stream needs at most one per type, so this never blocks.
_WAKE_QUEUE = 8


class _Responses:
    """Prebuilt response bytes for one snapshot: (type URL) -> bytes, for SotW and for Delta."""

    def __init__(self, snapshot: Any, type_urls: Sequence[str]) -> None:
        self.versions = dict(snapshot.versions)
        self.sotw: dict[str, bytes] = {}
        self.delta: dict[str, bytes] = {}
        for type_url in type_urls:
            version = self.versions[type_url]
            resources = snapshot.resources(type_url).resources
            packed = [(resources[name], resources[name].packed) for name in sorted(resources)]
            self.sotw[type_url] = DiscoveryResponse(
                version_info=version, type_url=type_url, nonce=version, resources=[any_ for _, any_ in packed]
            ).SerializeToString()
            self.delta[type_url] = DeltaDiscoveryResponse(
                system_version_info=version,
                type_url=type_url,
                nonce=version,
                resources=[Resource(name=item.name, version=item.version, resource=any_) for item, any_ in packed],
            ).SerializeToString()


class FloorServer:
    def __init__(self, responses: _Responses) -> None:
        self.responses = responses
        self.streams: set[asyncio.Queue[str | None]] = set()

    def publish(self, responses: _Responses) -> None:
        self.responses = responses
        for wake in self.streams:
            wake.put_nowait(None)  # None: send every subscribed type again

    async def sotw(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for response in self._stream(requests, DiscoveryRequest, delta=False):
            yield response

    async def delta(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for response in self._stream(requests, DeltaDiscoveryRequest, delta=True):
            yield response

    async def _stream(self, requests: AsyncIterator[bytes], request_type: Any, *, delta: bool) -> AsyncIterator[bytes]:
        wake: asyncio.Queue[str | None] = asyncio.Queue(_WAKE_QUEUE)
        subscribed: list[str] = []
        reader = asyncio.ensure_future(self._read(requests, request_type, subscribed, wake))
        self.streams.add(wake)
        try:
            while True:
                item = await wake.get()
                if item == "":
                    return  # the client ended the stream
                table = self.responses.delta if delta else self.responses.sotw
                for type_url in subscribed if item is None else [item]:
                    if type_url in table:
                        yield table[type_url]
        finally:
            self.streams.discard(wake)
            reader.cancel()

    @staticmethod
    async def _read(
        requests: AsyncIterator[bytes], request_type: Any, subscribed: list[str], wake: asyncio.Queue[str | None]
    ) -> None:
        with contextlib.suppress(Exception):
            async for raw in requests:
                type_url = request_type.FromString(raw).type_url
                if type_url not in subscribed:  # a new subscription: answer it; anything else is an ACK
                    subscribed.append(type_url)
                    wake.put_nowait(type_url)
        with contextlib.suppress(asyncio.QueueFull):
            wake.put_nowait("")


def _handlers(floor: FloorServer) -> grpc.GenericRpcHandler:
    methods = {
        "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(floor.sotw),
        "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(floor.delta),
    }
    return grpc.method_handlers_generic_handler(SERVICE, methods)


def floor_main(conn: Connection, cpus: Sequence[int], gc_threshold: tuple[int, ...] | None) -> None:
    child_setup(cpus)
    gc.set_threshold(*(gc_threshold or (50_000, 20, 100)))  # as `serve` sets them
    asyncio.run(_serve(conn))


async def _serve(conn: Connection) -> None:
    gc_clock = GcClock()
    snapshot = build_snapshot(changed=False)
    floor = FloorServer(_Responses(snapshot, TYPES))
    server = grpc.aio.server(
        options=[("grpc.max_concurrent_streams", 1 << 20), ("grpc.max_send_message_length", 64 << 20)]
    )
    server.add_generic_rpc_handlers((_handlers(floor),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()

    def handle(command: tuple[Any, ...]) -> None:
        name = command[0]
        if name == "stats":
            cpu, gc_seconds = cpu_seconds(), gc_clock.seconds
            gc.collect()
            conn.send(("stats", ServerStats(rss_kb(), cpu, gc_seconds, len(floor.streams), len(gc.get_objects()))))
        elif name == "change":
            cpu, gc_seconds = cpu_seconds(), gc_clock.seconds
            started = time.perf_counter()
            responses = _Responses(build_snapshot(changed=True), TYPES)
            floor.publish(responses)
            conn.send(("changed", cpu, gc_seconds, time.perf_counter() - started, responses.versions, ["floor"]))
        elif name == "stop":
            commands.close()

    commands = Commands(conn, handle)
    sizes = {type_url: len(floor.responses.sotw[type_url]) for type_url in TYPES}
    counts = {type_url: len(snapshot.resources(type_url)) for type_url in TYPES}
    conn.send(("ready", port, dict(floor.responses.versions), sizes, counts, os.getpid()))
    await commands.closed.wait()
    await server.stop(1.0)
    with contextlib.suppress(OSError):
        conn.send(("stopped",))

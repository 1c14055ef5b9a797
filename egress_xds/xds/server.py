"""The gRPC side: the AggregatedDiscoveryService servicer and a server with deliberate options.

Responses are written as bytes already in wire format (see `wire` and `snapshot`), so the service is registered
with its own method handlers whose response serializer is the identity, instead of the generated
`add_AggregatedDiscoveryServiceServicer_to_server` (which would insist on protobuf objects).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from egress_xds.defaults import SERVE_LISTEN
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.delta import DeltaStream
from egress_xds.xds.registry import StreamRegistry
from egress_xds.xds.sotw import SotwStream
from egress_xds.xds.stream import AdsStream

SERVICE_NAME = "envoy.service.discovery.v3.AggregatedDiscoveryService"

MiB = 1024 * 1024

# Server options, and why:
SERVER_OPTIONS: tuple[tuple[str, int], ...] = (
    # Ping every connection after 30 s without traffic and drop it if no answer within 10 s: ADS streams are idle
    # between config changes, and a vanished Envoy (node crash, partition) would otherwise hold its stream and
    # memory until TCP gives up hours later.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # Accept Envoy's own keepalive pings (bootstrap `connection_keepalive`, typically every 30 s) down to one
    # every 10 s. gRPC's default (5 min) answers such clients with GOAWAY "too_many_pings".
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    # Responses: the full LDS of a policy with thousands of NO_PROXY entries is a few MiB; 64 MiB leaves ample
    # room while still failing loudly (RESOURCE_EXHAUSTED) on a runaway config. Envoy's own receive limit is
    # unlimited by default.
    ("grpc.max_send_message_length", 64 * MiB),
    # Requests are small (a node, resource names, a NACK message, Delta initial versions: ~60 bytes per
    # resource). 4 MiB (gRPC's default, set explicitly) bounds what one client can make the server buffer.
    ("grpc.max_receive_message_length", 4 * MiB),
    # A restart makes every Envoy reconnect at once. gRPC queues new calls until the application picks them up
    # and, past 1,000 (soft) / 3,000 (hard) queued calls, fails the excess (measured: INTERNAL / CANCELLED for
    # ~20% of a 3,600-stream burst). Each Envoy holds one stream, so the queue is bounded by the fleet size.
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
    # Fail instead of silently sharing the port with a second server (gRPC enables SO_REUSEPORT by default).
    ("grpc.so_reuseport", 0),
)

log = logging.getLogger("egress_xds.xds")


class AggregatedDiscoveryService:
    """`envoy.service.discovery.v3.AggregatedDiscoveryService`: SotW and Delta ADS over one snapshot cache.

    Holds the live streams so that shutdown can end them at once (Envoy then reconnects elsewhere and keeps its
    configuration meanwhile) instead of waiting for the grace period on streams that never end by themselves.
    """

    def __init__(self, cache: SnapshotCache, registry: StreamRegistry) -> None:
        self.cache = cache
        self.registry = registry
        self._streams: set[AdsStream[Any]] = set()

    async def StreamAggregatedResources(  # gRPC method name
        self, requests: AsyncIterator[DiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> None:
        await self._serve(SotwStream(self.cache, self.registry, context.peer(), context.write), requests, context)

    async def DeltaAggregatedResources(  # gRPC method name
        self, requests: AsyncIterator[DeltaDiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> None:
        await self._serve(DeltaStream(self.cache, self.registry, context.peer(), context.write), requests, context)

    def close_streams(self) -> int:
        """End every stream (server shutdown). Returns how many were open."""
        streams = list(self._streams)
        for stream in streams:
            stream.close()
        return len(streams)

    def add_to_server(self, server: grpc.aio.Server) -> None:
        handlers = {
            "StreamAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.StreamAggregatedResources,
                request_deserializer=DiscoveryRequest.FromString,
                response_serializer=None,  # responses are prebuilt wire-format bytes
            ),
            "DeltaAggregatedResources": grpc.stream_stream_rpc_method_handler(
                self.DeltaAggregatedResources,
                request_deserializer=DeltaDiscoveryRequest.FromString,
                response_serializer=None,
            ),
        }
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),))

    async def _serve(
        self, stream: AdsStream[Any], requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
    ) -> None:
        self._streams.add(stream)
        try:
            await stream.run(requests)
        finally:
            self._streams.discard(stream)
        if stream.error is not None:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(stream.error)
        elif stream.closed_by_server:
            # UNAVAILABLE tells Envoy to reconnect (to this or another replica); it keeps its config meanwhile.
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("egress-xds is shutting down")


@dataclass
class _Running:
    service: AggregatedDiscoveryService
    port: int
    signal_tasks: set[asyncio.Task[None]] = field(default_factory=set)
    on_stopping: list[Callable[[], Awaitable[None]]] = field(default_factory=list)


_RUNNING: weakref.WeakKeyDictionary[grpc.aio.Server, _Running] = weakref.WeakKeyDictionary()


def create_server(
    cache: SnapshotCache,
    listen: str = SERVE_LISTEN,
    *,
    registry: StreamRegistry | None = None,
    options: Iterable[tuple[str, Any]] = SERVER_OPTIONS,
) -> grpc.aio.Server:
    """A bound, not yet started server with the ADS service, for callers that add services (admin) first."""
    service = AggregatedDiscoveryService(cache, registry if registry is not None else StreamRegistry())
    server = grpc.aio.server(options=tuple(options))
    service.add_to_server(server)
    port = server.add_insecure_port(listen)
    if port == 0:  # older gRPC returned 0 instead of raising
        raise RuntimeError(f"cannot listen on {listen}")
    _RUNNING[server] = _Running(service, port)
    return server


async def start_server(
    cache: SnapshotCache,
    listen: str = SERVE_LISTEN,
    *,
    registry: StreamRegistry | None = None,
    options: Iterable[tuple[str, Any]] = SERVER_OPTIONS,
    before_start: Callable[[grpc.aio.Server], Awaitable[None]] | None = None,
) -> grpc.aio.Server:
    """Start serving ADS on `listen` (port 0: the OS picks one, see `bound_port`). `before_start` may add
    services (the admin side) to the bound server before it starts."""
    server = create_server(cache, listen, registry=registry, options=options)
    if before_start is not None:
        await before_start(server)
    await server.start()
    log.info("ADS server listening on %s (port %d)", listen, bound_port(server))
    return server


def bound_port(server: grpc.aio.Server) -> int:
    """The port a server made by `create_server` / `start_server` listens on."""
    return _RUNNING[server].port


def registry_of(server: grpc.aio.Server) -> StreamRegistry:
    """The stream registry of a server made by `create_server` / `start_server`."""
    return _RUNNING[server].service.registry


def streams_of(server: grpc.aio.Server) -> list[AdsStream[Any]]:
    """The open ADS streams of a server made by `create_server` / `start_server` (tests, debugging)."""
    return list(_RUNNING[server].service._streams)


def on_stopping(server: grpc.aio.Server, callback: Callable[[], Awaitable[None]]) -> None:
    """Await `callback` when `stop_server` begins, before streams close (e.g. health turns NOT_SERVING)."""
    _RUNNING[server].on_stopping.append(callback)


async def stop_server(server: grpc.aio.Server, grace: float = 5.0) -> None:
    """Graceful stop: refuse new streams, end ours at once, give in-flight writes `grace` seconds."""
    running = _RUNNING.get(server)
    if running is not None:
        for callback in running.on_stopping:
            await callback()
        closed = running.service.close_streams()
        log.info("ADS server stopping: closing %d stream(s), grace %.1fs", closed, grace)
    await server.stop(grace)


def install_signal_handlers(
    server: grpc.aio.Server,
    grace: float = 5.0,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
    on_stop: Callable[[], None] | None = None,
) -> None:
    """On SIGTERM / SIGINT, `stop_server(server, grace)` (then `on_stop`). Call from the running event loop."""
    loop = asyncio.get_running_loop()
    running = _RUNNING[server]

    async def stop() -> None:
        await stop_server(server, grace)
        if on_stop is not None:
            on_stop()

    def handle(signum: signal.Signals) -> None:
        log.info("received %s", signum.name)
        task = loop.create_task(stop())
        running.signal_tasks.add(task)
        task.add_done_callback(running.signal_tasks.discard)

    for signum in signals:
        loop.add_signal_handler(signum, handle, signum)

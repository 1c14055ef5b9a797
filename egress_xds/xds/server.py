"""The gRPC side: the AggregatedDiscoveryService servicer and `AdsServer`, a server with deliberate options.

Responses are written as bytes already in wire format (see `wire` and `snapshot`), so the service is registered
with its own method handlers whose response serializer is the identity, instead of the generated
`add_AggregatedDiscoveryServiceServicer_to_server` (which would insist on protobuf objects).

How a fleet moves between replicas without a push storm:
- Shutdown (`stop`): health turns NOT_SERVING, gRPC stops accepting connections and sends every connection a
  GOAWAY, then the streams are ended with UNAVAILABLE spread over the drain window (`drain.py`). Envoy keeps its
  configuration, and reconnects on a new connection, so to another replica.
- Maximum connection age: gRPC core's `grpc.max_connection_age_ms`. A stream ended by the server alone would be
  re-opened by Envoy on the same HTTP/2 connection, so to the same replica; a load balancer (a Kubernetes
  Service) only balances connections. At its age, gRPC core sends the connection a GOAWAY (the age of each
  connection is jittered by +-10% by gRPC core itself, so a fleet that connected at once does not reconnect at
  once), and closes it `MAX_CONNECTION_AGE_GRACE_SECONDS` later: ADS streams never end by themselves. Envoy
  reconnects on a new connection, where a Delta stream declares what it holds (`initial_resource_versions`: nothing
  is sent) and a SotW stream is answered with the versions it holds (Envoy finds every listener and cluster
  unchanged: no drain, no update).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any

import grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

from egress_xds import metrics
from egress_xds.defaults import SERVE_LISTEN
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.delta import DeltaStream
from egress_xds.xds.drain import close_over
from egress_xds.xds.identity import IdentityError, SpiffeId, identity_of
from egress_xds.xds.registry import StreamRegistry
from egress_xds.xds.sotw import SotwStream
from egress_xds.xds.stream import AdsStream
from egress_xds.xds.tls import ReloadingCertificates, ServerTls

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

# After a connection's maximum age, how long its streams may still run before gRPC core closes it. ADS streams
# never end by themselves, so this is only how long an Envoy waits on a connection that received its GOAWAY;
# long enough for a response being written (a few MiB) and its ACK.
MAX_CONNECTION_AGE_GRACE_SECONDS = 5.0

log = logging.getLogger("egress_xds.xds")


class AggregatedDiscoveryService:
    """`envoy.service.discovery.v3.AggregatedDiscoveryService`: SotW and Delta ADS over one snapshot cache.

    Holds the live streams so that shutdown can end them at once (Envoy then reconnects elsewhere and keeps its
    configuration meanwhile) instead of waiting for the grace period on streams that never end by themselves.
    """

    def __init__(self, cache: SnapshotCache, registry: StreamRegistry, *, require_identity: bool = False) -> None:
        self.cache = cache
        self.registry = registry
        self.require_identity = require_identity  # serve --client-ca: every stream has a verified SPIFFE id
        self._streams: dict[AdsStream[Any], None] = {}  # ordered: the drain closes the oldest first

    async def StreamAggregatedResources(  # gRPC method name
        self, requests: AsyncIterator[DiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> None:
        identity = await self._identity(context)
        stream = SotwStream(self.cache, self.registry, context.peer(), context.write, identity)
        await self._serve(stream, requests, context)

    async def DeltaAggregatedResources(  # gRPC method name
        self, requests: AsyncIterator[DeltaDiscoveryRequest], context: grpc.aio.ServicerContext
    ) -> None:
        identity = await self._identity(context)
        stream = DeltaStream(self.cache, self.registry, context.peer(), context.write, identity)
        await self._serve(stream, requests, context)

    async def _identity(self, context: grpc.aio.ServicerContext) -> SpiffeId | None:
        """The peer's verified SPIFFE id; with `require_identity`, a stream without one ends PERMISSION_DENIED."""
        if not self.require_identity:
            return None
        try:
            identity = identity_of(context.auth_context())
        except IdentityError as error:
            metrics.peer_refused("bad-identity")
            log.warning("stream refused: peer=%s: %s", context.peer(), error)
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
            raise AssertionError("not reached") from None  # abort raises
        if identity is None:
            metrics.peer_refused("no-identity")
            log.warning("stream refused: peer=%s: no verified client certificate", context.peer())
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "a client certificate with a SPIFFE id is required")
        return identity

    def streams(self) -> list[AdsStream[Any]]:
        """The open streams, oldest first."""
        return list(self._streams)

    def close_streams(self) -> None:
        """End every open stream at once (with UNAVAILABLE)."""
        for stream in list(self._streams):
            stream.close()

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
        self._streams[stream] = None
        try:
            await stream.run(requests)
        finally:
            self._streams.pop(stream, None)
        if stream.denied is not None:
            context.set_code(grpc.StatusCode.PERMISSION_DENIED)
            context.set_details(stream.denied)
        elif stream.error is not None:
            context.set_code(grpc.StatusCode.INVALID_ARGUMENT)
            context.set_details(stream.error)
        elif stream.closed_by_server:
            # UNAVAILABLE tells Envoy to reconnect (to this or another replica); it keeps its config meanwhile.
            context.set_code(grpc.StatusCode.UNAVAILABLE)
            context.set_details("egress-xds is shutting down")


def connection_age_options(
    max_connection_age: float, grace: float = MAX_CONNECTION_AGE_GRACE_SECONDS
) -> tuple[tuple[str, int], ...]:
    """gRPC core's options for a maximum connection age in seconds (0: unlimited, gRPC's default)."""
    if max_connection_age <= 0:
        return ()
    return (
        ("grpc.max_connection_age_ms", max(1, round(max_connection_age * 1000))),
        ("grpc.max_connection_age_grace_ms", round(grace * 1000)),
    )


class AdsServer:
    """The ADS service on a bound gRPC server: `start()`, serve, `stop()`.

    Binding happens here, so that callers can add services (the admin side) to `grpc` before `start`. With `tls`,
    every service on the port is served over TLS only (see `tls.py`); with its client CA, a client must present a
    certificate chaining to it and each ADS stream gets the certificate's SPIFFE identity. Raises TlsFilesError
    when the certificate files cannot be used, RuntimeError when `listen` cannot be bound.

    `drain_window`: `stop` spreads the closing of the streams over this many seconds (0: all at once).
    `max_connection_age`: seconds after which a connection is closed, with gRPC core's +-10% jitter, so that load
    spreads again after a scale-up (0: unlimited). See the module's docstring for how Envoy takes both.
    """

    def __init__(
        self,
        cache: SnapshotCache,
        listen: str = SERVE_LISTEN,
        *,
        registry: StreamRegistry | None = None,
        options: Iterable[tuple[str, Any]] = SERVER_OPTIONS,
        tls: ServerTls | None = None,
        drain_window: float = 0.0,
        max_connection_age: float = 0.0,
        max_connection_age_grace: float = MAX_CONNECTION_AGE_GRACE_SECONDS,
    ) -> None:
        self.listen = listen
        self.drain_window = drain_window
        self.max_connection_age = max_connection_age
        self._tls = tls
        self.certificates = ReloadingCertificates(tls) if tls is not None else None
        self._service = AggregatedDiscoveryService(
            cache,
            registry if registry is not None else StreamRegistry(),
            require_identity=tls is not None and tls.verifies_clients,
        )
        age_options = connection_age_options(max_connection_age, max_connection_age_grace)
        self.grpc = grpc.aio.server(options=(*options, *age_options))
        self._service.add_to_server(self.grpc)
        if self.certificates is not None:
            self.port = self.grpc.add_secure_port(listen, self.certificates.credentials())
        else:
            self.port = self.grpc.add_insecure_port(listen)
        if self.port == 0:  # older gRPC returned 0 instead of raising
            raise RuntimeError(f"cannot listen on {listen}")
        self._on_stopping: list[Callable[[], Awaitable[None]]] = []
        self._stopped: asyncio.Task[None] | None = None

    @property
    def registry(self) -> StreamRegistry:
        return self._service.registry

    def streams(self) -> list[AdsStream[Any]]:
        """The open ADS streams, oldest first (tests, debugging)."""
        return self._service.streams()

    def on_stopping(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Await `callback` when `stop` begins, before streams close (e.g. health turns NOT_SERVING)."""
        self._on_stopping.append(callback)

    async def start(self) -> None:
        await self.grpc.start()
        tls = self._tls
        log.info(
            "ADS server listening on %s (port %d) over %s, max connection age %s",
            self.listen,
            self.port,
            "plaintext" if tls is None else "TLS, client certificates required" if tls.verifies_clients else "TLS",
            f"{self.max_connection_age:g}s" if self.max_connection_age > 0 else "unlimited",
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Graceful stop: refuse new connections and streams, end ours over the drain window, then give in-flight
        writes `grace` seconds. A second call waits for the first."""
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop(grace))
        await asyncio.shield(self._stopped)

    async def _stop(self, grace: float) -> None:
        for callback in self._on_stopping:
            await callback()
        streams = self._service.streams()
        log.info(
            "ADS server stopping: closing %d stream(s) over %gs, grace %gs", len(streams), self.drain_window, grace
        )
        # GOAWAY first: an Envoy whose stream ends must reconnect on a new connection (to another replica), not
        # open a new stream on this one. gRPC ends what still runs once the window and the grace have passed.
        stopping = asyncio.ensure_future(self.grpc.stop(self.drain_window + grace))
        await asyncio.sleep(0)
        await close_over(streams, self.drain_window)
        self._service.close_streams()  # streams that started meanwhile
        await stopping

    async def __aenter__(self) -> AdsServer:
        await self.start()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop(grace=0)

"""The floor: the least an ADS server on grpc.aio can do, to measure egress-xds against in the same run.

Run as egress-xds is, by `bench.fanout.servers`: ``python -m bench.fanout.floor --config FILE --listen HOST:PORT``;
SIGHUP re-reads the file, SIGTERM stops it as `serve` stops (streams ended at once, then gRPC stop with the same
5 s grace).

It serves the same snapshot egress-xds would (the real translator builds it from the same file), as response
bytes built once per (version, type, protocol) and shared by every stream: one write per subscribed type per
change, requests read and thrown away except for the type a stream subscribes to first. No ACK bookkeeping, no
registry, no metrics, no logging, cyclic GC thresholds raised as `serve` raises them. Whatever egress-xds spends
above this is its own per-stream work, since Python and grpc.aio cost the same on both sides.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import grpc
from envoy.service.discovery.v3.discovery_pb2 import (
    DeltaDiscoveryRequest,
    DeltaDiscoveryResponse,
    DiscoveryRequest,
    DiscoveryResponse,
    Resource,
)

from bench.fanout.policy import TYPES, build_snapshot
from egress_xds.xds.server import SERVER_OPTIONS

SERVICE = "envoy.service.discovery.v3.AggregatedDiscoveryService"
SHUTDOWN_GRACE_SECONDS = 5.0  # as egress_xds.serve
GC_THRESHOLDS = (50_000, 20, 100)  # as egress_xds.serve
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

    def close(self) -> None:
        for wake in self.streams:
            with contextlib.suppress(asyncio.QueueFull):
                wake.put_nowait("")  # "": end the stream

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


def _responses(config: Path) -> _Responses:
    return _Responses(build_snapshot(config.read_text(), str(config)), TYPES)


async def serve(config: Path, listen: str) -> None:
    gc.set_threshold(*GC_THRESHOLDS)
    floor = FloorServer(_responses(config))
    # The gRPC core options egress-xds serves with (keepalive, message sizes, and the limits on calls queued before
    # the application picks them up, without which an N-stream burst has streams refused): the same transport.
    server = grpc.aio.server(options=SERVER_OPTIONS)
    server.add_generic_rpc_handlers((_handlers(floor),))
    server.add_insecure_port(listen)
    await server.start()
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    loop.add_signal_handler(signal.SIGHUP, lambda: floor.publish(_responses(config)))
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    loop.add_signal_handler(signal.SIGINT, stopped.set)
    await stopped.wait()
    floor.close()  # as egress-xds's stop_server: end the streams at once, then give writes the grace
    await server.stop(SHUTDOWN_GRACE_SECONDS)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="the floor ADS server of bench.fanout")
    parser.add_argument("--config", required=True, type=Path, help="policy file (re-read on SIGHUP)")
    parser.add_argument("--listen", required=True, metavar="HOST:PORT")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.config, args.listen))


if __name__ == "__main__":
    main()

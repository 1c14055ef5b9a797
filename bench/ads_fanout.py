"""ADS fan-out benchmark: how fast a config change reaches N Envoy streams, and what each stream costs the server.

Run: ``python bench/ads_fanout.py [--sizes 100,1000,5000,10000] [--protocol sotw|delta|both] [--clients K]``
(``--help`` lists the other knobs). This is a benchmark, not a test: it prints figures and asserts nothing.

Setup, for every (protocol, N), with fresh processes:

- **Server**: its own process (``multiprocessing``, spawn) on ``127.0.0.1:<ephemeral port>``, run as
  ``egress-xds serve`` runs it: ``SnapshotCache`` + ``PolicyPublisher`` (the real translator) + ``start_server``
  with the production options. The policy has 4 proxies (one with two failover endpoints), 30 rules and 100
  NO_PROXY entries; every node is a sidecar selected by that one policy, so all N streams share one snapshot
  (its LDS / CDS sizes are printed).
- **Floor** (``--server both``, the default, or ``floor``): ``bench/floor_server.py``, the least a grpc.aio ADS
  server can do (prebuilt response bytes shared by all streams, no bookkeeping), on the very same snapshot, measured
  back to back with egress-xds for every (protocol, N) with the same clients; a last table gives egress-xds as a
  multiple of the floor, which is what the targets are about (absolute times on a shared machine are noise).
- **Clients**: N simulated Envoys (node ids ``bench-<i>``) spread over K client processes (default: one per
  2,500 streams, at most 4), 50 streams per HTTP/2 connection (``--streams-per-channel``). Each behaves like
  Envoy on ADS: the first request carries the node and subscribes to CDS (wildcard); LDS (wildcard) is requested
  once the first CDS response arrived; every response is ACKed at once (SotW: version_info + response_nonce;
  Delta: response_nonce). A stream records, per type, the version it holds and when it got it (monotonic clock,
  taken when the ACK is handed to the socket). Requests are xds-protos messages; responses are read for their
  envelope only (version, type, nonce), as resource bytes are all an ACK needs.
- **Client transport**: by default a minimal HTTP/2 client for gRPC framing on asyncio Protocols (section
  "the light transport" below). grpc.aio (``--transport grpc``) was measured to spend about as much CPU per
  message as the server, which on 2 cores takes the CPU the server needs; it stays available to cross-check.
- **Connecting**: all N streams are opened at once, like a fleet reconnecting after a server restart
  (``--connecting M`` paces them: at most M wait for their first response). A refused or ended stream retries
  with Envoy's jittered backoff and is counted in ``retried``.

Measured:

- **initial convergence**: from "connect" (client processes started and idle) until every stream holds a version
  of both LDS and CDS.
- **change propagation**: with all streams idle for a second, the benchmark sends a ``change`` command over a
  ``multiprocessing`` pipe to the server process (the trigger). The server parses a new policy text (rule 4 now
  goes through a newly added proxy, so CDS and LDS both change) and calls ``PolicyPublisher.publish`` on its event
  loop: a file reload minus the watch debounce (``reload`` column: parse + translate + publish). Per stream,
  latency = (when it held and ACKed the new versions of both types) - (when the trigger was sent);
  ``time.monotonic`` is one system-wide clock on Linux, so times from different processes compare. Reported:
  p50 / p99 / max over streams (nearest rank).
- **server memory**: RSS (``/proc/self/status``, after ``gc.collect()``) once the snapshot is published and before
  any stream connects, and again with all N streams connected and idle: (delta / N). Also the number of objects
  the cyclic GC tracks, per stream.
- **CPU**: user + system (``os.times``, all threads) of the server and of all client processes from the trigger
  until every stream had converged, and the server's time in cyclic garbage collection (``gc.callbacks``; it
  only observes) in that window. Client CPU well below the server's and below the window's wall time shows the
  client is not what limits the figures.

Every size has an overall timeout (``--timeout``, default 120 s): when it expires the size reports what it has
(the ``converged`` column) and the next one starts. All child processes are stopped by PID at the end of each
size, also on error or Ctrl-C, and a child whose coordinator died exits when its pipe closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import multiprocessing
import os
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from floor_server import floor_main
from server_side import CDS, LDS, TYPES, Commands, ServerStats, child_setup, cpu_seconds, raise_fd_limit, server_main

MiB = 1024 * 1024
SERVICE = "/envoy.service.discovery.v3.AggregatedDiscoveryService/"

DEFAULT_SIZES = (100, 1000, 5000, 10000)
DEFAULT_TIMEOUT = 120.0
# How many streams may wait for their first response at once; 0: all N connect at once, like a fleet after a
# server restart. With gRPC core's default limits on calls queued before the application picks them up
# (grpc.server.max_pending_requests 1,000 / _hard_limit 3,000) such a burst had ~18% of 3,000 streams refused;
# the server raises both (server.SERVER_OPTIONS), and the `retried` column shows it if that ever regresses.
DEFAULT_CONNECTING = 0
POLL_SECONDS = 0.05  # how often the coordinator asks the clients for progress (does not limit the resolution)
IDLE_SECONDS = 1.0  # quiet time before the idle RSS reading and before the trigger
START_TIMEOUT = 60.0
# Envoy's ADS reconnect policy (GrpcStream): jittered exponential backoff from 500 ms up to 30 s.
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
MAX_ATTEMPTS = 20  # for a child process to import and report in
STOP_TIMEOUT = 10.0

# -- the client processes -----------------------------------------------------------------------------------------


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


# Field numbers shared by DiscoveryResponse and DeltaDiscoveryResponse: (system_)version_info, type_url, nonce.
_ENVELOPE_FIELDS = {1: 0, 4: 1, 5: 2}


def envelope(response: bytes) -> tuple[str, str, str]:
    """(version, type_url, nonce) of a serialized DiscoveryResponse or DeltaDiscoveryResponse.

    Reads the top-level fields and skips the resources without decoding them: all an ACK needs, at a fraction
    of the client CPU that deserializing tens of KB of resources per response would cost.
    """
    values = ["", "", ""]
    pos, end = 0, len(response)
    while pos < end:
        key, pos = _varint(response, pos)
        wire_type = key & 7
        if wire_type == 2:
            length, pos = _varint(response, pos)
            slot = _ENVELOPE_FIELDS.get(key >> 3)
            if slot is not None:
                values[slot] = response[pos : pos + length].decode()
            pos += length
        elif wire_type == 0:
            _, pos = _varint(response, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"unexpected wire type {wire_type} in a discovery response")
    return values[0], values[1], values[2]


class _Tally:
    """Counts kept up to date by the streams of one client process, so a progress poll costs O(1), not O(N)."""

    __slots__ = ("failures", "gave_up", "holding", "initial", "targets")

    def __init__(self) -> None:
        self.initial = 0  # streams holding a version of every type
        self.targets: dict[str, str] | None = None
        self.holding = 0  # streams holding `targets`
        self.failures = 0
        self.gave_up = 0

    def aim(self, targets: dict[str, str], streams: list[_Held]) -> None:
        if targets != self.targets:
            self.targets = targets
            self.holding = 0
            for stream in streams:
                stream.counted = stream.holds(targets)
                self.holding += stream.counted


class _Held:
    """What one simulated Envoy holds: version per type and when it got it (after ACKing)."""

    __slots__ = ("at", "counted", "error", "initial_at", "tally", "versions")

    def __init__(self, tally: _Tally) -> None:
        self.tally = tally
        self.versions: dict[str, str] = {}
        self.at: dict[str, float] = {}
        self.initial_at: float | None = None
        self.counted = False  # counted in `tally.holding`
        self.error: str | None = None  # why the latest attempt failed

    def got(self, type_url: str, version: str) -> None:
        if self.versions.get(type_url) == version:
            return
        now = time.monotonic()
        self.versions[type_url] = version
        self.at[type_url] = now
        tally = self.tally
        if self.initial_at is None and len(self.versions) == len(TYPES):
            self.initial_at = now
            tally.initial += 1
        if tally.targets is not None and not self.counted and self.holds(tally.targets):
            self.counted = True
            tally.holding += 1

    def holds(self, targets: dict[str, str]) -> bool:
        versions = self.versions
        return all(versions.get(type_url) == version for type_url, version in targets.items())

    def time_of(self, targets: dict[str, str]) -> float | None:
        """When this stream held all `targets` (the latest of the per-type times), or None."""
        if not self.holds(targets):
            return None
        return max(self.at[type_url] for type_url in targets)


@dataclass(frozen=True)
class ClientSpec:
    """What one client process runs: streams `first .. first + count - 1` of one protocol, over one transport."""

    port: int
    protocol: str  # "sotw" | "delta"
    transport: str  # "h2" | "grpc"
    first: int
    count: int
    per_channel: int
    in_flight: int  # streams of this process that may wait for their first response at once (0: no limit)


class _Dialect:
    """The requests of one ADS flavour, built with the xds-protos messages and serialized to bytes."""

    def __init__(self, protocol: str) -> None:
        from envoy.config.core.v3.base_pb2 import Node
        from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

        self._node = Node
        self.sotw = protocol == "sotw"
        self.method = "StreamAggregatedResources" if self.sotw else "DeltaAggregatedResources"
        self._request: Any = DiscoveryRequest if self.sotw else DeltaDiscoveryRequest
        self.listeners = self._request(type_url=LDS).SerializeToString()

    def first(self, node_id: str) -> bytes:
        """Envoy's first request: the node, and a wildcard subscription to clusters."""
        node = self._node(id=node_id, cluster="bench", user_agent_name="envoy")
        return bytes(self._request(node=node, type_url=CDS).SerializeToString())

    def ack(self, version: str, type_url: str, nonce: str) -> bytes:
        if self.sotw:
            return bytes(
                self._request(type_url=type_url, version_info=version, response_nonce=nonce).SerializeToString()
            )
        return bytes(self._request(type_url=type_url, response_nonce=nonce).SerializeToString())


class _Envoy:
    """One simulated Envoy: what it sends in answer to what, independent of the transport carrying it."""

    __slots__ = ("dialect", "held", "listeners_requested", "node_id", "opening")

    def __init__(self, dialect: _Dialect, node_id: str, held: _Held) -> None:
        self.dialect = dialect
        self.node_id = node_id
        self.held = held
        self.listeners_requested = False
        self.opening: asyncio.Semaphore | None = None  # held while this stream waits for its first response

    def start(self) -> bytes:
        """A new stream (first or retried): the first request."""
        self.listeners_requested = False
        return self.dialect.first(self.node_id)

    def on_response(self, response: bytes) -> tuple[tuple[bytes, ...], str, str]:
        """The requests to send (ACK, then LDS after the first CDS response), and the (type, version) received.

        The caller records the version with `held.got` once the requests are written.
        """
        version, type_url, nonce = envelope(response)
        ack = self.dialect.ack(version, type_url, nonce)
        if self.listeners_requested:
            return (ack,), type_url, version
        self.listeners_requested = True
        self.release()
        return (ack, self.dialect.listeners), type_url, version

    def release(self) -> None:
        if self.opening is not None:
            self.opening.release()
            self.opening = None


async def _keep_up(
    envoy: _Envoy, attempt: Callable[[_Envoy], Awaitable[str]], opening: asyncio.Semaphore, tally: _Tally
) -> None:
    """Keep one Envoy's stream up: on failure retry with Envoy's jittered exponential backoff (bounded)."""
    backoff = RETRY_BASE_SECONDS
    for _ in range(MAX_ATTEMPTS):
        await opening.acquire()
        envoy.opening = opening
        try:
            envoy.held.error = await attempt(envoy)
        finally:
            envoy.release()
        tally.failures += 1
        await asyncio.sleep(random.uniform(0, backoff))
        backoff = min(2 * backoff, RETRY_MAX_SECONDS)
    tally.gave_up += 1


# -- the light transport: gRPC framing over a minimal HTTP/2 client -----------------------------------------------
#
# grpc.aio costs about as much CPU per message on the client as on the server (futures, a completion-queue thread
# hop and Cython wrappers per read and per write), so with 2 cores a grpc.aio client takes the CPU the server
# needs. This client speaks just enough HTTP/2 (RFC 9113) for gRPC bidi streams: requests are HEADERS (HPACK
# literals from the static table, never the dynamic table) + DATA; response headers and trailers are skipped
# without HPACK decoding (a HEADERS frame with END_STREAM, or RST_STREAM, ends a stream); SETTINGS and PING are
# acknowledged; receive windows are opened wide and topped up. Each `data_received` handles every complete frame
# and writes all resulting ACKs at once.

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _PING, _GOAWAY, _WINDOW_UPDATE = 0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8
_FLAG_END_STREAM = _FLAG_ACK = 0x1
_FLAG_END_HEADERS = 0x4
_FLAG_PADDED = 0x8
_MAX_WINDOW = 2**31 - 1
_DEFAULT_WINDOW = 65_535
_WINDOW_REFILL = 2**28  # top up a receive window after this many bytes
_SETTINGS_ENABLE_PUSH, _SETTINGS_INITIAL_WINDOW_SIZE, _SETTINGS_MAX_FRAME_SIZE = 0x2, 0x4, 0x5


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream_id.to_bytes(4, "big") + payload


def _hpack_int(value: int, prefix_bits: int, flags: int) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes((flags | value,))
    out = bytearray((flags | limit,))
    value -= limit
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _hpack_string(text: str) -> bytes:
    raw = text.encode()
    return _hpack_int(len(raw), 7, 0) + raw  # no Huffman coding


def request_headers(path: str, authority: str) -> bytes:
    """HPACK block of a gRPC request: `:method POST`, `:scheme http` (static table), then literals never indexed."""

    def literal(name_index: int, value: str) -> bytes:  # "literal header field without indexing", indexed name
        return _hpack_int(name_index, 4, 0) + _hpack_string(value)

    te = b"\x00" + _hpack_string("te") + _hpack_string("trailers")  # new name
    return b"\x83\x86" + literal(4, path) + literal(1, authority) + literal(31, "application/grpc") + te


class _H2Stream:
    __slots__ = ("buffer", "ended", "envoy", "received")

    def __init__(self, envoy: _Envoy, ended: asyncio.Future[str]) -> None:
        self.envoy = envoy
        self.ended = ended
        self.buffer = bytearray()
        self.received = 0


class _H2Connection(asyncio.Protocol):
    """One TCP connection carrying many ADS streams."""

    def __init__(self, headers: bytes) -> None:
        self._headers = headers
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._streams: dict[int, _H2Stream] = {}
        self._next_id = 1
        self._out: list[bytes] | None = None  # while handling received frames: writes to send in one go
        self._received = 0
        self.send_window = _DEFAULT_WINDOW
        self.usable = True

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        settings = b"".join(
            key.to_bytes(2, "big") + value.to_bytes(4, "big")
            for key, value in (
                (_SETTINGS_ENABLE_PUSH, 0),
                (_SETTINGS_INITIAL_WINDOW_SIZE, _MAX_WINDOW),
                (_SETTINGS_MAX_FRAME_SIZE, 2**20),
            )
        )
        transport.write(
            _PREFACE
            + _frame(_SETTINGS, 0, 0, settings)
            + _frame(_WINDOW_UPDATE, 0, 0, (_MAX_WINDOW - _DEFAULT_WINDOW).to_bytes(4, "big"))
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        for stream_id in list(self._streams):
            self._end(stream_id, f"connection lost: {exc!r}")

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        out: list[bytes] = []
        self._out = out
        position, size = 0, len(buffer)
        try:
            while size - position >= 9:
                length = int.from_bytes(buffer[position : position + 3], "big")
                end = position + 9 + length
                if end > size:
                    break
                kind, flags = buffer[position + 3], buffer[position + 4]
                stream_id = int.from_bytes(buffer[position + 5 : position + 9], "big") & 0x7FFFFFFF
                self._handle(kind, flags, stream_id, bytes(buffer[position + 9 : end]))
                position = end
        finally:
            del buffer[:position]
            self._out = None
            if out and self._transport is not None:
                self._transport.write(b"".join(out))

    # -- streams

    def open(self, envoy: _Envoy) -> asyncio.Future[str]:
        """Start an ADS stream for `envoy`; the future gets why the stream ended."""
        stream_id = self._next_id
        self._next_id += 2
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._streams[stream_id] = _H2Stream(envoy, ended)
        self._send(_frame(_HEADERS, _FLAG_END_HEADERS, stream_id, self._headers) + self._data(stream_id, envoy.start()))
        return ended

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()

    def _data(self, stream_id: int, message: bytes) -> bytes:
        payload = b"\x00" + len(message).to_bytes(4, "big") + message
        self.send_window -= len(payload)
        if self.send_window < 0:  # the server tops our window up as it reads; a few KB per run never exhaust it
            raise RuntimeError("HTTP/2 connection send window exhausted")
        return _frame(_DATA, 0, stream_id, payload)

    def _send(self, data: bytes) -> None:
        if self._out is not None:
            self._out.append(data)
        elif self._transport is not None:
            self._transport.write(data)

    def _end(self, stream_id: int, reason: str) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and not stream.ended.done():
            stream.ended.set_result(reason)

    def _handle(self, kind: int, flags: int, stream_id: int, payload: bytes) -> None:
        if kind == _DATA:
            self._on_data(flags, stream_id, payload)
        elif kind == _HEADERS:
            if flags & _FLAG_END_STREAM:  # trailers (or trailers-only: the call was refused)
                self._end(stream_id, "stream ended by the server")
        elif kind == _RST_STREAM:
            self._end(stream_id, f"RST_STREAM error {int.from_bytes(payload[:4], 'big')}")
        elif kind == _SETTINGS:
            if not flags & _FLAG_ACK:
                self._send(_frame(_SETTINGS, _FLAG_ACK, 0, b""))
        elif kind == _PING:
            if not flags & _FLAG_ACK:
                self._send(_frame(_PING, _FLAG_ACK, 0, payload))
        elif kind == _GOAWAY:
            self.usable = False
            last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
            for other in [other for other in self._streams if other > last]:
                self._end(other, "GOAWAY")
        elif kind == _WINDOW_UPDATE and stream_id == 0:
            self.send_window += int.from_bytes(payload[:4], "big") & 0x7FFFFFFF

    def _on_data(self, flags: int, stream_id: int, payload: bytes) -> None:
        self._received += len(payload)
        if self._received >= _WINDOW_REFILL:
            self._send(_frame(_WINDOW_UPDATE, 0, 0, self._received.to_bytes(4, "big")))
            self._received = 0
        if flags & _FLAG_PADDED:
            payload = payload[1 : len(payload) - payload[0]]
        stream = self._streams.get(stream_id)
        if stream is not None:
            stream.received += len(payload)
            if stream.received >= _WINDOW_REFILL:
                self._send(_frame(_WINDOW_UPDATE, 0, stream_id, stream.received.to_bytes(4, "big")))
                stream.received = 0
            buffer = stream.buffer
            buffer += payload
            while len(buffer) >= 5:
                end = 5 + int.from_bytes(buffer[1:5], "big")
                if len(buffer) < end:
                    break
                message = bytes(buffer[5:end])
                del buffer[:end]
                requests, type_url, version = stream.envoy.on_response(message)
                for request in requests:
                    self._send(self._data(stream_id, request))
                stream.envoy.held.got(type_url, version)  # the ACK leaves when this batch of frames is written
        if flags & _FLAG_END_STREAM:
            self._end(stream_id, "stream ended by the server")


class _H2Channel:
    """A connection that is (re)opened on demand; streams retried after a lost connection open a new one."""

    def __init__(self, port: int, headers: bytes) -> None:
        self._port = port
        self._headers = headers
        self._connection: _H2Connection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> _H2Connection:
        async with self._lock:
            if self._connection is None or not self._connection.usable:
                loop = asyncio.get_running_loop()
                _, self._connection = await loop.create_connection(
                    lambda: _H2Connection(self._headers), "127.0.0.1", self._port
                )
            return self._connection

    async def attempt(self, envoy: _Envoy) -> str:
        try:
            connection = await self.connection()
        except OSError as error:
            return f"connect failed: {error!r}"
        return await connection.open(envoy)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()


# -- the grpc.aio transport (--transport grpc), to cross-check the light one --------------------------------------


def _grpc_channel(port: int, method: str) -> tuple[Callable[[_Envoy], Awaitable[str]], Callable[[], Awaitable[None]]]:
    import grpc

    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{port}",
        options=[
            ("grpc.use_local_subchannel_pool", 1),  # one TCP connection per channel, not one shared subchannel
            ("grpc.max_receive_message_length", 64 * MiB),
        ],
    )
    # Requests are serialized by `_Dialect`, responses are read by `envelope`: bytes both ways.
    open_call = channel.stream_stream(SERVICE + method, request_serializer=None, response_deserializer=None)

    async def attempt(envoy: _Envoy) -> str:
        call = open_call()
        try:
            await call.write(envoy.start())
            async for response in call:
                requests, type_url, version = envoy.on_response(response)
                for request in requests:
                    await call.write(request)
                envoy.held.got(type_url, version)
            return "stream ended by the server"
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name}: {error.details()}"
        finally:
            call.cancel()

    async def close() -> None:
        await channel.close(grace=None)

    return attempt, close


# -- the client process -------------------------------------------------------------------------------------------


def client_main(conn: Connection, cpus: Sequence[int], spec: ClientSpec) -> None:
    child_setup(cpus)
    asyncio.run(_client(conn, spec))


async def _client(conn: Connection, spec: ClientSpec) -> None:
    dialect = _Dialect(spec.protocol)
    tally = _Tally()
    held = [_Held(tally) for _ in range(spec.count)]
    envoys = [_Envoy(dialect, f"bench-{spec.first + index}", held[index]) for index in range(spec.count)]
    opening = asyncio.Semaphore(spec.in_flight if spec.in_flight > 0 else spec.count)
    tasks: list[asyncio.Task[None]] = []
    closers: list[Callable[[], Awaitable[None] | None]] = []

    def connect() -> None:
        headers = request_headers(SERVICE + dialect.method, f"127.0.0.1:{spec.port}")
        for start in range(0, spec.count, spec.per_channel):
            attempt: Callable[[_Envoy], Awaitable[str]]
            if spec.transport == "grpc":
                attempt, close = _grpc_channel(spec.port, dialect.method)
                closers.append(close)
            else:
                channel = _H2Channel(spec.port, headers)
                attempt = channel.attempt
                closers.append(channel.close)
            for envoy in envoys[start : start + spec.per_channel]:
                tasks.append(asyncio.create_task(_keep_up(envoy, attempt, opening, tally)))

    def handle(command: tuple[Any, ...]) -> None:
        name = command[0]
        if name == "connect":
            connect()
            conn.send(("connecting",))
        elif name == "progress":
            targets: dict[str, str] | None = command[1]
            if targets is None:
                done = tally.initial
            else:
                tally.aim(targets, held)
                done = tally.holding
            conn.send(("progress", done, tally.gave_up, tally.failures))
        elif name == "times":
            targets = command[1]
            if targets is None:
                times = [state.initial_at for state in held]
            else:
                times = [state.time_of(targets) for state in held]
            first_error = next((state.error for state in held if state.error is not None), None)
            conn.send(("times", times, first_error))
        elif name == "cpu":
            conn.send(("cpu", cpu_seconds()))
        elif name == "stop":
            commands.close()

    commands = Commands(conn, handle)
    conn.send(("loaded", os.getpid()))
    await commands.closed.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for close in closers:
        result = close()
        if result is not None:
            await result
    with contextlib.suppress(OSError):
        conn.send(("stopped", cpu_seconds()))


# -- the coordinator ----------------------------------------------------------------------------------------------


class Timeout(Exception):
    """A phase ran out of its time budget."""


@dataclass
class Child:
    name: str
    process: BaseProcess
    conn: Connection

    def send(self, *command: Any) -> None:
        self.conn.send(command)

    def receive(self, expected: str, deadline: float) -> tuple[Any, ...]:
        """The next `expected` reply; late replies to commands that timed out earlier are skipped."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.conn.poll(remaining):
                raise Timeout(f"{self.name}: no {expected!r} reply in time")
            reply: tuple[Any, ...] = self.conn.recv()
            if reply[0] == expected:
                return reply

    def ask(self, deadline: float, *command: Any) -> tuple[Any, ...]:
        self.send(*command)
        return self.receive(_REPLIES[command[0]], deadline)


_REPLIES = {
    "stats": "stats",
    "change": "changed",
    "progress": "progress",
    "times": "times",
    "cpu": "cpu",
    "connect": "connecting",
}


@dataclass
class Result:
    protocol: str
    n: int
    server: str
    clients: int
    channels: int
    initial_seconds: float | None = None
    initial_done: int = 0
    p50: float | None = None
    p99: float | None = None
    max: float | None = None
    changed_done: int = 0
    initial_failures: int = 0  # stream attempts refused or ended while connecting (retried with backoff)
    change_failures: int = 0
    rss_before_kb: int | None = None
    rss_after_kb: int | None = None
    gc_objects_before: int | None = None
    gc_objects_after: int | None = None
    server_cpu: float | None = None
    server_gc: float | None = None
    client_cpu: float | None = None
    reload_seconds: float | None = None  # in the server: parse + translate + publish (part of every latency)
    wall: float = 0.0
    note: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def kb_per_stream(self) -> float | None:
        if self.rss_before_kb is None or self.rss_after_kb is None or not self.n:
            return None
        return (self.rss_after_kb - self.rss_before_kb) / self.n

    @property
    def objects_per_stream(self) -> float | None:
        if self.gc_objects_before is None or self.gc_objects_after is None or not self.n:
            return None
        return (self.gc_objects_after - self.gc_objects_before) / self.n


def median_run(attempts: Sequence[Result]) -> Result:
    """The attempt with the median p99 (unfinished attempts count as slowest): one coherent row, not a mix."""
    ordered = sorted(attempts, key=lambda result: math.inf if result.p99 is None else result.p99)
    return ordered[(len(ordered) - 1) // 2]


def load_average() -> str:
    """The 1-minute load average: other work on the machine shows here and in the figures."""
    with open("/proc/loadavg") as loadavg:
        return loadavg.read().split()[0]


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


def auto_clients(n: int) -> int:
    """Enough client processes that one event loop never carries more than ~2,500 streams."""
    return max(1, min(4, math.ceil(n / 2500)))


@dataclass(frozen=True)
class Options:
    clients: int  # 0: auto_clients(n)
    per_channel: int
    connecting: int
    transport: str
    timeout: float
    verbose: bool
    pin: bool
    server_gc: tuple[int, ...] | None = None  # gc.set_threshold in the server process (an experiment knob)


class Run:
    """One (protocol, N) measurement with its own server and client processes."""

    def __init__(self, protocol: str, n: int, options: Options, server: str = "egress") -> None:
        self.protocol = protocol
        self.server_kind = server
        self.n = n
        self.options = options
        self.clients = max(1, min(options.clients or auto_clients(n), n))
        per_channel = options.per_channel
        self.in_flight = math.ceil(options.connecting / self.clients) if options.connecting > 0 else 0
        # --pin: the server alone on the first CPU, the clients on the others (no CPU stolen in either direction).
        available = sorted(os.sched_getaffinity(0))
        pin = options.pin and len(available) > 1
        self.server_cpus: tuple[int, ...] = tuple(available[:1]) if pin else ()
        self.client_cpus: tuple[int, ...] = tuple(available[1:]) if pin else ()
        self.timeout = options.timeout
        self.verbose = options.verbose
        self.context = multiprocessing.get_context("spawn")
        self.children: list[Child] = []
        self.server: Child | None = None
        self.snapshot_info: tuple[dict[str, int], dict[str, int]] | None = None
        split = [n // self.clients + (1 if index < n % self.clients else 0) for index in range(self.clients)]
        self.split = split
        channels = sum(math.ceil(count / per_channel) for count in split)
        self.result = Result(protocol, n, server, self.clients, channels)

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  [{self.server_kind} {self.protocol} N={self.n}] {message}", file=sys.stderr, flush=True)

    def _start(self, name: str, target: Callable[..., None], *args: Any) -> Child:
        parent, child = self.context.Pipe()
        process = self.context.Process(target=target, args=(child, *args), name=name, daemon=True)
        process.start()
        child.close()
        started = Child(name, process, parent)
        self.children.append(started)
        return started

    def execute(self) -> Result:
        started = time.monotonic()
        deadline = started + self.timeout
        try:
            self._measure(deadline)
        except Timeout as error:
            self.result.note = f"timeout: {error}"
        except Exception as error:
            self.result.note = f"error: {error!r}"
        finally:
            self.stop()
            self.result.wall = time.monotonic() - started
        return self.result

    def _measure(self, deadline: float) -> None:
        result = self.result
        target = SERVERS[self.server_kind]
        server = self.server = self._start("server", target, self.server_cpus, self.options.server_gc)
        _, port, versions, sizes, counts, pid = server.receive("ready", time.monotonic() + START_TIMEOUT)
        self.snapshot_info = (sizes, counts)
        self.log(f"server pid {pid} port {port}, initial versions {versions}")
        idle: ServerStats = server.ask(deadline, "stats")[1]
        result.rss_before_kb, result.gc_objects_before = idle.rss_kb, idle.gc_objects

        first = 0
        clients: list[Child] = []
        for index, count in enumerate(self.split):
            clients.append(
                self._start(
                    f"client-{index}",
                    client_main,
                    self.client_cpus,
                    ClientSpec(
                        port,
                        self.protocol,
                        self.options.transport,
                        first,
                        count,
                        self.options.per_channel,
                        self.in_flight,
                    ),
                )
            )
            first += count
        for client in clients:
            client.receive("loaded", time.monotonic() + START_TIMEOUT)

        # Phase 1: connect and converge on the initial snapshot.
        connect_at = time.monotonic()
        for client in clients:
            client.ask(deadline, "connect")
        result.initial_done, result.initial_failures = self._wait_all(clients, None, deadline)
        initial = self._times(clients, None, time.monotonic() + STOP_TIMEOUT)  # report what there is, also late
        if initial and len(initial) >= self.n:
            result.initial_seconds = max(initial) - connect_at
        self.log(f"initial: {result.initial_done}/{self.n} in {result.initial_seconds}")
        if result.initial_done < self.n:
            raise Timeout(f"only {result.initial_done}/{self.n} streams got the initial config")
        time.sleep(min(IDLE_SECONDS, max(0.0, deadline - time.monotonic())))
        connected: ServerStats = server.ask(deadline, "stats")[1]
        result.rss_after_kb, result.gc_objects_after = connected.rss_kb, connected.gc_objects
        self.log(
            f"server RSS {result.rss_before_kb} -> {result.rss_after_kb} KB, GC-tracked objects "
            f"{result.gc_objects_before} -> {result.gc_objects_after}, with {connected.streams} streams"
        )

        # Phase 2: trigger a change and wait for every stream to hold (and have ACKed) the new versions.
        client_cpu_before = sum(client.ask(deadline, "cpu")[1] for client in clients)
        trigger_at = time.monotonic()
        _, server_cpu_before, server_gc_before, reload_seconds, new_versions, changed = server.ask(deadline, "change")
        result.reload_seconds = reload_seconds
        targets = {type_url: new_versions[type_url] for type_url in TYPES}
        changed_types = [url.rsplit(".", 1)[-1] for url in TYPES if new_versions[url] != versions.get(url)]
        self.log(f"change: groups {changed}, types {changed_types}, reload {reload_seconds * 1000:.0f} ms")
        try:
            result.changed_done, failures = self._wait_all(clients, targets, deadline)
            result.change_failures = failures - result.initial_failures
        finally:
            end_deadline = time.monotonic() + STOP_TIMEOUT
            after: ServerStats = server.ask(end_deadline, "stats")[1]
            result.server_cpu = after.cpu - server_cpu_before
            result.server_gc = after.gc_seconds - server_gc_before
            result.client_cpu = sum(client.ask(end_deadline, "cpu")[1] for client in clients) - client_cpu_before
            latencies = sorted(at - trigger_at for at in self._times(clients, targets, end_deadline))
            if latencies:
                result.p50 = percentile(latencies, 0.50)
                result.p99 = percentile(latencies, 0.99)
                result.max = latencies[-1]
        if result.changed_done < self.n:
            raise Timeout(f"only {result.changed_done}/{self.n} streams got the new config")

    def _wait_all(self, clients: list[Child], targets: dict[str, str] | None, deadline: float) -> tuple[int, int]:
        """Poll until every stream holds `targets` (None: any version of every type).

        Returns how many streams do, and how many stream attempts failed so far (each was retried).
        """
        done = failures = 0
        while time.monotonic() < deadline:
            done = gave_up = failures = 0
            for client in clients:
                _, client_done, client_gave_up, client_failures = client.ask(deadline, "progress", targets)
                done += client_done
                gave_up += client_gave_up
                failures += client_failures
            if done + gave_up >= self.n:
                break
            time.sleep(POLL_SECONDS)
        return done, failures

    def _times(self, clients: list[Child], targets: dict[str, str] | None, deadline: float) -> list[float]:
        times: list[float] = []
        for client in clients:
            _, client_times, first_error = client.ask(deadline, "times", targets)
            times.extend(at for at in client_times if at is not None)
            if first_error is not None:
                self.result.errors.append(f"{client.name}: {first_error}")
        return times

    def stop(self) -> None:
        """Stop every child: ask politely, then SIGTERM, then SIGKILL, always by PID."""
        for child in self.children:
            with contextlib.suppress(OSError, ValueError):
                child.send("stop")
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            child.process.join(max(0.1, deadline - time.monotonic()))
        for child in self.children:
            if child.process.is_alive():
                self.log(f"{child.name} (pid {child.process.pid}) did not stop: SIGTERM")
                child.process.terminate()
                child.process.join(2.0)
            if child.process.is_alive():
                child.process.kill()
                child.process.join(2.0)
            child.conn.close()
        self.children.clear()


SERVERS: dict[str, Callable[..., None]] = {"egress": server_main, "floor": floor_main}


# -- output -------------------------------------------------------------------------------------------------------

COLUMNS = (
    ("N", 6),
    ("initial conv (s)", 16),
    ("change p50 (s)", 14),
    ("p99 (s)", 7),
    ("max (s)", 7),
    ("server RSS/stream (KB)", 22),
    ("server CPU change (s)", 21),
    ("client CPU change (s)", 20),
    # extras
    ("of which GC (s)", 15),
    ("reload (ms)", 11),
    ("GC objs/stream", 14),
    ("converged", 11),
    ("retried", 7),
    ("K/conns", 7),
)

LEGEND = """\
initial conv: connect until every stream holds LDS+CDS; change p50/p99/max: trigger until each stream holds and
ACKed the new LDS+CDS; server RSS/stream: (RSS with N idle streams - RSS before) / N; server/client CPU change:
user+sys of the server / all client processes from the trigger until the last stream converged; of which GC:
server time in cyclic garbage collection in that window; reload: parse + translate + publish in the server (part
of every latency); GC objs/stream: objects tracked by the server's GC per connected stream; retried: stream
attempts refused or ended (retried with Envoy's backoff); K/conns: client processes / HTTP/2 connections."""


def _seconds(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(protocol: str, server: str, results: Sequence[Result]) -> Iterator[str]:
    method = "SOTW (StreamAggregatedResources)" if protocol == "sotw" else "DELTA (DeltaAggregatedResources)"
    yield f"{method}, {'egress-xds' if server == 'egress' else 'floor server'}"
    yield " | ".join(title.rjust(width) for title, width in COLUMNS)
    yield "-+-".join("-" * width for _, width in COLUMNS)
    for result in results:
        reload_ms = None if result.reload_seconds is None else result.reload_seconds * 1000
        cells = (
            str(result.n),
            _seconds(result.initial_seconds, 2),
            _seconds(result.p50),
            _seconds(result.p99),
            _seconds(result.max),
            _seconds(result.kb_per_stream, 1),
            _seconds(result.server_cpu, 2),
            _seconds(result.client_cpu, 2),
            _seconds(result.server_gc, 2),
            _seconds(reload_ms, 0),
            _seconds(result.objects_per_stream, 0),
            f"{result.changed_done}/{result.n}" if result.initial_done >= result.n else f"init {result.initial_done}",
            str(result.initial_failures + result.change_failures),
            f"{result.clients}/{result.channels}",
        )
        yield " | ".join(cell.rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))
    for result in results:
        if result.note or result.errors:
            detail = "; ".join([result.note, *result.errors[:2]]).strip("; ")
            yield f"  N={result.n}: {detail}"


def _ratio(ours: float | None, floor: float | None) -> str:
    return "-" if ours is None or floor is None or floor <= 0 else f"{ours / floor:.2f}x"


def ratio_table(protocol: str, ours: Sequence[Result], floors: Sequence[Result]) -> Iterator[str]:
    """egress-xds as a multiple of the floor measured in the same run (absolute times on a shared machine are noise;
    the ratio is what the targets in bench/README.md are about)."""
    yield f"{protocol.upper()}: egress-xds / floor"
    titles = (("N", 6), ("initial conv", 12), ("change p50", 10), ("change p99", 10), ("RSS/stream +KB", 14))
    yield " | ".join(title.rjust(width) for title, width in titles)
    yield "-+-".join("-" * width for _, width in titles)
    floor_by_n = {result.n: result for result in floors}
    for result in ours:
        floor = floor_by_n.get(result.n)
        if floor is None:
            continue
        extra = None
        if result.kb_per_stream is not None and floor.kb_per_stream is not None:
            extra = result.kb_per_stream - floor.kb_per_stream
        cells = (
            str(result.n),
            _ratio(result.initial_seconds, floor.initial_seconds),
            _ratio(result.p50, floor.p50),
            _ratio(result.p99, floor.p99),
            _seconds(extra, 1),
        )
        yield " | ".join(cell.rjust(width) for cell, (_, width) in zip(cells, titles, strict=True))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated stream counts")
    parser.add_argument("--protocol", choices=("sotw", "delta", "both"), default="both")
    parser.add_argument(
        "--server",
        choices=("egress", "floor", "both"),
        default="both",
        help="egress-xds, the floor server (bench/floor_server.py), or both back to back with ratios (default)",
    )
    parser.add_argument(
        "--clients", type=int, default=0, help="client processes (default: 0 = one per 2,500 streams, at most 4)"
    )
    parser.add_argument(
        "--transport",
        choices=("h2", "grpc"),
        default="h2",
        help="client side: a minimal HTTP/2 gRPC client (light) or grpc.aio (about as heavy as the server)",
    )
    parser.add_argument("--streams-per-channel", type=int, default=50, help="streams multiplexed on one connection")
    parser.add_argument(
        "--connecting",
        type=int,
        default=DEFAULT_CONNECTING,
        help="streams that may wait for their first response at once, over all clients (0: all, a reconnect storm)",
    )
    parser.add_argument(
        "--pin", action="store_true", help="server on the first CPU, client processes on the others (sched_setaffinity)"
    )
    parser.add_argument(
        "--server-gc",
        metavar="T0,T1,T2",
        help="experiment: gc.set_threshold(T0, T1, T2) in the server process (default: Python's own thresholds)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs per size; the table shows the run with the median p99"
    )
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds allowed per (protocol, N)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser.parse_args(argv)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both end the run cleanly (children stopped by PID), also when started in the background.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    protocols = ["sotw", "delta"] if args.protocol == "both" else [args.protocol]
    options = Options(
        clients=args.clients,
        per_channel=args.streams_per_channel,
        connecting=args.connecting,
        transport=args.transport,
        timeout=args.timeout,
        verbose=not args.quiet,
        pin=args.pin,
        server_gc=tuple(int(value) for value in args.server_gc.split(",")) if args.server_gc else None,
    )
    limit = raise_fd_limit()
    started = time.monotonic()
    servers = ["egress", "floor"] if args.server == "both" else [args.server]
    results: dict[tuple[str, str], list[Result]] = {(p, server): [] for p in protocols for server in servers}
    snapshot_info: tuple[dict[str, int], dict[str, int]] | None = None
    print(
        f"ads_fanout: {os.cpu_count()} CPUs, RLIMIT_NOFILE {limit}, python {sys.version.split()[0]}, "
        f"timeout {args.timeout:.0f}s per size, {args.streams_per_channel} streams per channel, "
        f"client transport {args.transport}{', pinned' if args.pin else ''}, load average {load_average()}"
        f"{f', server gc.set_threshold{options.server_gc}' if options.server_gc else ''}",
        flush=True,
    )
    try:
        for protocol in protocols:
            for n, server in ((n, server) for n in sizes for server in servers):
                attempts: list[Result] = []
                for _ in range(max(1, args.repeat)):
                    run = Run(protocol, n, options, server)
                    result = run.execute()
                    snapshot_info = snapshot_info or run.snapshot_info
                    attempts.append(result)
                    print(
                        f"{server} {protocol} N={n}: initial {_seconds(result.initial_seconds, 2)}s, "
                        "change p50/p99/max "
                        f"{_seconds(result.p50)}/{_seconds(result.p99)}/{_seconds(result.max)}s, "
                        f"{result.changed_done}/{n} converged, run {result.wall:.1f}s, load average "
                        f"{load_average()} {result.note}",
                        flush=True,
                    )
                results[(protocol, server)].append(median_run(attempts))
    except KeyboardInterrupt:
        print("interrupted: children stopped; partial results follow", flush=True)
    print()
    if snapshot_info is not None:
        sizes_by_type, counts = snapshot_info
        described = ", ".join(
            f"{url.rsplit('.', 1)[-1]}: {counts[url]} resources, {sizes_by_type[url] / 1024:.1f} KiB" for url in TYPES
        )
        print(f"snapshot (one policy, sidecar mode, shared by all streams): {described}")
    spec = importlib.util.find_spec("egress_xds")
    print(f"server code: {os.path.dirname(spec.origin) if spec and spec.origin else '?'}")
    print("trigger: 'change' command over a multiprocessing pipe -> parse + PolicyPublisher.publish in the server loop")
    for protocol in protocols:
        for server in servers:
            print()
            for line in table(protocol, server, results[(protocol, server)]):
                print(line)
        if len(servers) == 2:
            print()
            for line in ratio_table(protocol, results[(protocol, "egress")], results[(protocol, "floor")]):
                print(line)
    print()
    print(LEGEND)
    print(f"\ntotal runtime {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

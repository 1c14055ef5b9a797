"""The light client transport: gRPC framing over a minimal HTTP/2 client on asyncio Protocols.

grpc.aio costs about as much CPU per message on the client as on the server (futures, a completion-queue thread
hop and Cython wrappers per read and per write), so with 2 cores a grpc.aio client takes the CPU the server
needs. This client speaks just enough HTTP/2 (RFC 9113) for gRPC bidi streams: requests are HEADERS (HPACK
literals from the static table, never the dynamic table) + DATA; response headers and trailers are skipped
without HPACK decoding (a HEADERS frame with END_STREAM, or RST_STREAM, ends a stream); SETTINGS and PING are
acknowledged; receive windows are opened wide and topped up. Each `data_received` handles every complete frame
and writes all resulting ACKs at once.
"""

from __future__ import annotations

import asyncio

from bench.fanout.envoy import Envoy

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


class H2Stream:
    __slots__ = ("buffer", "ended", "envoy", "received")

    def __init__(self, envoy: Envoy, ended: asyncio.Future[str]) -> None:
        self.envoy = envoy
        self.ended = ended
        self.buffer = bytearray()
        self.received = 0


class H2Connection(asyncio.Protocol):
    """One TCP connection carrying many ADS streams."""

    def __init__(self, headers: bytes, port: int) -> None:
        self._headers = headers
        self.port = port
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._streams: dict[int, H2Stream] = {}
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

    def open(self, envoy: Envoy) -> asyncio.Future[str]:
        """Start an ADS stream for `envoy`; the future gets why the stream ended."""
        stream_id = self._next_id
        self._next_id += 2
        ended: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._streams[stream_id] = H2Stream(envoy, ended)
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
                # the ACK leaves when this batch of frames is written
                stream.envoy.held.got(type_url, version, self.port)
        if flags & _FLAG_END_STREAM:
            self._end(stream_id, "stream ended by the server")


class H2Channel:
    """A connection that is (re)opened on demand; streams retried after a lost connection open a new one, to the
    next of `ports` (one replica gone: the next connection goes to another, as through a Service)."""

    def __init__(self, ports: tuple[int, ...], headers: bytes) -> None:
        self._ports = ports
        self._next_port = 0
        self._headers = headers
        self._connection: H2Connection | None = None
        self._lock = asyncio.Lock()

    async def connection(self) -> H2Connection:
        async with self._lock:
            if self._connection is None or not self._connection.usable:
                if self._connection is not None:
                    self._next_port += 1
                port = self._ports[self._next_port % len(self._ports)]
                loop = asyncio.get_running_loop()
                _, self._connection = await loop.create_connection(
                    lambda: H2Connection(self._headers, port), "127.0.0.1", port
                )
            return self._connection

    async def attempt(self, envoy: Envoy) -> str:
        try:
            connection = await self.connection()
        except OSError as error:
            return f"connect failed: {error!r}"
        return await connection.open(envoy)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()

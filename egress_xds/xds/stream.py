"""The part of an ADS stream that SotW and Delta share: reading, waking, ordering, bookkeeping, logging.

The stream's state is changed by one task at a time, on the event loop. An idle stream is one task, the RPC's
own, waiting for a request (`run`). It handles each request as it comes and, if the request may need a response,
walks the types in ADS order (clusters, endpoints, listeners, routes) and writes whatever each needs before it
reads the next; a plain ACK after a push that sent nothing needs no walk (`_handle_now`). A configuration change
that comes while the stream waits for a request starts a short-lived push task, which walks the types the same
way; requests read meanwhile are queued for it, in order. A snapshot change therefore always reaches the client
as CDS before LDS, on one stream, and at most one task writes at a time.

The stream also keeps the books the admin side reads (the `StreamRecord`), and reports its events (connect, sent,
ACK with its convergence time, NACK, retry, close) to a `StreamObserver`: metrics and logs are that observer's.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import ClassVar, Generic, TypeVar

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from google.protobuf.message import DecodeError

from egress_xds.policy.node import Node
from egress_xds.type_urls import LISTENER_TYPE_URL, ads_sort_key
from egress_xds.xds.cache import SnapshotCache, Watch
from egress_xds.xds.identity import IdentityMismatch, SpiffeId, verified_node
from egress_xds.xds.node import node_from_proto, node_identity
from egress_xds.xds.observer import METRICS_AND_LOGS, StreamObserver
from egress_xds.xds.registry import AdsVariant, StreamRecord, StreamRegistry
from egress_xds.xds.responses import Response
from egress_xds.xds.snapshot import Snapshot
from egress_xds.xds.state import StreamTypeState, mark_acked

RequestT = TypeVar("RequestT", DiscoveryRequest, DeltaDiscoveryRequest)

# Distinct type URLs one stream may subscribe to. Envoy asks for at most a handful (CDS, EDS, LDS, RDS, SDS, ...);
# each costs per-stream state and a step in every push.
MAX_TYPES_PER_STREAM = 64

# What one stream may have read and not yet handled. Requests are small (a few hundred bytes; a NACK message or a
# Delta reconnect's initial versions can be larger), so this is plenty for any real client and bounds a flood.
MAX_QUEUED_REQUESTS = 8
MAX_QUEUED_BYTES = 1024 * 1024

log = logging.getLogger("egress_xds.xds")


class _ClientGone(Exception):
    """Writing a response failed because the RPC ended (the client cancelled or vanished)."""


class ProtocolError(Exception):
    """A request the protocol does not allow: the stream ends with INVALID_ARGUMENT and this message."""


class PermissionDenied(Exception):
    """The node may not have what it asks for (its claims contradict its certificate): PERMISSION_DENIED."""


class AdsStream(ABC, Generic[RequestT]):
    """One ADS stream. Subclasses implement `_handle` (one request) and `_respond` (one type, or nothing)."""

    protocol: ClassVar[AdsVariant]

    def __init__(
        self,
        cache: SnapshotCache,
        registry: StreamRegistry,
        peer: str,
        write: Callable[[bytes], Awaitable[None]],
        identity: SpiffeId | None = None,
        observer: StreamObserver = METRICS_AND_LOGS,
    ) -> None:
        self._cache = cache
        self._observer = observer  # metrics and logs watch the stream through it
        self.identity = identity  # verified by the TLS handshake (serve --client-ca), or None
        self._registry = registry
        self._write = write
        # One task per idle stream: the RPC's own, reading (`run`). `_serving`: a task is handling requests and
        # pushing (that one, or a push task a change started); `_woken`: it has more to do.
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop `run` runs on (the cache's may not be running)
        self._pusher: asyncio.Task[None] | None = None
        self._serving = False
        self._woken = False
        self._waiting = False  # the reading task awaits a request or room in the inbox
        self._reading_stopped = False  # `_stop_reading` cancelled the reading task
        self._failure: Exception | None = None  # a defect the push task hit: `run` raises it
        self._inbox: list[RequestT] = []  # a list: a deque costs a 0.5 KB block per idle stream
        self._inbox_bytes = 0
        self._room: asyncio.Future[None] | None = None  # the reading task waits on it while the inbox is full
        self.inbox_high_water = 0  # the most requests the inbox ever held (tests, debugging)
        self._states: dict[str, StreamTypeState] = {}
        self._ordered: list[StreamTypeState] = []
        self._watch: Watch | None = None
        self._changed_at: float | None = None  # monotonic time of the oldest change not pushed yet
        self._quiet = False  # the latest push found nothing to send (see `_handle_now`)
        self._ended = False
        self.closed_by_server = False
        self.error: str | None = None  # why the server ended the stream (INVALID_ARGUMENT), if it did
        self.denied: str | None = None  # why the server refused the node (PERMISSION_DENIED), if it did
        self._changes = 0  # responses sent that carried a change (see `StreamTypeState.changes_seen`)
        self.record = StreamRecord(registry.new_stream_id(), self.protocol, peer, Node(id=""))

    async def run(self, requests: AsyncIterator[RequestT]) -> None:
        """Serve the stream until the client half-closes, the RPC is cancelled, or `close()` is called.

        Runs in the RPC's own task, which reads: an idle stream is that one task, waiting for a request. A request
        that needs a response is answered here, before the next is read; a configuration change that arrives
        while the task waits for a request is pushed by a short-lived task (`_config_changed`)."""
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            await self._read(requests)
        except asyncio.CancelledError:
            if not self._reading_stopped or self._uncancel():
                raise  # the RPC was cancelled (the client went away, or the server is past its grace)
        finally:
            self._ended = True
            pusher, self._pusher = self._pusher, None
            if pusher is not None:  # a push in progress: finished (a half-close), or cancelled with the RPC
                if self._task is not None and self._task.cancelling():
                    pusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pusher
            self._finish()
        if self._failure is not None:
            raise self._failure

    def close(self) -> None:
        """End the stream from the server side (shutdown)."""
        self.closed_by_server = True
        self._ended = True
        self._stop_reading()

    # -- for subclasses ----------------------------------------------------------------------------------------

    @abstractmethod
    def _handle(self, request: RequestT) -> None:
        """Apply one request to the stream's state."""

    def _plain_ack(self, request: RequestT) -> bool:
        """True if `request` only ACKs the latest response of its type and changes nothing else (no NACK, no
        subscription change, not the first of its type): handled while the stream sleeps, it needs no push."""
        state = self._states.get(request.type_url)
        return (
            state is not None
            and bool(state.nonce)
            and request.response_nonce == state.nonce
            and not request.HasField("error_detail")
            and self._changes_nothing_else(state, request)
        )

    @abstractmethod
    def _changes_nothing_else(self, state: StreamTypeState, request: RequestT) -> bool:
        """For a request that ACKs the latest response of its type: it says nothing more (the variant's own
        fields: SotW's version and names, Delta's subscription changes and declared versions)."""

    @abstractmethod
    def _respond(self, snapshot: Snapshot, state: StreamTypeState) -> bytes | None:
        """The encoded response this type needs now, or None; updates `state` as if it was sent."""

    def _start(self, node_message: object | None) -> None:
        """On the first request only: the node (later requests need not carry it) and its watch."""
        if self._watch is not None:
            return
        if node_message is None:
            raise ProtocolError("the first request of a stream must carry the node")
        node = node_from_proto(node_message)
        if self.identity is not None:
            try:
                node = verified_node(node, self.identity)
            except IdentityMismatch as mismatch:
                self._observer.on_refused(self.record, node, self.identity, mismatch)
                raise PermissionDenied(f"{mismatch}; nothing is sent to this node") from None
        self._watch = self._cache.watch(node, self._config_changed)
        self.record.node = node
        self.record.node_message = node_identity(node_message)
        self.record.group = self._watch.group
        self._registry.add(self.record)
        self._observer.on_connect(self.record, self.identity)

    def _state(self, type_url: str) -> tuple[StreamTypeState, bool]:
        """The state of a type, and whether this request is the first of that type on the stream."""
        state = self._states.get(type_url)
        if state is not None:
            state.requests += 1
            return state, False
        if not type_url:
            raise ProtocolError("type_url is required on every request of an aggregated (ADS) stream")
        if len(self._states) >= MAX_TYPES_PER_STREAM:
            raise ProtocolError(f"more than {MAX_TYPES_PER_STREAM} distinct type URLs on one stream")
        state = StreamTypeState(type_url, requests=1)
        self._states[type_url] = self.record.types[type_url] = state
        bisect.insort(self._ordered, state, key=lambda item: ads_sort_key(item.type_url))
        return state, True

    def _listeners(self) -> StreamTypeState | None:
        return self._states.get(LISTENER_TYPE_URL)

    def _acked(self, state: StreamTypeState) -> None:
        mark_acked(state)
        state.version_acked = state.version_sent
        state.acked = state.sent
        state.ack_time = time.time()
        change_time, state.change_time = state.change_time, None
        self._observer.on_ack(
            self.record, state.type_url, time.monotonic() - change_time if change_time is not None else None
        )

    def _nacked(self, state: StreamTypeState, message: str) -> None:
        state.nack_message = message
        state.nack_time = time.time()
        state.nack_version = state.version_sent
        state.nack_nonce = state.nonce
        state.rejected = state.sent
        state.change_time = None  # this change never converges; the next one is timed afresh
        if self._changes > state.changes_seen:  # the configuration changed after the NACKed response was sent
            self._retry(state)
        self._report_nack(state, state.version_sent, message)

    def _report_nack(self, state: StreamTypeState, version: str, message: str) -> None:
        self._observer.on_nack(self.record, state.type_url, version, state.version_acked, message)

    def _sent(self, state: StreamTypeState, version: str, response: Response) -> None:
        state.nonce = response.nonce
        state.sequence = response.sequence
        state.synced_version = version
        state.must_answer = False
        state.version_sent = version
        state.last_update_time = time.time()

    # -- internals ---------------------------------------------------------------------------------------------

    async def _read(self, requests: AsyncIterator[RequestT]) -> None:
        iterator = aiter(requests)
        while not self._ended:
            request = await self._next(iterator)
            if request is None or self._ended:
                return
            if self._serving:
                # A push task is writing: the request is queued and handled by that task, in its order.
                await self._queue(request)
                continue
            # Nothing is being served: the request is handled here, and served here only if it may need a
            # response. Most requests are ACKs of what was just sent: they need nothing.
            self._serving = True
            try:
                try:
                    if self._handle_now(request):
                        self._woken = True
                except (ProtocolError, PermissionDenied) as error:
                    self._refuse(error)
                    return
                await self._serve()
            finally:
                self._serving = False

    async def _next(self, iterator: AsyncIterator[RequestT]) -> RequestT | None:
        """The next request, or None when the client half-closed, vanished, or sent what is no request."""
        self._waiting = True  # `_stop_reading` may cancel the wait
        try:
            return await anext(iterator)
        except StopAsyncIteration:
            return None
        except DecodeError as error:  # bytes that are not a request of this RPC
            self._reject(f"malformed request: {error}")
            return None
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the client vanished mid-message; the stream just ends
            log.debug("stream %d read failed: %r", self.record.stream_id, error)
            return None
        finally:
            self._waiting = False

    async def _queue(self, request: RequestT) -> None:
        self._inbox.append(request)
        self._inbox_bytes += _size_of(request)
        self.inbox_high_water = max(self.inbox_high_water, len(self._inbox))
        self._woken = True
        if len(self._inbox) >= MAX_QUEUED_REQUESTS or self._inbox_bytes >= MAX_QUEUED_BYTES:
            # Stop reading until the push task has handled what is queued: a client that floods requests while
            # not reading responses (the push task is then blocked in `write`) is held back by HTTP/2 flow
            # control instead of growing this list.
            self._room = asyncio.get_running_loop().create_future()
            self._waiting = True
            try:
                await self._room
            finally:
                self._waiting = False

    async def _serve(self) -> None:
        """While woken: handle the queued requests, then push. The caller owns serving (`_serving`)."""
        while self._woken and not self._ended:
            self._woken = False
            if self._inbox:
                requests_now, self._inbox, self._inbox_bytes = self._inbox, [], 0
                self._make_room()
                try:
                    for request in requests_now:
                        self._handle(request)
                except (ProtocolError, PermissionDenied) as error:
                    self._refuse(error)
                    self._ended = True
                    return
            if self._watch is not None and not await self._push(self._watch):
                self._ended = True  # the client is gone
                return

    async def _push_later(self) -> None:
        """The short-lived task a configuration change starts while the stream waits for a request. What it
        fails with (a defect) ends the stream, and `run` raises it, as if the RPC's own task had failed."""
        try:
            await self._serve()
        except Exception as error:
            self._failure = error
            self._ended = True
        finally:
            self._serving = False
            self._pusher = None
            if self._ended:
                self._stop_reading()

    def _stop_reading(self) -> None:
        """End the stream's reading task if it is waiting (for a request, or for room): it then finishes the
        stream. A task that is serving sees `_ended` itself once its write returns."""
        task = self._task
        if self._waiting and task is not None and not self._reading_stopped and task is not asyncio.current_task():
            self._reading_stopped = True
            task.cancel()

    def _uncancel(self) -> bool:
        """Take back the cancellation `_stop_reading` asked for. True if the task is still being cancelled by
        someone else (gRPC cancelled the RPC too): the cancellation then goes on."""
        task = self._task
        return task is not None and task.uncancel() > 0

    def _handle_now(self, request: RequestT) -> bool:
        """Handle one request that came while nothing was being served. True if it may need a push now:
        anything but a plain ACK after a push that found nothing to send, or an ACK of listeners that changes
        which clusters they may still use (the clusters kept for make-before-break follow those). After a push
        that sent something, the next request always leads to a push, as every request did before: a type sent
        later in ADS order may have changed what an earlier one needs (LDS sent: CDS no longer keeps a cluster)."""
        plain = self._quiet and self._plain_ack(request)
        listeners = self._listeners()
        uses_before = listeners.held_uses if listeners is not None else None
        self._handle(request)
        if not plain or any(state.must_answer for state in self._ordered):
            return True
        listeners = self._listeners()
        return (listeners.held_uses if listeners is not None else None) != uses_before

    def _make_room(self) -> None:
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)

    def _config_changed(self) -> None:
        """The cache's wake-up: this stream's snapshot (or group) changed. Pushed by whoever is serving, or by a
        push task started here while the stream waits for a request."""
        if self._changed_at is None:
            self._changed_at = time.monotonic()
        self._woken = True
        if not self._serving and not self._ended and self._loop is not None:
            self._serving = True
            self._pusher = self._loop.create_task(self._push_later())

    async def _push(self, watch: Watch) -> bool:
        """Send what each type needs. False if the client went away meanwhile."""
        self.record.group = watch.group
        snapshot = watch.snapshot()
        self._quiet = True  # until a response is written
        if snapshot is None:
            return True
        changed_at, self._changed_at = self._changed_at, None
        changed = False
        sent_now: set[str] = set()
        try:
            for state in self._ordered:
                retry = changed and _awaits_retry(state)
                if retry:
                    self._retry(state)
                if await self._send(snapshot, state, changed_at):
                    sent_now.add(state.type_url)
                    changed = changed or not retry
            if changed:  # types before the first change in ADS order (e.g. CDS NACKed, then LDS changed)
                for state in self._ordered:
                    if state.type_url not in sent_now and _awaits_retry(state):
                        self._retry(state)
                        await self._send(snapshot, state, changed_at)
        except _ClientGone as gone:
            log.debug("stream %d: write failed, the client is gone: %r", self.record.stream_id, gone.__cause__)
            return False
        return True

    async def _send(self, snapshot: Snapshot, state: StreamTypeState, changed_at: float | None) -> bool:
        """Write the response `state` needs now, if any. True if it carries a change: a set of another version
        than the one sent before (a first response, or a resubscription to the same set, is no change). Compared
        with the version last sent, not `synced_version`: a Delta unsubscribe clears that one."""
        before = state.version_sent or None
        payload = self._respond(snapshot, state)
        if payload is None:
            return False
        self._quiet = False
        if changed_at is not None and state.change_time is None:
            state.change_time = changed_at
        try:
            await self._write(payload)
        except Exception as error:  # grpc's ExecuteBatchError / AioRpcError: the RPC ended under us (cancel)
            raise _ClientGone from error
        self._observer.on_sent(self.record, state.type_url, len(payload))
        state.changes_seen = self._changes
        if before is None or before == state.version_sent:
            return False
        self._changes += 1
        state.changes_seen = self._changes
        return True

    def _refuse(self, error: ProtocolError | PermissionDenied) -> None:
        if isinstance(error, PermissionDenied):
            self.denied = str(error)
        else:
            self._reject(str(error))

    def _reject(self, reason: str) -> None:
        self.error = reason
        self._observer.on_invalid(self.record, reason)

    def _retry(self, state: StreamTypeState) -> None:
        """Send a NACKed type again although its version did not change: something else in the node's
        configuration did, which may be what the client lacked (a listener NACKed for a cluster it rejected)."""
        state.must_answer = True
        self._observer.on_retry(self.record, state.type_url, state.version_sent)

    def _finish(self) -> None:
        # Drop what the stream holds now instead of at the next cyclic collection (the stream, its task,
        # its watch and the gRPC call refer to each other, and `serve` makes full collections rare).
        self._inbox, self._states, self._ordered = [], {}, []
        self._make_room()
        if self._watch is None:
            return
        self._watch.close()
        self._watch = None
        self._registry.remove(self.record.stream_id)
        self._observer.on_close(self.record)


def _awaits_retry(state: StreamTypeState) -> bool:
    """The client rejected what it was sent last of this type: its latest response is NACKed, or (Delta) a
    refused version is still the latest sent (a later response of other resources was ACKed)."""
    return state.nacked or state.still_refused


def _size_of(request: object) -> int:
    byte_size = getattr(request, "ByteSize", None)
    return int(byte_size()) if byte_size is not None else 0

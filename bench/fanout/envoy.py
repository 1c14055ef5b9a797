"""A simulated Envoy on ADS, independent of the transport that carries it: what it sends in answer to what, what it
holds and since when, and how it retries.

Each stream acts as Envoy does: the first request carries the node and subscribes to CDS (wildcard); LDS (wildcard)
is requested once the first CDS response arrived; every response is ACKed at once (SotW: version_info +
response_nonce; Delta: response_nonce). A stream that fails is retried with Envoy's jittered exponential backoff
(from 0.5 s, doubling up to 30 s, reset once a stream got a response). A retried stream asks afresh (no
version_info, no initial_resource_versions): the server sends everything again, the most a reconnect can cost it.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bench.fanout.messages import Goal
from bench.fanout.policy import CDS, LDS, TYPES

# Envoy's ADS reconnect policy (GrpcStream): jittered exponential backoff from 500 ms up to 30 s.
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0
MAX_ATTEMPTS = 20


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


class Tally:
    """Counts kept up to date by the streams of one client process, so a progress poll costs O(1), not O(N)."""

    __slots__ = ("failures", "gave_up", "holding", "initial", "move_port", "moved", "targets")

    def __init__(self) -> None:
        self.initial = 0  # streams holding a version of every type
        self.targets: dict[str, str] | None = None
        self.holding = 0  # streams holding `targets`
        self.move_port: int | None = None
        self.moved = 0  # streams that received every type on a stream to `move_port`
        self.failures = 0
        self.gave_up = 0

    def done(self, goal: Goal, streams: list[Held]) -> int:
        if goal.port is not None:
            self.move_port = goal.port
            return self.moved
        if goal.targets is None:
            return self.initial
        if goal.targets != self.targets:
            self.targets = goal.targets
            self.holding = 0
            for stream in streams:
                stream.counted = stream.holds(goal.targets)
                self.holding += stream.counted
        return self.holding


class Held:
    """What one simulated Envoy holds: version per type and when it got it (after ACKing)."""

    __slots__ = ("at", "counted", "error", "initial_at", "moved_at", "on_attempt", "tally", "versions")

    def __init__(self, tally: Tally) -> None:
        self.tally = tally
        self.versions: dict[str, str] = {}
        self.at: dict[str, float] = {}
        self.initial_at: float | None = None
        self.counted = False  # counted in `tally.holding`
        self.on_attempt: set[str] = set()  # types received on the current stream attempt to `tally.move_port`
        self.moved_at: float | None = None
        self.error: str | None = None  # why the latest attempt failed

    def got(self, type_url: str, version: str, port: int) -> None:
        now = time.monotonic()
        tally = self.tally
        if port == tally.move_port and self.moved_at is None:
            self.on_attempt.add(type_url)
            if len(self.on_attempt) == len(TYPES):
                self.moved_at = now
                tally.moved += 1
        if self.versions.get(type_url) == version:
            return
        self.versions[type_url] = version
        self.at[type_url] = now
        if self.initial_at is None and len(self.versions) == len(TYPES):
            self.initial_at = now
            tally.initial += 1
        if tally.targets is not None and not self.counted and self.holds(tally.targets):
            self.counted = True
            tally.holding += 1

    def holds(self, targets: dict[str, str]) -> bool:
        versions = self.versions
        return all(versions.get(type_url) == version for type_url, version in targets.items())

    def time_of(self, goal: Goal) -> float | None:
        """When this stream reached `goal`, or None."""
        if goal.port is not None:
            return self.moved_at
        if goal.targets is None:
            return self.initial_at
        if not self.holds(goal.targets):
            return None
        return max(self.at[type_url] for type_url in goal.targets)


class Dialect:
    """The requests of one ADS flavour, built with the xds-protos messages and serialized to bytes."""

    def __init__(self, protocol: str) -> None:
        from envoy.config.core.v3.base_pb2 import Node
        from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest

        self._node = Node
        self.sotw = protocol == "sotw"
        self.method = "StreamAggregatedResources" if self.sotw else "DeltaAggregatedResources"
        self._request: Any = DiscoveryRequest if self.sotw else DeltaDiscoveryRequest
        self.listeners = bytes(self._request(type_url=LDS).SerializeToString())

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


class Envoy:
    """One simulated Envoy's side of the protocol."""

    __slots__ = ("dialect", "held", "listeners_requested", "node_id", "opening")

    def __init__(self, dialect: Dialect, node_id: str, held: Held) -> None:
        self.dialect = dialect
        self.node_id = node_id
        self.held = held
        self.listeners_requested = False  # also: this attempt got a response
        self.opening: asyncio.Semaphore | None = None  # held while this stream waits for its first response

    def start(self) -> bytes:
        """A new stream (first or retried): the first request."""
        self.listeners_requested = False
        self.held.on_attempt.clear()
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


async def keep_up(
    envoy: Envoy, attempt: Callable[[Envoy], Awaitable[str]], opening: asyncio.Semaphore, tally: Tally
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
        if envoy.listeners_requested:  # the stream had worked: Envoy resets its backoff
            backoff = RETRY_BASE_SECONDS
        await asyncio.sleep(random.uniform(0, backoff))
        backoff = min(2 * backoff, RETRY_MAX_SECONDS)
    tally.gave_up += 1

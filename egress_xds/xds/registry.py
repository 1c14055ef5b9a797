"""What every connected stream holds: the record behind CSDS, the admin API and the NACK log.

The server writes these records; other code only reads them. Records are plain mutable dataclasses updated in
place by the stream that owns them, so reading is free and always current (all on the event loop thread).
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field

from egress_xds.policy.node import Node


class Protocol(enum.Enum):
    """Which ADS variant a stream speaks."""

    SOTW = "sotw"
    DELTA = "delta"


@dataclass
class TypeStatus:
    """One resource type on one stream.

    `version_sent` / `version_acked` are versions of the set of that type the stream should hold (for Delta, the
    `system_version_info` of the response). Times are `time.time()` seconds; `last_update_time` is when the
    last response of this type was sent.
    """

    type_url: str
    version_sent: str = ""
    version_acked: str = ""
    nonce: str = ""
    ack_time: float | None = None
    nack_message: str | None = None
    nack_time: float | None = None
    nack_version: str | None = None
    last_update_time: float | None = None
    resource_names: frozenset[str] = frozenset()
    wildcard: bool = False

    @property
    def nacked(self) -> bool:
        """True while the latest response of this type was rejected and nothing newer was accepted."""
        return self.nack_version is not None and self.nack_version == self.version_sent


@dataclass
class StreamRecord:
    """One ADS stream: who is connected, from where, with which protocol, and what it ACKed or NACKed."""

    stream_id: int
    protocol: Protocol
    peer: str
    node: Node
    group: Hashable | None = None
    connected_at: float = field(default_factory=time.time)
    types: dict[str, TypeStatus] = field(default_factory=dict)

    @property
    def node_id(self) -> str:
        return self.node.id

    def type_status(self, type_url: str) -> TypeStatus:
        """The status of a type, created on first use."""
        status = self.types.get(type_url)
        if status is None:
            status = self.types[type_url] = TypeStatus(type_url)
        return status


class StreamRegistry:
    """The records of all connected streams, by stream id."""

    def __init__(self) -> None:
        self._records: dict[int, StreamRecord] = {}
        self._ids = itertools.count(1)

    def new_stream_id(self) -> int:
        return next(self._ids)

    def add(self, record: StreamRecord) -> None:
        self._records[record.stream_id] = record

    def remove(self, stream_id: int) -> None:
        self._records.pop(stream_id, None)

    def get(self, stream_id: int) -> StreamRecord | None:
        return self._records.get(stream_id)

    def streams(self) -> list[StreamRecord]:
        """All current records (a new list; the records themselves are live)."""
        return list(self._records.values())

    def for_node(self, node_id: str) -> list[StreamRecord]:
        return [record for record in self._records.values() if record.node.id == node_id]

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[StreamRecord]:
        return iter(list(self._records.values()))

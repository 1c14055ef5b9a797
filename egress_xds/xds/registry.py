"""What every connected stream holds: the record behind CSDS, the admin API and the NACK log.

The server writes these records; other code only reads them. Records are plain mutable dataclasses updated in
place by the stream that owns them (a type's record *is* the stream's state of that type), so reading is free and
always current (all on the event loop thread).
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING

from egress_xds.policy.node import Node
from egress_xds.xds.subscription import Subscription

if TYPE_CHECKING:
    from egress_xds.xds.snapshot import PreparedResource

ResourcesByName = Mapping[str, "PreparedResource"]
NO_RESOURCES: ResourcesByName = MappingProxyType({})
NO_VERSIONS: Mapping[str, str] = MappingProxyType({})


class AdsVariant(enum.Enum):
    """Which ADS variant a stream speaks."""

    SOTW = "sotw"
    DELTA = "delta"


@dataclass(eq=False, slots=True)
class TypeRecord:
    """One resource type on one stream, as the admin side reads it: the stream's own state of that type (a
    `state.StreamTypeState` is a TypeRecord with the protocol's bookkeeping added), never a copy of it.

    `version_sent` / `version_acked` are versions of the set of that type the stream should hold (for Delta, the
    `system_version_info` of the response). Times are `time.time()` seconds; `last_update_time` is when the
    last response of this type was sent.

    `sent`, `acked` and `rejected` are the resources the client holds once it applies the latest response, held
    at its latest ACK, and was offered in the response it NACKed last: the admin API diffs them against what the
    node should have. They are references to the stream's own never-mutated mappings, so they cost nothing.

    `refused` (Delta only) maps resource names to versions the client rejected and that were not sent again: a
    Delta response after a NACK carries only what changed since, so an ACK of it does not mean the client holds
    the rejected resources, and `acked` / `version_acked` leave them out.
    """

    type_url: str
    version_sent: str = ""
    version_acked: str = ""
    nonce: str = ""
    ack_time: float | None = None
    nack_message: str | None = None
    nack_time: float | None = None
    nack_version: str | None = None
    nack_nonce: str | None = None
    last_update_time: float | None = None
    subscription: Subscription = field(default_factory=Subscription)
    sent: ResourcesByName = field(default_factory=lambda: NO_RESOURCES)
    acked: ResourcesByName = field(default_factory=lambda: NO_RESOURCES)
    rejected: ResourcesByName = field(default_factory=lambda: NO_RESOURCES)
    refused: Mapping[str, str] = field(default_factory=lambda: NO_VERSIONS)

    @property
    def resource_names(self) -> frozenset[str]:
        """The names the client subscribes to explicitly."""
        return self.subscription.names

    @property
    def wildcard(self) -> bool:
        """The client subscribes to every resource of the type."""
        return self.subscription.wildcard

    @property
    def nacked(self) -> bool:
        """True while the latest response of this type is the one the client rejected (a response sent after the
        NACK, even of the same version, is answered afresh: see the retry rule in `stream`)."""
        return self.nack_nonce is not None and self.nack_nonce == self.nonce

    @property
    def still_refused(self) -> bool:
        """True while a resource version the client rejected is still the latest one sent (Delta)."""
        return any(
            (resource := self.sent.get(name)) is not None and resource.version == version
            for name, version in self.refused.items()
        )


@dataclass(slots=True)
class StreamRecord:
    """One ADS stream: who is connected, from where, with which protocol, and what it ACKed or NACKed.

    `node_message` is the serialized `envoy.config.core.v3.Node` the client sent, trimmed to who it is (id,
    cluster, metadata, locality, user agent): CSDS hands it back as is, and Envoy's long extension list is not
    worth keeping per stream.
    """

    stream_id: int
    protocol: AdsVariant
    peer: str
    node: Node
    group: Hashable | None = None
    connected_at: float = field(default_factory=time.time)
    types: dict[str, TypeRecord] = field(default_factory=dict)
    node_message: bytes = b""

    @property
    def node_id(self) -> str:
        return self.node.id


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

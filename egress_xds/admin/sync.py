"""Is a stream in sync, per resource type and per resource? The one set of rules behind CSDS, the admin API and
`egress-xds status`.

A type on a stream is, checked in this order:

- NOT SENT: no response of this type went out on this stream yet (also while the node's policy has no snapshot).
- NACK: Envoy rejected the latest response of this type, or (Delta) a resource version it rejected is still the
  latest sent; it keeps running what it ACKed before, and the server does not send that version again (CSDS:
  ERROR). Per resource: Envoy applies listeners and clusters one by one, so those of the NACKed response that its
  message does not name are shown as held at their new version (`applied_despite_nack`).
- STALE: the latest response is waiting for its ACK, or the ACKed set is not what the node should have now
  (e.g. a cluster kept for make-before-break until Envoy ACKs the listeners that no longer use it).
- SYNCED: the latest response was ACKed and it is exactly what the node should have now.

"What the node should have now" (`expected`) is its group's current snapshot, filtered by what the stream
subscribed to. Versions are content hashes, so comparing versions compares contents.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass

from egress_xds.policy.node import MODE_METADATA_KEY, PolicyGroup
from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL, ads_sort_key
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import StreamRecord, TypeRecord
from egress_xds.xds.snapshot import PreparedResource, ResourceSet, Snapshot


class SyncStatus(enum.Enum):
    """The value is what `egress-xds status` prints."""

    SYNCED = "SYNCED"
    NOT_SENT = "NOT SENT"
    STALE = "STALE"
    NACKED = "NACK"


@dataclass(frozen=True)
class TypeComparison:
    """One type on one stream: its state, since when (`time.time()`), and what the node should have."""

    status: TypeRecord
    state: SyncStatus
    since: float
    expected: ResourceSet | None  # None while the node waits for a snapshot

    @property
    def type_url(self) -> str:
        return self.status.type_url


class ResourceState(enum.Enum):
    """One resource on one stream (CSDS `client_status` in the comments)."""

    SYNCED = "synced"  # the node ACKed the version it should have (ACKED)
    PENDING = "pending"  # sent or to be sent, not ACKed yet (REQUESTED)
    REJECTED = "rejected"  # changed by the response the node NACKed (NACKED)
    EXTRA = "extra"  # the node holds it but should not any more (ACKED, config STALE)
    ABSENT = "absent"  # subscribed by name, and no such resource exists (DOES_NOT_EXIST)


@dataclass(frozen=True)
class ResourceSync:
    """One resource: the version the node ACKed, the version sent last and the version it should have ("" = none)."""

    name: str
    acked: PreparedResource | None
    sent: PreparedResource | None
    expected: PreparedResource | None
    rejected: PreparedResource | None  # the version in the NACKed response, while that NACK is current
    state: ResourceState

    @staticmethod
    def version(resource: PreparedResource | None) -> str:
        return resource.version if resource is not None else ""


def snapshot_of(cache: SnapshotCache, record: StreamRecord) -> Snapshot | None:
    return cache.snapshot_for_group(record.group)


def expected_set(snapshot: Snapshot | None, status: TypeRecord) -> ResourceSet | None:
    """The resources of the status' type the stream should hold per its subscription (no make-before-break)."""
    if snapshot is None:
        return None
    available = snapshot.resources(status.type_url)
    if status.wildcard:
        return available
    selected = {name: available.resources[name] for name in status.resource_names if name in available}
    if len(selected) == len(available):
        return available
    return ResourceSet(status.type_url, selected)


def type_sync(record: StreamRecord, status: TypeRecord, snapshot: Snapshot | None) -> TypeComparison:
    """Apply the rules of the module docstring to one type of one stream."""
    expected = expected_set(snapshot, status)
    if status.last_update_time is None:
        return TypeComparison(status, SyncStatus.NOT_SENT, record.connected_at, expected)
    if status.nacked or status.still_refused:
        return TypeComparison(status, SyncStatus.NACKED, status.nack_time or status.last_update_time, expected)
    if status.version_acked != status.version_sent or status.ack_time is None:
        return TypeComparison(status, SyncStatus.STALE, status.last_update_time, expected)
    if expected is not None and expected.version != status.version_acked:
        return TypeComparison(status, SyncStatus.STALE, max(status.ack_time, status.last_update_time), expected)
    return TypeComparison(status, SyncStatus.SYNCED, status.ack_time, expected)


def stream_sync(record: StreamRecord, cache: SnapshotCache) -> list[TypeComparison]:
    """Every type the stream asked for, in ADS order."""
    snapshot = snapshot_of(cache, record)
    types = sorted(record.types.values(), key=lambda status: ads_sort_key(status.type_url))
    return [type_sync(record, status, snapshot) for status in types]


def resource_syncs(sync: TypeComparison) -> Iterator[ResourceSync]:
    """Per resource, in name order: every name the node holds, was sent, should have, or asked for."""
    status = sync.status
    expected: Mapping[str, PreparedResource] = sync.expected.resources if sync.expected is not None else {}
    names = set(status.acked) | set(status.sent) | set(expected)
    if not status.wildcard:
        names |= status.resource_names
    rejected = _rejected(sync)
    applied = applied_despite_nack(sync, rejected)
    for name in sorted(names):
        acked = applied.get(name) or status.acked.get(name)
        sent = status.sent.get(name)
        wanted = expected.get(name)
        offered = None if name in applied else rejected.get(name)
        yield ResourceSync(name, acked, sent, wanted, offered, _resource_state(acked, wanted, offered, sync))


def _rejected(sync: TypeComparison) -> Mapping[str, PreparedResource]:
    """The versions the node rejected, by name, while that rejection is current: Delta, exactly those refused and
    not sent again; SotW, those the NACKed response changed."""
    status = sync.status
    if sync.state is not SyncStatus.NACKED:
        return {}
    if status.refused:
        return {name: item for name, item in status.rejected.items() if status.refused.get(name) == item.version}
    return {
        name: item
        for name, item in status.rejected.items()
        if (held := status.acked.get(name)) is None or held.version != item.version
    }


# Envoy applies listeners and clusters one by one: a NACK of a response that names some of them (Envoy's
# "Error adding/updating listener(s) NAME: ...") leaves the others of that response applied.
_APPLIED_ONE_BY_ONE = frozenset({LISTENER_TYPE_URL, CLUSTER_TYPE_URL})


def applied_despite_nack(
    sync: TypeComparison, rejected: Mapping[str, PreparedResource]
) -> Mapping[str, PreparedResource]:
    """Of the `rejected` versions of a listener or cluster response, those the NACK message does not name: Envoy
    applied them. Nothing when the message names none of them (the whole response was refused, e.g. a proto
    validation error), so a vague message never makes a resource look held."""
    message = sync.status.nack_message
    if sync.status.type_url not in _APPLIED_ONE_BY_ONE or not message:
        return {}
    named = {name for name in rejected if _names(message, name)}
    if not named:
        return {}
    return {name: resource for name, resource in rejected.items() if name not in named}


def _names(message: str, name: str) -> bool:
    """`name` appears in `message` as a whole name (`web` is not named by `web2: cannot bind`)."""
    return re.search(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])", message) is not None


def _resource_state(
    acked: PreparedResource | None,
    expected: PreparedResource | None,
    rejected: PreparedResource | None,
    sync: TypeComparison,
) -> ResourceState:
    if rejected is not None:
        return ResourceState.REJECTED
    if expected is None:
        if acked is not None:
            return ResourceState.EXTRA
        return ResourceState.ABSENT if sync.expected is not None else ResourceState.PENDING
    if acked is not None and acked.version == expected.version:
        return ResourceState.SYNCED
    return ResourceState.PENDING


def group_labels(group: Hashable | None, record: StreamRecord) -> tuple[str, str]:
    """(policy name, mode) of a stream's group. Groups made by `publish` are `PolicyGroup`s; other producers
    (tests, future sources) may use any key, shown as text. No group: no policy selects the node."""
    if isinstance(group, PolicyGroup):
        return group.policy, group.mode.value
    if group is None:  # an unknown mode gets no group: show what the node said, not the sidecar default
        return "", record.node.metadata.get(MODE_METADATA_KEY, "") if record.node.mode_error else record.node.mode.value
    return str(group), record.node.mode.value

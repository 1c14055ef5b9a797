"""Immutable, versioned sets of Envoy resources, packed and serialized once for every stream that uses them.

A snapshot belongs to a group of nodes (one effective policy), never to one node: thousands of streams send the
very same bytes. Everything protobuf has to do happens here, once per snapshot: each resource is packed into an
`Any`, serialized deterministically, wrapped as a SotW `resources` field and as a Delta `Resource` field. Streams
only concatenate these bytes (see `wire`), which is what lets one Python process feed thousands of Envoys.

Versions are content hashes, so an unchanged resource keeps its version across snapshots and Delta streams send
only what changed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from envoy.service.discovery.v3.discovery_pb2 import Resource
from google.protobuf.any_pb2 import Any
from google.protobuf.message import Message

from egress_xds.type_urls import LISTENER_TYPE_URL, type_url_of
from egress_xds.xds import wire
from egress_xds.xds.dependencies import clusters_used_by

if TYPE_CHECKING:
    from egress_xds.xds.responses import Response

_RESPONSE_RESOURCES_FIELD = 2  # DiscoveryResponse.resources and DeltaDiscoveryResponse.resources
_HASH_BYTES = 8  # 16 hex characters: versions stay short in logs and CSDS, collisions are out of reach


@dataclass(frozen=True, slots=True, eq=False)
class PreparedResource:
    """One resource, packed and serialized once.

    `sotw_field` and `delta_field` are complete encoded `resources` entries of DiscoveryResponse and
    DeltaDiscoveryResponse; a response is their concatenation plus a few envelope fields.
    `uses_clusters` names the clusters a listener sends traffic to (empty for other types): make-before-break
    keeps those clusters while a stream may still hold the listener.
    """

    type_url: str
    name: str
    version: str
    packed: Any
    sotw_field: bytes
    delta_field: bytes
    uses_clusters: frozenset[str] = frozenset()


def content_hash(data: bytes) -> str:
    """A short, stable hash of bytes."""
    return hashlib.blake2b(data, digest_size=_HASH_BYTES).hexdigest()


def set_version(resources: Iterable[PreparedResource]) -> str:
    """Version of a set of resources: a hash of its sorted (name, version) pairs."""
    digest = hashlib.blake2b(digest_size=_HASH_BYTES)
    for resource in sorted(resources, key=lambda item: item.name):
        digest.update(resource.name.encode())
        digest.update(b"\0")
        digest.update(resource.version.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def pack_resource(
    type_url: str, name: str, message: Message, uses_clusters: frozenset[str] = frozenset()
) -> PreparedResource:
    """Pack and serialize one resource. The only place that serializes resources; tests count its calls."""
    check_resource(type_url, name, message)
    packed = Any(type_url=type_url, value=message.SerializeToString(deterministic=True))
    any_bytes = packed.SerializeToString(deterministic=True)
    version = content_hash(any_bytes)
    resource = Resource(name=name, version=version, resource=packed)
    return PreparedResource(
        type_url=type_url,
        name=name,
        version=version,
        packed=packed,
        sotw_field=wire.length_delimited(_RESPONSE_RESOURCES_FIELD, any_bytes),
        delta_field=wire.length_delimited(_RESPONSE_RESOURCES_FIELD, resource.SerializeToString(deterministic=True)),
        uses_clusters=uses_clusters,
    )


def check_resource(type_url: str, name: str, message: Message) -> None:
    """Refuse a resource filed under the wrong type URL or a name other than its own."""
    if type_url != type_url_of(message):
        raise ValueError(f"resource {name!r} is a {message.DESCRIPTOR.full_name}, not {type_url}")
    own_name = getattr(message, "name", name) if "name" in message.DESCRIPTOR.fields_by_name else name
    if own_name and own_name != name:
        raise ValueError(f"resource keyed {name!r} is named {own_name!r}: Envoy would see two different names")


class ResourceSet:
    """Resources of one type by name, with the version of the whole set and, built on first use, its SotW body.

    A snapshot holds one per type; a stream that needs a subset (named subscriptions) or a superset (clusters kept
    for make-before-break) builds its own from the same `PreparedResource` objects, without protobuf work.
    `shared_responses` holds the responses assembled from the set for every stream that needs them (`responses`).
    """

    __slots__ = ("_body", "_uses", "resources", "shared_responses", "type_url", "version")

    def __init__(self, type_url: str, resources: Mapping[str, PreparedResource]) -> None:
        self.type_url = type_url
        self.resources: Mapping[str, PreparedResource] = resources
        self.version = set_version(resources.values())
        self._body: bytes | None = None
        self._uses: frozenset[str] | None = None
        self.shared_responses: dict[Hashable, Response] | None = None  # created on first use

    @property
    def sotw_body(self) -> bytes:
        """All `resources` fields of a DiscoveryResponse, in name order."""
        if self._body is None:
            self._body = b"".join(self.resources[name].sotw_field for name in sorted(self.resources))
        return self._body

    @property
    def uses_clusters(self) -> frozenset[str]:
        """The clusters any resource of the set uses (listeners only; empty for other types)."""
        if self._uses is None:
            self._uses = frozenset().union(*(resource.uses_clusters for resource in self.resources.values()))
        return self._uses

    def __len__(self) -> int:
        return len(self.resources)

    def __contains__(self, name: object) -> bool:
        return name in self.resources

    def __iter__(self) -> Iterator[str]:
        return iter(self.resources)

    def __repr__(self) -> str:
        return f"ResourceSet({self.type_url.rsplit('.', 1)[-1]}, {sorted(self.resources)}, version={self.version})"


class Snapshot:
    """An immutable set of resources for one group of nodes, built from `{type_url: {name: message}}`.

    `dependencies` maps a listener name to the cluster names it uses; without it they are read from the
    listeners' tcp_proxy and inline HTTP routes (see `dependencies.clusters_used_by`). Types with no resources
    are dropped: an empty type and an absent one mean the same to a stream.
    """

    __slots__ = ("_sets",)

    def __init__(
        self,
        resources: Mapping[str, Mapping[str, Message]],
        *,
        dependencies: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        sets: dict[str, ResourceSet] = {}
        for type_url in sorted(resources):
            by_name = resources[type_url]
            if not by_name:
                continue
            prepared: dict[str, PreparedResource] = {}
            for name in sorted(by_name):
                message = by_name[name]
                check_resource(type_url, name, message)
                uses = _uses_clusters(type_url, name, message, dependencies)
                prepared[name] = pack_resource(type_url, name, message, uses)
            sets[type_url] = ResourceSet(type_url, prepared)
        self._sets: Mapping[str, ResourceSet] = sets

    @classmethod
    def empty(cls) -> Snapshot:
        """A snapshot with no resources: a node given it has no listeners and no clusters."""
        return cls({})

    @property
    def type_urls(self) -> frozenset[str]:
        return frozenset(self._sets)

    @property
    def versions(self) -> Mapping[str, str]:
        """Version of each non-empty type."""
        return {type_url: resource_set.version for type_url, resource_set in self._sets.items()}

    def resources(self, type_url: str) -> ResourceSet:
        """The resources of one type; an empty set for a type the snapshot does not have."""
        resource_set = self._sets.get(type_url)
        return resource_set if resource_set is not None else ResourceSet(type_url, {})

    def version(self, type_url: str) -> str:
        return self.resources(type_url).version

    def same_as(self, other: Snapshot) -> bool:
        """True when both hold the same resources with the same dependencies (a new snapshot would change nothing)."""
        if self.versions != other.versions:
            return False
        mine = self.resources(LISTENER_TYPE_URL).resources
        theirs = other.resources(LISTENER_TYPE_URL).resources
        return all(mine[name].uses_clusters == theirs[name].uses_clusters for name in mine)

    def __repr__(self) -> str:
        counts = ", ".join(f"{url.rsplit('.', 1)[-1]}={len(s)}@{s.version}" for url, s in self._sets.items())
        return f"Snapshot({counts})"


def _uses_clusters(
    type_url: str, name: str, message: Message, dependencies: Mapping[str, Iterable[str]] | None
) -> frozenset[str]:
    if type_url != LISTENER_TYPE_URL:
        return frozenset()
    if dependencies is not None:
        return frozenset(dependencies.get(name, ()))
    return clusters_used_by(message)

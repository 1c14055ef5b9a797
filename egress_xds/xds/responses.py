"""Responses assembled once per content and written, as the very same bytes object, to every stream needing them.

After a change, the streams of one group need byte for byte the same response: the same set version and type
(SotW), or the same changed, removed and absent names of the same set (Delta, a "subscription shape"). Assembling
it per stream cost a join of the whole body (the LDS of the bench's policy is ~90 KB) and one such allocation per
stream while thousands of writes are in flight (bench/README.md, "Profile"). Here it is assembled once, cached on
the `ResourceSet` it was built from (so it lives exactly as long as the snapshot that holds the set), and shared.

Nonces. A response's nonce is the hex of a number taken from one process-wide sequence when the response is
assembled, so one nonce always names one content. The protocol needs more: on one stream and type, a nonce names
one response (a request answers the latest response only if it carries the latest nonce). So each stream type
remembers the sequence number of the last response it was sent (`StreamTypeState.sequence`), and is given the
shared response only if that response is newer; otherwise (the same shared response again after a resubscription
to an unchanged set, a retry after a NACK, a move back to a group whose snapshot did not change) it gets one of its
own, assembled with a fresh number. Sequence numbers sent on a stream type therefore strictly increase, and no
nonce is ever sent twice on it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from egress_xds.xds import control_plane, wire
from egress_xds.xds.snapshot import PreparedResource, ResourceSet

# DiscoveryResponse and DeltaDiscoveryResponse field numbers
_VERSION_INFO = 1  # DiscoveryResponse.version_info, DeltaDiscoveryResponse.system_version_info
_TYPE_URL = 4
_NONCE = 5
_REMOVED_RESOURCES = 6  # DeltaDiscoveryResponse.removed_resources

# Distinct Delta shapes kept per set: wildcard streams that were all up to date share one; streams with other
# histories (a reconnect that declared old versions, named subscriptions) may need others. Past this many, a
# response is assembled per stream, as before, so a fleet of odd histories cannot grow the cache.
MAX_SHARED_SHAPES = 8

_SOTW_KEY = "sotw"
_sequence = itertools.count(1)


@dataclass(frozen=True, slots=True)
class Response:
    """An encoded response and the sequence number its nonce is the hex of."""

    sequence: int
    nonce: str
    payload: bytes


def sotw_response(resources: ResourceSet, last_sequence: int) -> Response:
    """The SotW response carrying `resources`, for a stream type whose last response had `last_sequence`."""
    return _shared_or_own(resources, _SOTW_KEY, last_sequence, lambda nonce: _sotw_payload(resources, nonce))


def delta_response(
    resources: ResourceSet,
    changed: Sequence[PreparedResource],
    removed: Sequence[str],
    last_sequence: int,
) -> Response:
    """The Delta response of `resources` (its version) carrying `changed` and naming `removed` (sorted lists)."""
    key = (tuple(resource.name for resource in changed), tuple(removed))
    return _shared_or_own(
        resources, key, last_sequence, lambda nonce: _delta_payload(resources, changed, removed, nonce)
    )


def _shared_or_own(
    resources: ResourceSet, key: Hashable, last_sequence: int, assemble: Callable[[str], bytes]
) -> Response:
    shared = resources.shared_responses
    response = shared.get(key) if shared is not None else None
    if response is None:
        response = _assembled(assemble)
        if shared is None:
            shared = resources.shared_responses = {}
        if len(shared) < MAX_SHARED_SHAPES:
            shared[key] = response
    if response.sequence > last_sequence:
        return response
    return _assembled(assemble)  # this stream type was sent it already: one of its own, with a fresh nonce


def _assembled(assemble: Callable[[str], bytes]) -> Response:
    sequence = next(_sequence)
    nonce = format(sequence, "x")
    return Response(sequence, nonce, assemble(nonce))


def _sotw_payload(resources: ResourceSet, nonce: str) -> bytes:
    return b"".join(
        (
            wire.string_field(_VERSION_INFO, resources.version),
            resources.sotw_body,
            wire.string_field(_TYPE_URL, resources.type_url),
            wire.string_field(_NONCE, nonce),
            control_plane.SOTW_FIELD,
        )
    )


def _delta_payload(
    resources: ResourceSet, changed: Sequence[PreparedResource], removed: Sequence[str], nonce: str
) -> bytes:
    return b"".join(
        (
            wire.string_field(_VERSION_INFO, resources.version),
            *(resource.delta_field for resource in changed),
            wire.string_field(_TYPE_URL, resources.type_url),
            *(wire.string_field(_REMOVED_RESOURCES, name) for name in removed),
            wire.string_field(_NONCE, nonce),
            control_plane.DELTA_FIELD,
        )
    )

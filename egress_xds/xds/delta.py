"""Incremental (Delta) ADS: responses carry only changed resources and the names of removed ones.

Rules kept here (docs/architecture.md, "The xDS protocol rules the server keeps"):
- Per resource, the client's version is tracked (`StreamTypeState.known`): from `initial_resource_versions` on the
  first request of a type (a reconnecting Envoy that is up to date is sent nothing), then from what we send.
- A NACK records the error; the versions it rejected stay "known", so they are never sent again. A resource
  goes out again only when its version changes.
- A request with a stale nonce is not an ACK/NACK of the latest response, but its subscribe / unsubscribe lists
  are honoured.
- Every explicit subscribe is answered, even for a resource the client already holds (except names the first
  request declared in `initial_resource_versions`). A subscribed name that does not exist is reported once in
  `removed_resources`, and sent when it appears.
- Unsubscribing from `*` forgets the resources held only through it, so subscribing again re-sends them.

For the admin view, a NACK also notes which resource versions the client refused (everything sent since its
last ACK); later ACKs then leave those out of what the client holds until a new version of them is sent.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest

from egress_xds.type_urls import WILDCARD
from egress_xds.xds import responses
from egress_xds.xds.desired import desired_set
from egress_xds.xds.registry import AdsVariant
from egress_xds.xds.snapshot import PreparedResource, ResourceSet, Snapshot, set_version
from egress_xds.xds.state import StreamTypeState, forget, mark_acked, mark_sent
from egress_xds.xds.stream import AdsStream

# Responses of one type older than the latest whose NACK still counts: Envoy answers each response in order, so
# only a burst of changes faster than it answers builds up more than one or two.
MAX_UNANSWERED = 16

_UNKNOWN_VERSION = ""  # in `known`: the client may hold some version of the name (no real version is empty)


class DeltaStream(AdsStream[DeltaDiscoveryRequest]):
    """One `DeltaAggregatedResources` call."""

    protocol = AdsVariant.DELTA

    def _handle(self, request: DeltaDiscoveryRequest) -> None:
        self._start(request.node if request.HasField("node") else None)
        state, first = self._state(request.type_url)
        initial: Mapping[str, str] = {}
        if first:
            initial = dict(request.initial_resource_versions)
            state.known.update(initial)
            state.declared = initial
            state.subscription.start_delta(type_url=request.type_url, subscribe=request.resource_names_subscribe)
            # A fresh client waits for a first answer; a reconnecting one already holds its configuration.
            state.must_answer = not initial
        if request.response_nonce and request.response_nonce == state.nonce:
            state.unanswered.clear()
            if request.HasField("error_detail"):
                self._nacked(state, request.error_detail.message)
            else:
                self._acked(state)
        elif (earlier := state.unanswered.pop(request.response_nonce, None)) and request.HasField("error_detail"):
            self._nacked_earlier(state, *earlier, request.error_detail.message)
        if request.resource_names_unsubscribe:
            _unsubscribe(state, request.resource_names_unsubscribe, keep=request.resource_names_subscribe)
        if request.resource_names_subscribe:
            _subscribe(state, request.resource_names_subscribe, initial)

    def _changes_nothing_else(self, state: StreamTypeState, request: DeltaDiscoveryRequest) -> bool:
        return not request.resource_names_subscribe and not request.resource_names_unsubscribe and not state.declared

    def _acked(self, state: StreamTypeState) -> None:
        previous = state.acked
        super()._acked(state)
        if not state.refused:
            return
        state.refused = {
            name: version
            for name, version in state.refused.items()
            if (resource := state.sent.get(name)) is not None and resource.version == version
        }
        if state.refused:  # the client kept its previous version of what it refused (or nothing)
            acked = {name: item for name, item in state.sent.items() if name not in state.refused}
            kept = {name: previous[name] for name in state.refused if name in previous}
            acked.update(kept)
            state.acked = acked
            state.version_acked = set_version(acked.values())
            # Make-before-break: the clusters the kept versions use stay until the client takes the new ones.
            state.older_uses = {name: item.uses_clusters for name, item in kept.items() if item.uses_clusters}
            state.held_uses = state.held_uses.union(*state.older_uses.values())

    def _nacked(self, state: StreamTypeState, message: str) -> None:
        offered = {
            name: resource.version
            for name, resource in state.sent.items()
            if (held := state.acked.get(name)) is None or held.version != resource.version
        }
        state.refused = {**state.refused, **offered}
        super()._nacked(state, message)  # last: it may retry at once, which needs `refused`

    def _nacked_earlier(self, state: StreamTypeState, version: str, delivered: Mapping[str, str], message: str) -> None:
        """A NACK of a response older than the latest: what it delivered and was not replaced since is refused."""
        state.nack_message = message
        state.nack_time = time.time()
        state.nack_version = version
        refused = {
            name: item
            for name, item in delivered.items()
            if (resource := state.sent.get(name)) is not None and resource.version == item
        }
        state.refused = {**state.refused, **refused}
        self._report_nack(state, version, message)

    def _retry(self, state: StreamTypeState) -> None:
        """Forget which version the client has of what it refused, so that they are in the response again, or in
        `removed_resources` if they are gone meanwhile (Envoy may hold them: it applies resources one by one)."""
        super()._retry(state)
        for name, version in state.refused.items():
            if state.known.get(name) == version:
                state.known[name] = _UNKNOWN_VERSION

    def _respond(self, snapshot: Snapshot, state: StreamTypeState) -> bytes | None:
        desired = desired_set(snapshot, state, self._listeners())
        if state.declared:
            _adopt_declared(state, desired.resources)
        if not state.must_answer and desired.version == state.synced_version:
            return None
        known = state.known
        changed = sorted(
            (resource for name, resource in desired.resources.items() if known.get(name) != resource.version),
            key=lambda resource: resource.name,
        )
        removed = sorted(name for name in known if name not in desired.resources)
        absent = sorted(
            name
            for name in state.subscription.names
            if name not in desired.resources and name not in known and name not in state.reported_absent
        )
        if not (changed or removed or absent or state.must_answer):
            state.synced_version = desired.version
            return None
        # Streams with the same history get the same bytes (wildcard streams that were in sync: all of them).
        response = responses.delta_response(desired, changed, [*removed, *absent], state.sequence)
        _apply(state, desired, changed, removed, absent)
        self._sent(state, desired.version, response)
        state.unanswered[response.nonce] = (
            desired.version,
            {resource.name: resource.version for resource in changed},
        )
        while len(state.unanswered) > MAX_UNANSWERED + 1:  # + the latest
            del state.unanswered[next(iter(state.unanswered))]
        return response.payload


def _adopt_declared(state: StreamTypeState, desired: Mapping[str, PreparedResource]) -> None:
    """A (re)connecting client declared the versions it holds: those equal to what it should have are held and
    accepted (it got them from an earlier stream, or another replica), as if sent and ACKed on this stream."""
    declared, state.declared = state.declared, {}
    held = {name: resource for name, resource in desired.items() if declared.get(name) == resource.version}
    if not held:
        return
    mark_sent(state, {**state.sent, **held}, held.values())
    mark_acked(state)
    state.acked = state.sent
    state.version_sent = state.version_acked = set_version(state.sent.values())
    state.last_update_time = state.ack_time = time.time()


def _subscribe(state: StreamTypeState, names: Iterable[str], initial: Mapping[str, str]) -> None:
    for name in state.subscription.subscribe(names):
        if name in initial:
            continue  # declared held on (re)connect: sent only if its version differs
        state.must_answer = True
        if name != WILDCARD:
            state.known.pop(name, None)
            if name in state.reported_absent:
                state.reported_absent -= {name}


def _unsubscribe(state: StreamTypeState, unsubscribed: Iterable[str], keep: Iterable[str]) -> None:
    """`keep`: the names the same request subscribes to, which the client keeps when it drops `*`."""
    names = list(unsubscribed)
    subscription = state.subscription
    subscription.unsubscribe(names)
    kept = set(keep)
    dropped: set[str] = set()
    for name in names:
        if name == WILDCARD:
            dropped.update(held for held in state.known if held not in subscription.names and held not in kept)
        else:
            # Still covered by a wildcard: the client dropped it anyway and expects it again.
            dropped.add(name)
            if name in state.reported_absent:
                state.reported_absent -= {name}
    if dropped:
        for name in dropped:
            state.known.pop(name, None)
        forget(state, dropped)
        state.synced_version = None


def _apply(
    state: StreamTypeState,
    desired: ResourceSet,
    changed: list[PreparedResource],
    removed: list[str],
    absent: list[str],
) -> None:
    """Record a response as sent: the client's versions, our view of what it holds, the names reported absent.
    A client brought exactly to the desired set is recorded as holding that set's own mapping, shared by every
    stream in sync instead of a copy each."""
    sent = dict(state.sent)
    for resource in changed:
        state.known[resource.name] = resource.version
        sent[resource.name] = resource
    for name in removed:
        del state.known[name]
        sent.pop(name, None)
    removed_subscribed = [name for name in removed if name in state.subscription.names]
    if absent or removed_subscribed:
        state.reported_absent = state.reported_absent.union(absent, removed_subscribed)
    if state.refused:  # what is sent again is no longer "refused and not sent again"
        again = {resource.name for resource in changed}
        state.refused = {name: version for name, version in state.refused.items() if name not in again}
    wanted = desired.resources
    if len(sent) == len(wanted) and all(wanted.get(name) is resource for name, resource in sent.items()):
        mark_sent(state, wanted, changed, desired.uses_clusters)
    else:
        mark_sent(state, sent, changed)

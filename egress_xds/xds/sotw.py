"""State-of-the-World ADS: every response carries the full set of its type the stream subscribes to.

Rules kept here (docs/architecture.md, "The xDS protocol rules the server keeps"):
- A request whose `response_nonce` is not the latest sent for its type is ignored entirely: it answers a
  response the client has not caught up with, so its names and its ACK/NACK are outdated.
- ACK and NACK are read from the nonce and `error_detail`; a request without `error_detail` is an ACK only if its
  `version_info` is that response's (after a NACK, Envoy's next request repeats the nonce with its old version).
  A NACK records the error and changes nothing else: the desired version it rejected is never sent again on this
  stream; the next response goes out when the desired set changes (new snapshot, regrouping, subscription change).
- A first request (empty nonce, or a nonce from an earlier stream: nothing of its type was sent on this one) and
  any newly subscribed name are always answered, even with an unchanged set.
"""

from __future__ import annotations

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryRequest

from egress_xds.xds import responses
from egress_xds.xds.desired import desired_set
from egress_xds.xds.registry import AdsVariant
from egress_xds.xds.snapshot import Snapshot
from egress_xds.xds.state import StreamTypeState, mark_sent
from egress_xds.xds.stream import AdsStream


class SotwStream(AdsStream[DiscoveryRequest]):
    """One `StreamAggregatedResources` call."""

    protocol = AdsVariant.SOTW

    def _handle(self, request: DiscoveryRequest) -> None:
        self._start(request.node if request.HasField("node") else None)
        state, first = self._state(request.type_url)
        if request.response_nonce and state.nonce:
            if request.response_nonce != state.nonce:
                return
            if request.HasField("error_detail"):
                self._nacked(state, request.error_detail.message)
            elif request.version_info == state.version_sent:
                self._acked(state)
            # else: a later request about a NACKed response (Envoy repeats its nonce with the old version): no ACK
        else:
            state.must_answer = True
        if state.subscription.replace(request.resource_names, type_url=request.type_url, first=first):
            state.must_answer = True

    def _changes_nothing_else(self, state: StreamTypeState, request: DiscoveryRequest) -> bool:
        return request.version_info == state.version_sent and state.subscription.unchanged_by(request.resource_names)

    def _respond(self, snapshot: Snapshot, state: StreamTypeState) -> bytes | None:
        desired = desired_set(snapshot, state, self._listeners())
        if not state.must_answer and desired.version == state.synced_version:
            return None
        response = responses.sotw_response(desired, state.sequence)  # the same bytes for every stream in sync
        mark_sent(state, desired.resources, desired.resources.values(), desired.uses_clusters)
        self._sent(state, desired.version, response)
        return response.payload

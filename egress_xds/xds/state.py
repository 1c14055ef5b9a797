"""Per stream, per type: what was asked, what was sent, what was acknowledged."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from egress_xds.xds.registry import NO_RESOURCES, TypeRecord
from egress_xds.xds.snapshot import PreparedResource


@dataclass(eq=False, slots=True)
class StreamTypeState(TypeRecord):
    """The protocol state of one type on one stream: its `TypeRecord` (what the admin side reads: versions,
    nonce, `sent`, ACK and NACK) and the bookkeeping only the protocol needs. One object, written once per event.

    `sent` is what the client holds once it applies our latest response: for SotW the resources of that
    response, for Delta the accumulated view. It is replaced, never mutated.

    `held` and `held_uses` are what the client *may* hold: `held` is the latest version of each name it has not
    been told to remove (a name a later response removed is gone: Envoy applies responses in order, so it is
    gone before any later CDS arrives); `held_uses` the clusters used by any version of those names sent since
    the latest ACK (`older_uses`: a NACKed version, or one Envoy applied in part: it applies listeners and
    clusters one by one, so it may still run the previous one). Make-before-break relies on these; an ACK of the
    latest response resets them to `sent`.

    `synced_version` is the version of the desired set the stream was last brought to; the same desired version
    is never sent twice, which is what keeps a NACKed config from being re-sent.

    `change_time` (`time.monotonic()`) is when a configuration change first reached this stream and is not yet
    ACKed: the ACK of the response carrying it observes the convergence time.
    """

    requests: int = 0
    sequence: int = 0  # of the latest response sent (`responses`): a shared response older than it is not reused
    must_answer: bool = False
    synced_version: str | None = None
    held: Mapping[str, PreparedResource] = field(default_factory=lambda: NO_RESOURCES)
    held_uses: frozenset[str] = frozenset()
    sent_uses: frozenset[str] = frozenset()  # the clusters used by `sent`, worked out once per response
    older_uses: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # Delta only: the version of each resource the client holds, and explicitly subscribed names already
    # reported as absent in `removed_resources`.
    known: dict[str, str] = field(default_factory=dict)
    reported_absent: frozenset[str] = frozenset()  # replaced, not mutated: no empty set per idle stream
    # Delta only: responses not answered yet, older than the latest (nonce -> system version and the versions it
    # delivered), so that Envoy's NACK of one of them counts (it answers every response, in order).
    unanswered: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    # Delta only, until the first response is worked out: `initial_resource_versions` of the first request.
    declared: dict[str, str] = field(default_factory=dict)
    change_time: float | None = None
    # The stream's count of changing responses when this type's latest response was sent: a NACK that arrives
    # after a later change (the fix crossed the NACK) is retried at once.
    changes_seen: int = 0


def uses_of(resources: Iterable[PreparedResource]) -> frozenset[str]:
    """Clusters used by any of the resources."""
    uses: set[str] = set()
    for resource in resources:
        uses.update(resource.uses_clusters)
    return frozenset(uses)


def mark_sent(
    state: StreamTypeState,
    sent: Mapping[str, PreparedResource],
    delivered: Iterable[PreparedResource],
    sent_uses: frozenset[str] | None = None,
) -> None:
    """Record the client's view after a response that delivered `delivered` (all of it, for SotW). `sent_uses`:
    the clusters `sent` uses, if known (a snapshot's set knows its own: see `ResourceSet.uses_clusters`)."""
    older = {name: uses for name, uses in state.older_uses.items() if name in sent} if state.older_uses else {}
    for resource in delivered:
        previous = state.held.get(resource.name)
        if previous is not None and not previous.uses_clusters <= resource.uses_clusters:
            older[resource.name] = older.get(resource.name, frozenset()) | previous.uses_clusters
    state.sent = state.held = sent
    state.sent_uses = uses_of(sent.values()) if sent_uses is None else sent_uses
    state.older_uses = older
    state.held_uses = state.sent_uses.union(*older.values()) if older else state.sent_uses


def forget(state: StreamTypeState, dropped: set[str]) -> None:
    """The client dropped these names itself (a Delta unsubscribe)."""
    mark_sent(state, {name: resource for name, resource in state.sent.items() if name not in dropped}, ())


def mark_acked(state: StreamTypeState) -> None:
    """The latest response was applied: the client holds exactly `sent`."""
    state.held = state.sent
    state.older_uses = {}
    state.held_uses = state.sent_uses

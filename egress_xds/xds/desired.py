"""What a stream should hold of one type right now, including make-before-break for clusters.

The xDS protocol asks a server to remove a cluster only after the listeners that used it are gone. A stream's
desired clusters are therefore the snapshot's clusters plus every cluster that a listener the client may still
hold points at: listeners of the latest ACKed LDS response and of every LDS response sent since (not yet ACKed,
or NACKed and partially applied). The sequence on a snapshot change that drops cluster A, used by listener L, is:

1. CDS: the new clusters, plus A (L is still held);
2. LDS: the new listeners (without L);
3. the client ACKs that LDS: no held listener uses A any more, so CDS goes out again without A.

A kept cluster is taken from the latest response the stream was sent (the old version), never rebuilt; a cluster
that response removed is not brought back for a listener that names it.
"""

from __future__ import annotations

from egress_xds.type_urls import CLUSTER_TYPE_URL
from egress_xds.xds.snapshot import PreparedResource, ResourceSet, Snapshot
from egress_xds.xds.state import StreamTypeState


def desired_set(snapshot: Snapshot, state: StreamTypeState, listeners: StreamTypeState | None) -> ResourceSet:
    """The resources of `state`'s type the stream subscribes to, plus clusters still needed by held listeners.

    When that is exactly the snapshot's set, the snapshot's own `ResourceSet` (prebuilt version and body) is
    returned, so a wildcard stream does no per-resource work at all.
    """
    available = snapshot.resources(state.type_url)
    kept = clusters_still_needed(listeners, state, available) if state.type_url == CLUSTER_TYPE_URL else {}
    subscription = state.subscription
    if subscription.wildcard and not kept:
        return available
    selected: dict[str, PreparedResource] = {}
    if subscription.wildcard:
        selected.update(available.resources)
    else:
        for name in subscription.names:
            resource = available.resources.get(name)
            if resource is not None:
                selected[name] = resource
    for name, resource in kept.items():
        if subscription.covers(name):
            selected.setdefault(name, resource)
    if not kept and len(selected) == len(available):
        return available
    return ResourceSet(state.type_url, selected)


def clusters_still_needed(
    listeners: StreamTypeState | None, clusters: StreamTypeState, available: ResourceSet
) -> dict[str, PreparedResource]:
    """Clusters missing from the snapshot that a listener the client may still hold uses."""
    if listeners is None or not listeners.held_uses:
        return {}
    kept: dict[str, PreparedResource] = {}
    for name in listeners.held_uses:
        if name in available.resources:
            continue
        previous = clusters.sent.get(name)  # the latest response only: one it removed is gone from the client
        if previous is not None:
            kept[name] = previous
    return kept

"""The output of translation: Envoy resources, sorted by name so that serialization is deterministic."""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener

from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL


@dataclass(frozen=True)
class Resources:
    """Listeners and clusters for one (policy, node mode). Both tuples are sorted by resource name."""

    listeners: tuple[Listener, ...]
    clusters: tuple[Cluster, ...]

    @classmethod
    def of(cls, listeners: list[Listener], clusters: list[Cluster]) -> Resources:
        return cls(
            listeners=tuple(sorted(listeners, key=lambda resource: resource.name)),
            clusters=tuple(sorted(clusters, key=lambda resource: resource.name)),
        )

    def by_type_url(self) -> dict[str, dict[str, Listener | Cluster]]:
        """Resources keyed by xDS type URL, then by name."""
        return {
            LISTENER_TYPE_URL: {listener.name: listener for listener in self.listeners},
            CLUSTER_TYPE_URL: {cluster.name: cluster for cluster in self.clusters},
        }

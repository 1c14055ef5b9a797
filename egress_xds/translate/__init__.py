"""Pure, deterministic translation of a policy into Envoy listeners and clusters.

A node influences translation only through its mode (sidecar or standalone), so every node that gets the same
policy in the same mode shares one snapshot: the cache keys snapshots by (policy, mode), never by node.
"""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_pb2 import Listener

from egress_xds.policy.model import EgressPolicy
from egress_xds.policy.node import NodeMode
from egress_xds.translate import clusters
from egress_xds.translate.capture_listener import capture_listener
from egress_xds.translate.resources import Resources
from egress_xds.translate.standalone_listeners import explicit_listener, forward_proxy_listener

__all__ = ["Resources", "translate"]


def translate(policy: EgressPolicy, mode: NodeMode) -> Resources:
    listeners: list[Listener] = []
    cluster_list: list[Cluster] = [clusters.passthrough_cluster(), clusters.deny_cluster()]
    for proxy in policy.proxies.values():
        cluster_list.append(clusters.proxy_connect_cluster(proxy))
        cluster_list.append(clusters.proxy_http_cluster(proxy))
    if mode is NodeMode.SIDECAR:
        listeners.append(capture_listener(policy))
    else:
        for spec in policy.standalone.listeners:
            listener, direct_cluster = explicit_listener(policy, spec)
            listeners.append(listener)
            if direct_cluster is not None:
                cluster_list.append(direct_cluster)
        forward_proxy = forward_proxy_listener(policy)
        if forward_proxy is not None:
            listeners.append(forward_proxy)
    return Resources.of(listeners, cluster_list)

"""Standalone nodes: explicit listeners, no traffic capture.

- An explicit listener maps a local address to one external `host:port` (like Istio's "egress gateway as a proxy
  for external services"): whatever connects to it is tunnelled with `CONNECT host:port` through the proxy.
- The forward-proxy listener is an HTTP proxy applications can use as their HTTP_PROXY / HTTPS_PROXY. Envoy adds
  the corporate credentials, so applications never hold them.
"""

from __future__ import annotations

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import TrafficDirection
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener

from egress_xds.policy.model import Deny, Direct, EgressPolicy, ExplicitListener, ViaProxy
from egress_xds.translate import clusters, names
from egress_xds.translate.decisions import ordered_decisions
from egress_xds.translate.http_routes import connection_manager
from egress_xds.translate.tcp_proxy import cluster_filter, tunnel_filter


def explicit_listener(policy: EgressPolicy, spec: ExplicitListener) -> tuple[Listener, Cluster | None]:
    """The listener, and the direct cluster it needs when its target is reached without a proxy."""
    name = names.explicit_listener(spec.name)
    target = f"{_bracketed(spec.target_host)}:{spec.target_port}"
    direct_cluster = None
    network_filter: Filter
    if isinstance(spec.action, ViaProxy):
        network_filter = tunnel_filter(spec.action.proxy, target, name)
    elif isinstance(spec.action, Deny):
        network_filter = cluster_filter(names.DENY_CLUSTER, name, target)
    else:
        cluster_name = names.direct_target_cluster(spec.name)
        direct_cluster = clusters.direct_target_cluster(cluster_name, spec.target_host, spec.target_port)
        network_filter = cluster_filter(cluster_name, name, target)
    listener = _listener(name, spec.listen_host, spec.listen_port, FilterChain(name=name, filters=[network_filter]))
    return listener, direct_cluster


def forward_proxy_listener(policy: EgressPolicy) -> Listener | None:
    """Routes by the request's authority with the policy's proxy and deny rules (deny answers 403). `direct`
    destinations still go through the default proxy: going direct to a name would need Envoy's alpha dynamic
    forward proxy, and applications that use a proxy variable honour NO_PROXY themselves."""
    spec = policy.standalone.forward_proxy
    if spec is None:
        return None
    domain_decisions = [
        decision
        for decision in ordered_decisions(policy)
        if decision.rule.domains and not decision.untouched and not isinstance(decision.action, Direct)
    ]
    manager = connection_manager(
        policy,
        names.FORWARD_PROXY_LISTENER,
        domain_decisions,
        ViaProxy(spec.http_proxy),
        "default: httpProxy",
        connect_fallback=ViaProxy(spec.https_proxy),
    )
    chain = FilterChain(name=names.FORWARD_PROXY_LISTENER, filters=[manager])
    return _listener(names.FORWARD_PROXY_LISTENER, spec.listen_host, spec.listen_port, chain)


def _listener(name: str, host: str, port: int, chain: FilterChain) -> Listener:
    return Listener(
        name=name,
        address=Address(socket_address=SocketAddress(address=host, port_value=port)),
        traffic_direction=TrafficDirection.OUTBOUND,
        filter_chains=[chain],
    )


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host

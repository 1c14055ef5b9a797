"""Which clusters a listener sends traffic to, so that a cluster is never removed while a listener needs it.

Make-before-break (xDS protocol: "stale CDS clusters can be removed only after the listeners that used them are
gone") needs the listener -> cluster edges. They are read from the two filters this project generates:
`tcp_proxy` (`cluster`, `weighted_clusters`) and `http_connection_manager` with an inline `route_config`
(`route.cluster`, `route.weighted_clusters`). A route table fetched over RDS, or a cluster named by a header, is
not visible here; a producer that uses those passes `dependencies=` to `Snapshot` explicitly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import RouteAction
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from egress_xds.type_urls import type_url_of

_TCP_PROXY_TYPE_URL = type_url_of(TcpProxy)
_HCM_TYPE_URL = type_url_of(HttpConnectionManager)


def clusters_used_by(listener: Listener) -> frozenset[str]:
    """Names of the clusters the listener's tcp_proxy and inline HTTP routes point at."""
    return frozenset(_clusters_of_chains(_filter_chains(listener)))


def _filter_chains(listener: Listener) -> Iterator[FilterChain]:
    yield from listener.filter_chains
    if listener.HasField("default_filter_chain"):
        yield listener.default_filter_chain


def _clusters_of_chains(chains: Iterable[FilterChain]) -> Iterator[str]:
    for chain in chains:
        for network_filter in chain.filters:
            yield from _clusters_of_filter(network_filter)


def _clusters_of_filter(network_filter: Filter) -> Iterator[str]:
    config = network_filter.typed_config
    if config.type_url == _TCP_PROXY_TYPE_URL:
        tcp_proxy = TcpProxy()
        config.Unpack(tcp_proxy)
        if tcp_proxy.cluster:
            yield tcp_proxy.cluster
        yield from (weighted.name for weighted in tcp_proxy.weighted_clusters.clusters)
    elif config.type_url == _HCM_TYPE_URL:
        manager = HttpConnectionManager()
        config.Unpack(manager)
        for virtual_host in manager.route_config.virtual_hosts:
            for route in virtual_host.routes:
                if route.HasField("route"):
                    yield from _clusters_of_route_action(route.route)


def _clusters_of_route_action(action: RouteAction) -> Iterator[str]:
    if action.cluster:
        yield action.cluster
    yield from (weighted.name for weighted in action.weighted_clusters.clusters)

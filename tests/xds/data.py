"""Small hand-built Envoy resources for protocol tests."""

from __future__ import annotations

from collections.abc import Iterable

from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.endpoint.v3.endpoint_components_pb2 import Endpoint, LbEndpoint, LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from google.protobuf.any_pb2 import Any

from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL
from egress_xds.xds.snapshot import Snapshot


def cluster(name: str, port: int = 3128) -> Cluster:
    """A static cluster with one loopback endpoint; `port` makes different versions of the same name."""
    endpoint = LbEndpoint(endpoint=Endpoint(address=_address(port)))
    return Cluster(
        name=name,
        type=Cluster.STATIC,
        load_assignment=ClusterLoadAssignment(
            cluster_name=name, endpoints=[LocalityLbEndpoints(lb_endpoints=[endpoint])]
        ),
    )


def listener(name: str, cluster_name: str, port: int = 15001) -> Listener:
    """A listener whose tcp_proxy sends everything to `cluster_name`."""
    config = Any()
    config.Pack(TcpProxy(stat_prefix=name, cluster=cluster_name))
    tcp_proxy = Filter(name="envoy.filters.network.tcp_proxy", typed_config=config)
    return Listener(name=name, address=_address(port), filter_chains=[FilterChain(filters=[tcp_proxy])])


def snapshot(clusters: Iterable[Cluster] = (), listeners: Iterable[Listener] = ()) -> Snapshot:
    return Snapshot(
        {
            CLUSTER_TYPE_URL: {item.name: item for item in clusters},
            LISTENER_TYPE_URL: {item.name: item for item in listeners},
        }
    )


def _address(port: int) -> Address:
    return Address(socket_address=SocketAddress(address="127.0.0.1", port_value=port))

"""Snapshots: content-hash versions, wire-format pieces that parse as the real messages, dependencies."""

from __future__ import annotations

import pytest
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.listener.v3.listener_components_pb2 import Filter, FilterChain
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.config.route.v3.route_components_pb2 import (
    Route,
    RouteAction,
    RouteMatch,
    VirtualHost,
    WeightedCluster,
)
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse
from google.protobuf.any_pb2 import Any

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from egress_xds.xds import control_plane, wire
from egress_xds.xds.dependencies import clusters_used_by
from egress_xds.xds.snapshot import Snapshot
from tests.xds.data import cluster, listener, snapshot


def test_versions_are_content_hashes() -> None:
    one = snapshot([cluster("a"), cluster("b")])
    same = snapshot([cluster("b"), cluster("a")])
    changed = snapshot([cluster("a"), cluster("b", port=1)])
    assert one.versions == same.versions and one.same_as(same)
    assert one.version(CDS) != changed.version(CDS)
    assert one.resources(CDS).resources["a"].version == changed.resources(CDS).resources["a"].version
    assert one.resources(CDS).resources["b"].version != changed.resources(CDS).resources["b"].version


def test_empty_and_absent_types_are_the_same() -> None:
    assert Snapshot({CDS: {}}).versions == Snapshot.empty().versions == {}
    assert len(Snapshot.empty().resources(LDS)) == 0


def test_sotw_body_parses_as_the_real_discovery_response() -> None:
    clusters = [cluster("a"), cluster("b")]
    resource_set = snapshot(clusters).resources(CDS)
    payload = b"".join(
        (
            wire.string_field(1, resource_set.version),
            resource_set.sotw_body,
            wire.string_field(4, CDS),
            wire.string_field(5, "7"),
            control_plane.SOTW_FIELD,
        )
    )
    expected = DiscoveryResponse(version_info=resource_set.version, type_url=CDS, nonce="7")
    for item in clusters:
        expected.resources.add().Pack(item)
    expected.control_plane.identifier = control_plane.IDENTIFIER
    assert DiscoveryResponse.FromString(payload) == expected


def test_delta_field_parses_as_the_real_resource() -> None:
    prepared = snapshot([cluster("a")]).resources(CDS).resources["a"]
    parsed = DeltaDiscoveryResponse.FromString(prepared.delta_field).resources[0]
    unpacked = Cluster()
    parsed.resource.Unpack(unpacked)
    assert (parsed.name, parsed.version, unpacked) == ("a", prepared.version, cluster("a"))


def test_varint_encoding_of_long_fields() -> None:
    text = "x" * 70_000  # a three-byte length
    assert DiscoveryResponse.FromString(wire.string_field(1, text)).version_info == text


def test_listener_dependencies_are_read_from_tcp_proxy_and_http_routes() -> None:
    assert clusters_used_by(listener("l1", "tunnel")) == {"tunnel"}
    manager = HttpConnectionManager(
        stat_prefix="http",
        route_config=RouteConfiguration(
            virtual_hosts=[
                VirtualHost(
                    name="all",
                    domains=["*"],
                    routes=[
                        Route(match=RouteMatch(prefix="/"), route=RouteAction(cluster="proxy")),
                        Route(
                            match=RouteMatch(prefix="/w"),
                            route=RouteAction(
                                weighted_clusters=WeightedCluster(
                                    clusters=[WeightedCluster.ClusterWeight(name="weighted")]
                                )
                            ),
                        ),
                    ],
                )
            ]
        ),
    )
    config = Any()
    config.Pack(manager)
    http = Listener(
        name="http",
        filter_chains=[FilterChain(filters=[Filter(name="hcm", typed_config=config)])],
        default_filter_chain=listener("x", "fallback").filter_chains[0],
    )
    assert clusters_used_by(http) == {"proxy", "weighted", "fallback"}


def test_explicit_dependencies_replace_scanning() -> None:
    built = Snapshot({LDS: {"l1": listener("l1", "scanned")}}, dependencies={"l1": {"declared"}})
    assert built.resources(LDS).resources["l1"].uses_clusters == {"declared"}


def test_resources_that_do_not_match_their_key_are_refused() -> None:
    with pytest.raises(ValueError, match=r"not type\.googleapis\.com"):
        Snapshot({LDS: {"a": cluster("a")}})
    with pytest.raises(ValueError, match="named 'b'"):
        Snapshot({CDS: {"a": cluster("b")}})

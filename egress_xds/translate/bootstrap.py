"""Envoy bootstrap files: one that fetches LDS/CDS from our ADS server, and one with the resources built in."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from google.protobuf.json_format import MessageToJson

from egress_xds.policy.destinations import is_ip_literal, parse_host_port
from egress_xds.translate import names
from egress_xds.translate.envoy_admin import DEFAULT_ADMIN_ADDRESS, AdminEndpoint, AdminTcp, readiness_listener
from egress_xds.translate.resources import Resources

__all__ = ["DEFAULT_ADMIN_ADDRESS", "ads_bootstrap", "resources_as_dict", "static_bootstrap"]

STANDALONE_ADMIN = AdminTcp(DEFAULT_ADMIN_ADDRESS)
NODE_CLUSTER = "egress-xds"
# Host-header regexes grow with the domain names in the policy; Envoy's default cap on RE2 program size (100)
# would reject a long name, so the cap is raised for Envoys we bootstrap.
RUNTIME = {"re2.max_program_size.error_level": 10_000, "re2.max_program_size.warn_level": 1_000}


def ads_bootstrap(
    node_id: str,
    xds_address: str,
    *,
    delta: bool = False,
    admin: AdminEndpoint = STANDALONE_ADMIN,
    readiness_port: int | None = None,
    node_metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """An Envoy bootstrap whose listeners and clusters come from the ADS server at `xds_address` over gRPC.

    `readiness_port`: a static listener answering only `/ready` (envoy_admin.readiness_listener). Envoy then waits
    for its first CDS and LDS without a timeout before it initializes, so `/ready` answers only once the
    configuration arrived (with Envoy's default of 15 s per type it would say ready with no capture listener)."""
    xds_host, xds_port = parse_host_port(xds_address)
    wait = {"initial_fetch_timeout": "0s"} if readiness_port else {}
    return {
        "node": _node(node_id, node_metadata),
        "dynamic_resources": {
            "ads_config": {
                "api_type": "DELTA_GRPC" if delta else "GRPC",
                "transport_api_version": "V3",
                "set_node_on_first_message_only": True,
                "grpc_services": [{"envoy_grpc": {"cluster_name": names.XDS_CLUSTER}}],
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3", **wait},
            "cds_config": {"ads": {}, "resource_api_version": "V3", **wait},
        },
        "static_resources": {
            **_readiness(readiness_port),
            "clusters": [_xds_cluster(xds_host, xds_port)],
        },
        "admin": admin.config(),
        "layered_runtime": _runtime(),
    }


def static_bootstrap(
    resources: Resources,
    *,
    node_id: str,
    admin: AdminEndpoint = STANDALONE_ADMIN,
    readiness_port: int | None = None,
    node_metadata: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A complete bootstrap with the translated resources as static resources (no control plane needed)."""
    static = resources_as_dict(resources)
    static["listeners"] += _readiness(readiness_port).get("listeners", [])
    return {
        "node": _node(node_id, node_metadata),
        "static_resources": static,
        "admin": admin.config(),
        "layered_runtime": _runtime(),
    }


def resources_as_dict(resources: Resources) -> dict[str, list[dict[str, Any]]]:
    """Listeners and clusters as plain data in Envoy's own field names (what `render` prints)."""
    return {
        "listeners": [_as_dict(listener) for listener in resources.listeners],
        "clusters": [_as_dict(cluster) for cluster in resources.clusters],
    }


def _as_dict(message: Any) -> dict[str, Any]:
    """Plain dicts all the way down (MessageToDict returns OrderedDicts inside `Any`, which YAML cannot dump)."""
    result: dict[str, Any] = json.loads(MessageToJson(message, preserving_proto_field_name=True))
    return result


def _node(node_id: str, metadata: Mapping[str, str] | None) -> dict[str, Any]:
    node: dict[str, Any] = {"id": node_id, "cluster": NODE_CLUSTER}
    if metadata:
        node["metadata"] = dict(sorted(metadata.items()))
    return node


def _xds_cluster(host: str, port: int) -> dict[str, Any]:
    return {
        "name": names.XDS_CLUSTER,
        "type": "STATIC" if is_ip_literal(host) else "STRICT_DNS",
        "connect_timeout": "5s",
        "typed_extension_protocol_options": {
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": {
                    # gRPC needs HTTP/2; keepalive notices a dead control plane so Envoy reconnects.
                    "http2_protocol_options": {
                        "connection_keepalive": {"interval": "30s", "timeout": "5s"},
                    }
                },
            }
        },
        "load_assignment": {
            "cluster_name": names.XDS_CLUSTER,
            "endpoints": [
                {"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}]}
            ],
        },
    }


def _readiness(port: int | None) -> dict[str, list[dict[str, Any]]]:
    return {"listeners": [_as_dict(readiness_listener(port))]} if port else {}


def _runtime() -> dict[str, Any]:
    return {"layers": [{"name": "egress-xds", "static_layer": dict(RUNTIME)}]}

"""Envoy bootstrap files: one that fetches LDS/CDS from our ADS server, and one with the resources built in."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from google.protobuf.json_format import MessageToJson

from egress_xds.policy.destinations import is_ip_literal, parse_host_port
from egress_xds.translate import names
from egress_xds.translate.envoy_admin import DEFAULT_ADMIN_ADDRESS, AdminEndpoint, AdminTcp, readiness_listener
from egress_xds.translate.resources import Resources
from egress_xds.type_urls import SECRET_TYPE_URL

__all__ = ["DEFAULT_ADMIN_ADDRESS", "ads_bootstrap", "resources_as_dict", "static_bootstrap"]

STANDALONE_ADMIN = AdminTcp(DEFAULT_ADMIN_ADDRESS)
NODE_CLUSTER = "egress-xds"
# Host-header regexes grow with the domain names in the policy; Envoy's default cap on RE2 program size (100)
# would reject a long name, so the cap is raised for Envoys we bootstrap.
RUNTIME = {"re2.max_program_size.error_level": 10_000, "re2.max_program_size.warn_level": 1_000}


CLIENT_CERTIFICATE_SECRET = "xds-client-certificate"
TRUSTED_CA_SECRET = "xds-trusted-ca"


@dataclass(frozen=True)
class XdsTls:
    """`bootstrap --xds-ca --client-cert --client-key [--xds-server-name] --sds-dir`: mTLS to the server.

    Envoy reads the certificate files through SDS from the file system: the bootstrap names two SDS files in
    `sds_dir` (`sds_files` makes their content), and each secret watches the directory of its files, so that a
    rotation (Kubernetes swaps a Secret or CSI volume's `..data` link; any rename into the directory) is picked up
    without a restart and without dropping the ADS stream.
    """

    ca: str
    client_cert: str
    client_key: str
    sds_dir: str
    server_name: str | None = None  # the server's DNS name or IP in its certificate; default: the xDS host

    def sds_path(self, secret: str) -> str:
        return str(PurePath(self.sds_dir) / f"{secret}.yaml")


def ads_bootstrap(
    node_id: str,
    xds_address: str | Sequence[str],
    *,
    delta: bool = False,
    admin: AdminEndpoint = STANDALONE_ADMIN,
    readiness_port: int | None = None,
    node_metadata: Mapping[str, str] | None = None,
    xds_tls: XdsTls | None = None,
) -> dict[str, Any]:
    """An Envoy bootstrap whose listeners and clusters come from the ADS server at `xds_address` over gRPC (with
    `xds_tls`: over mutual TLS, the server's certificate verified for its name, by default the first address's
    host). Several addresses (the replicas of one server) become the endpoints of the one xDS cluster (see
    `_xds_cluster`): when the stream to one ends, Envoy's next attempt goes to another.

    `readiness_port`: a static listener answering only `/ready` (envoy_admin.readiness_listener). Envoy then waits
    for its first CDS and LDS without a timeout before it initializes, so `/ready` answers only once the
    configuration arrived (with Envoy's default of 15 s per type it would say ready with no capture listener)."""
    addresses = [xds_address] if isinstance(xds_address, str) else list(dict.fromkeys(xds_address))
    if not addresses:
        raise ValueError("--xds-address: at least one HOST:PORT is needed")
    endpoints = [parse_host_port(address) for address in addresses]
    cluster = _xds_cluster(endpoints)
    if xds_tls is not None:
        cluster["transport_socket"] = _xds_transport_socket(xds_tls, xds_tls.server_name or endpoints[0][0])
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
        "static_resources": {**_readiness(readiness_port), "clusters": [cluster]},
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


def _xds_cluster(endpoints: Sequence[tuple[str, int]]) -> dict[str, Any]:
    """The ADS cluster: one endpoint per server address (STATIC when all are IP literals, else STRICT_DNS, which
    resolves each name on its own). Envoy holds one ADS stream and picks its host for every new stream by the
    cluster's load balancer, round robin by default: when a replica dies (its stream resets, or its connections
    are refused), the retry goes to the next endpoint, so an Envoy moves to another replica at its first retry."""
    static = all(is_ip_literal(host) for host, _ in endpoints)
    return {
        "name": names.XDS_CLUSTER,
        "type": "STATIC" if static else "STRICT_DNS",
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
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": host, "port_value": port}}}}
                        for host, port in endpoints
                    ]
                }
            ],
        },
    }


def sds_files(tls: XdsTls) -> dict[str, dict[str, Any]]:
    """The SDS files the bootstrap of `tls` refers to: path -> content (a DiscoveryResponse with one Secret)."""
    certificate = {
        "certificate_chain": {"filename": tls.client_cert},
        "private_key": {"filename": tls.client_key},
        "watched_directory": {"path": str(PurePath(tls.client_cert).parent)},
    }
    validation = {
        "trusted_ca": {"filename": tls.ca},
        "watched_directory": {"path": str(PurePath(tls.ca).parent)},
    }
    return {
        tls.sds_path(CLIENT_CERTIFICATE_SECRET): _secret_file(
            CLIENT_CERTIFICATE_SECRET, "tls_certificate", certificate
        ),
        tls.sds_path(TRUSTED_CA_SECRET): _secret_file(TRUSTED_CA_SECRET, "validation_context", validation),
    }


def _secret_file(name: str, kind: str, value: dict[str, Any]) -> dict[str, Any]:
    return {"resources": [{"@type": SECRET_TYPE_URL, "name": name, kind: value}]}


def _xds_transport_socket(tls: XdsTls, server_name: str) -> dict[str, Any]:
    """UpstreamTlsContext of the xDS cluster: our certificate by SDS, the server's CA by SDS, its SAN checked."""
    ip = is_ip_literal(server_name)
    context: dict[str, Any] = {
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [_sds_config(tls, CLIENT_CERTIFICATE_SECRET)],
            "combined_validation_context": {
                "default_validation_context": {
                    "match_typed_subject_alt_names": [
                        {"san_type": "IP_ADDRESS" if ip else "DNS", "matcher": {"exact": server_name}}
                    ]
                },
                "validation_context_sds_secret_config": _sds_config(tls, TRUSTED_CA_SECRET),
            },
        },
    }
    if not ip:
        context["sni"] = server_name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def _sds_config(tls: XdsTls, secret: str) -> dict[str, Any]:
    return {
        "name": secret,
        "sds_config": {"path_config_source": {"path": tls.sds_path(secret)}, "resource_api_version": "V3"},
    }


def _readiness(port: int | None) -> dict[str, list[dict[str, Any]]]:
    return {"listeners": [_as_dict(readiness_listener(port))]} if port else {}


def _runtime() -> dict[str, Any]:
    return {"layers": [{"name": "egress-xds", "static_layer": dict(RUNTIME)}]}

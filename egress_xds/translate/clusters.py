"""Clusters: one pair per proxy (CONNECT tunnels, absolute-form HTTP), the pass-through and the deny cluster."""

from __future__ import annotations

from envoy.config.cluster.v3.circuit_breaker_pb2 import CircuitBreakers
from envoy.config.cluster.v3.cluster_pb2 import Cluster
from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import TransportSocket
from envoy.config.core.v3.health_check_pb2 import HealthCheck as EnvoyHealthCheck
from envoy.config.core.v3.protocol_pb2 import Http1ProtocolOptions
from envoy.config.endpoint.v3.endpoint_components_pb2 import Endpoint, LbEndpoint, LocalityLbEndpoints
from envoy.config.endpoint.v3.endpoint_pb2 import ClusterLoadAssignment
from envoy.extensions.transport_sockets.tls.v3.common_pb2 import CertificateValidationContext, SubjectAltNameMatcher
from envoy.extensions.transport_sockets.tls.v3.tls_pb2 import CommonTlsContext, UpstreamTlsContext
from envoy.extensions.upstreams.http.v3.http_protocol_options_pb2 import HttpProtocolOptions
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from google.protobuf.wrappers_pb2 import UInt32Value

from egress_xds.policy.destinations import is_ip_literal
from egress_xds.policy.model import Proxy, Scheme
from egress_xds.translate import names
from egress_xds.translate.protobuf import milliseconds, typed

CONNECT_TIMEOUT_MS = 5000
# Plain HTTP reuses its connections to the proxy (Envoy's HTTP/1 pool; bench/dataplane.py: 815 requests from 815 new
# application connections went over 2 connections to squid). Envoy keeps an idle one for an hour by default, while
# squid closes an idle client connection after 2 minutes (client_idle_pconn_timeout) and tinyproxy after its
# Timeout: a request Envoy writes as the proxy closes fails with a 503 (upstream reset, no retry). Closing first,
# below the proxies' timeouts, removes that race and costs one TCP connect after a minute of silence.
HTTP_POOL_IDLE_TIMEOUT_MS = 60_000
HTTP_PROTOCOL_OPTIONS_KEY = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
# Egress tunnels are long-lived; Envoy's default of 1,024 concurrent connections per cluster is far too low.
CIRCUIT_BREAKER_LIMIT = 100_000
# The system trust store, as a file on ENVOY's machine, for an https:// proxy without caFile. Envoy 1.40 has no
# working "system roots" option (CertificateValidationContext.system_root_certs is gRPC-only: Envoy rejects it
# as "SAN-based verification of peer certificates without trusted CA"), so the platform bundle is named. This is
# the path of Debian, Ubuntu (the envoyproxy/envoy images), Alpine and distroless (envoyproxy/envoy-distroless);
# on RHEL/Fedora write caFile: /etc/pki/tls/certs/ca-bundle.crt.
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"


def proxy_connect_cluster(proxy: Proxy) -> Cluster:
    """HTTP/1.1 with no HTTP options: tcp_proxy speaks `CONNECT host:port` over it (never HTTP/2: squid says 400)."""
    return _proxy_cluster(proxy, names.proxy_connect_cluster(proxy.name))


def proxy_http_cluster(proxy: Proxy) -> Cluster:
    """For plain HTTP: requests go out in absolute form (`GET http://host/path`), as a proxy expects."""
    cluster = _proxy_cluster(proxy, names.proxy_http_cluster(proxy.name))
    options = HttpProtocolOptions()
    options.explicit_http_config.http_protocol_options.CopyFrom(Http1ProtocolOptions(send_fully_qualified_url=True))
    options.common_http_protocol_options.idle_timeout.CopyFrom(milliseconds(HTTP_POOL_IDLE_TIMEOUT_MS))
    cluster.typed_extension_protocol_options[HTTP_PROTOCOL_OPTIONS_KEY].CopyFrom(typed(options))
    return cluster


def passthrough_cluster() -> Cluster:
    """Direct traffic: connect to wherever the application was connecting (the original destination)."""
    cluster = Cluster(
        name=names.PASSTHROUGH_CLUSTER,
        type=Cluster.ORIGINAL_DST,
        lb_policy=Cluster.CLUSTER_PROVIDED,
        connect_timeout=milliseconds(CONNECT_TIMEOUT_MS),
    )
    cluster.circuit_breakers.CopyFrom(_generous_circuit_breakers())
    return cluster


def deny_cluster() -> Cluster:
    """A cluster with no endpoints: a connection routed here is closed at once (flag UH in the access log)."""
    return Cluster(
        name=names.DENY_CLUSTER,
        type=Cluster.STATIC,
        connect_timeout=milliseconds(CONNECT_TIMEOUT_MS),
        load_assignment=ClusterLoadAssignment(cluster_name=names.DENY_CLUSTER),
    )


def direct_target_cluster(name: str, host: str, port: int) -> Cluster:
    """Standalone: an explicit listener whose target is reached without a proxy."""
    cluster = Cluster(
        name=name,
        type=Cluster.STATIC if is_ip_literal(host) else Cluster.STRICT_DNS,
        connect_timeout=milliseconds(CONNECT_TIMEOUT_MS),
        dns_lookup_family=Cluster.V4_PREFERRED,
    )
    cluster.load_assignment.CopyFrom(_load_assignment(name, [(host, port, 0)]))
    return cluster


def _proxy_cluster(proxy: Proxy, name: str) -> Cluster:
    all_ip = all(endpoint.is_ip for endpoint in proxy.endpoints)
    cluster = Cluster(
        name=name,
        type=Cluster.STATIC if all_ip else Cluster.STRICT_DNS,
        connect_timeout=milliseconds(CONNECT_TIMEOUT_MS),
        dns_lookup_family=Cluster.V4_PREFERRED,
    )
    endpoints = [(endpoint.host, endpoint.port, endpoint.priority) for endpoint in proxy.endpoints]
    cluster.load_assignment.CopyFrom(_load_assignment(name, endpoints))
    cluster.circuit_breakers.CopyFrom(_generous_circuit_breakers())
    if proxy.health_check is not None:
        check = proxy.health_check
        cluster.health_checks.append(
            EnvoyHealthCheck(
                timeout=milliseconds(check.timeout_ms),
                interval=milliseconds(check.interval_ms),
                # Envoy checks a cluster that carried no traffic yet only every 60 s by default, so a dead primary
                # would stay "healthy" for a minute: keep the configured interval regardless of traffic.
                no_traffic_interval=milliseconds(check.interval_ms),
                unhealthy_threshold=UInt32Value(value=check.unhealthy_threshold),
                healthy_threshold=UInt32Value(value=check.healthy_threshold),
                tcp_health_check=EnvoyHealthCheck.TcpHealthCheck(),
            )
        )
    if proxy.scheme is Scheme.HTTPS:
        cluster.transport_socket.CopyFrom(_tls_to_proxy(proxy))
    return cluster


def _tls_to_proxy(proxy: Proxy) -> TransportSocket:
    """TLS to an https:// proxy: verify it against caFile (or the system trust store) and its name."""
    validation = CertificateValidationContext()
    validation.trusted_ca.filename = proxy.ca_file or SYSTEM_CA_BUNDLE
    expected_name = proxy.sni or proxy.endpoints[0].host
    san_type = SubjectAltNameMatcher.IP_ADDRESS if is_ip_literal(expected_name) else SubjectAltNameMatcher.DNS
    validation.match_typed_subject_alt_names.append(
        SubjectAltNameMatcher(san_type=san_type, matcher=StringMatcher(exact=expected_name))
    )
    context = UpstreamTlsContext(common_tls_context=CommonTlsContext(validation_context=validation))
    if proxy.sni:
        context.sni = proxy.sni
    return TransportSocket(name="envoy.transport_sockets.tls", typed_config=typed(context))


def _load_assignment(name: str, endpoints: list[tuple[str, int, int]]) -> ClusterLoadAssignment:
    assignment = ClusterLoadAssignment(cluster_name=name)
    for priority in sorted({priority for _, _, priority in endpoints}):
        locality = LocalityLbEndpoints(priority=priority)
        for host, port, endpoint_priority in endpoints:
            if endpoint_priority == priority:
                address = Address(socket_address=SocketAddress(address=host, port_value=port))
                locality.lb_endpoints.append(LbEndpoint(endpoint=Endpoint(address=address)))
        assignment.endpoints.append(locality)
    return assignment


def _generous_circuit_breakers() -> CircuitBreakers:
    limit = UInt32Value(value=CIRCUIT_BREAKER_LIMIT)
    thresholds = CircuitBreakers.Thresholds(
        max_connections=limit, max_pending_requests=limit, max_requests=limit, max_retries=UInt32Value(value=3)
    )
    return CircuitBreakers(thresholds=[thresholds])

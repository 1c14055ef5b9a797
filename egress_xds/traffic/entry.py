"""An Envoy access-log entry (`envoy.data.accesslog.v3`) as one `TrafficEvent`: what egress-xds keeps of it.

Kept: the chain and what it does (the custom tags egress_xds/translate/access_log.py adds), the policy decision
(HTTP routes are named after it), the destination (TLS SNI or HTTP authority, else the original address) and
port, the proxy's status, Envoy's response flags and failure reason, bytes and duration. Dropped: the URL path
and query, every header, the client's address (a pod IP says less than the node id and changes).
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.config.core.v3.address_pb2 import Address
from envoy.config.core.v3.base_pb2 import RequestMethod
from envoy.data.accesslog.v3.accesslog_pb2 import AccessLogCommon, HTTPAccessLogEntry, TCPAccessLogEntry

from egress_xds.translate import names
from egress_xds.translate.access_log import (
    CHAIN_TAG,
    KIND_DENY,
    KIND_DIRECT,
    KIND_PROXY,
    KIND_TAG,
    PROXY_TAG,
    TARGET_TAG,
)

# Every text kept is cut to this length: an Envoy (or anything that speaks the protocol) chooses them.
MAX_TEXT = 253
# Envoy's short names for AccessLogCommon.response_flags (the `%RESPONSE_FLAGS%` letters of the stdout log).
_FLAG_CODES = {
    "failed_local_healthcheck": "LH",
    "no_healthy_upstream": "UH",
    "upstream_request_timeout": "UT",
    "local_reset": "LR",
    "upstream_remote_reset": "UR",
    "upstream_connection_failure": "UF",
    "upstream_connection_termination": "UC",
    "upstream_overflow": "UO",
    "no_route_found": "NR",
    "rate_limited": "RL",
    "downstream_connection_termination": "DC",
    "upstream_retry_limit_exceeded": "URX",
    "stream_idle_timeout": "SI",
    "downstream_protocol_error": "DPE",
    "upstream_protocol_error": "UPE",
    "no_cluster_found": "NC",
    "duration_timeout": "DT",
    "overload_manager": "OM",
    "dns_resolution_failure": "DF",
    "downstream_remote_reset": "DRR",
}


@dataclass(frozen=True)
class TrafficEvent:
    protocol: str  # "tcp" or "http"
    chain: str
    kind: str  # proxy, direct, deny (egress_xds/translate/access_log.py)
    proxy: str  # the proxy's name, "" when none
    decision: str  # the policy decision (HTTP: the route's name); "" when the entry does not carry it
    destination: str  # host:port as the application named it (SNI, Host), else the original ip:port
    address: str  # the original destination ip:port ("" when unknown)
    response_code: int  # HTTP: the status the application got; TCP: 0
    flags: tuple[str, ...]  # Envoy's response flags, e.g. ("UF", "URX")
    failure: str  # upstream transport failure reason, e.g. "tunnel_response:407"
    bytes_sent: int  # to the application
    bytes_received: int  # from the application
    duration_ms: int
    connect: bool = False  # HTTP: the request was a CONNECT (to a forward-proxy listener): 2xx or it failed


def from_tcp(entry: TCPAccessLogEntry) -> TrafficEvent:
    common = entry.common_properties
    tags = common.custom_tags
    address, port = _address(common.downstream_local_address)
    name = _text(common.tls_properties.tls_sni_hostname.lower().rstrip("."))
    target = _text(tags.get(TARGET_TAG, ""))
    return TrafficEvent(
        protocol="tcp",
        chain=_text(tags.get(CHAIN_TAG, "")),
        kind=_text(tags.get(KIND_TAG, "")),
        proxy=_text(tags.get(PROXY_TAG, "")),
        decision="",
        destination=target or (_host_port(name, port) if name else _host_port(address, port)),
        address="" if target else _host_port(address, port) if address else "",
        response_code=0,
        flags=_flags(common),
        failure=_text(common.upstream_transport_failure_reason),
        bytes_sent=entry.connection_properties.sent_bytes,
        bytes_received=entry.connection_properties.received_bytes,
        duration_ms=_milliseconds(common),
    )


def from_http(entry: HTTPAccessLogEntry) -> TrafficEvent:
    common = entry.common_properties
    address, port = _address(common.downstream_local_address)
    # A userinfo in an authority (`user:password@host`) is never kept.
    authority = _text(entry.request.authority.rpartition("@")[2].lower().rstrip("."))
    cluster = common.upstream_cluster
    proxy = names.proxy_of_cluster(cluster) or ""
    if proxy:
        kind = KIND_PROXY
    elif cluster:
        kind = KIND_DIRECT
    else:
        kind = KIND_DENY if entry.response.response_code.value == 403 and common.route_name else KIND_DIRECT
    request = entry.request
    response = entry.response
    return TrafficEvent(
        protocol="http",
        chain=_text(common.custom_tags.get(CHAIN_TAG, "")),
        kind=kind,
        proxy=_text(proxy),
        decision=_text(common.route_name),
        destination=_with_port(authority) if authority else _host_port(address, port),
        address=_host_port(address, port) if address else "",
        response_code=response.response_code.value,
        flags=_flags(common),
        failure=_text(common.upstream_transport_failure_reason),
        bytes_sent=response.response_headers_bytes + response.response_body_bytes,
        bytes_received=request.request_headers_bytes + request.request_body_bytes,
        duration_ms=_milliseconds(common),
        connect=request.request_method == RequestMethod.CONNECT,
    )


def _address(address: Address) -> tuple[str, int]:
    socket = address.socket_address
    return _text(socket.address), socket.port_value


def _host_port(host: str, port: int) -> str:
    if not host:
        return "-"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def _with_port(authority: str) -> str:
    """An authority as host:port: a Host header without a port means HTTP's 80 (clients name any other port;
    the connection's own port may be a forward-proxy listener's)."""
    if authority.endswith("]") or ":" not in authority:
        return f"{authority}:80"
    return authority


def _flags(common: AccessLogCommon) -> tuple[str, ...]:
    set_fields = {field.name for field, value in common.response_flags.ListFields() if value is True}
    return tuple(code for field, code in _FLAG_CODES.items() if field in set_fields) if set_fields else ()


def _milliseconds(common: AccessLogCommon) -> int:
    return int(common.duration.ToMilliseconds()) if common.HasField("duration") else 0


def _text(value: str) -> str:
    return value[:MAX_TEXT]

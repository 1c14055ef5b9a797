"""Access logs: one line per connection or request on stdout (`kubectl logs` shows them), and the same event
streamed to egress-xds over gRPC (Envoy's access-log service), where `egress-xds traffic` aggregates it.

The fields a platform engineer needs when a tunnel fails: which chain (policy decision) was taken, where the app
was connecting, the CONNECT target, the response flags (`UF,URX`, `UH`) and the upstream transport failure reason
(`tunnel_response:407` when the proxy refused the credentials).

Envoy's gRPC entry does not carry the filter chain's name, so each logger adds it as literal custom tags, with
what the chain does (`kind`: proxy, direct, deny) and through which proxy: the server reads them back
(egress_xds/traffic/entry.py). HTTP routes are named after their policy decision, so HTTP entries carry it as
`route_name`. The gRPC logger uses the bootstrap's xDS cluster: the same connection settings (TLS, client
certificate) as ADS. It logs no request header and no body; the server drops the URL path it is sent.
"""

from __future__ import annotations

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.config_source_pb2 import ApiVersion
from envoy.config.core.v3.grpc_service_pb2 import GrpcService
from envoy.config.core.v3.substitution_format_string_pb2 import SubstitutionFormatString
from envoy.extensions.access_loggers.grpc.v3.als_pb2 import (
    CommonGrpcAccessLogConfig,
    HttpGrpcAccessLogConfig,
    TcpGrpcAccessLogConfig,
)
from envoy.extensions.access_loggers.stream.v3.stream_pb2 import StdoutAccessLog
from envoy.type.tracing.v3.custom_tag_pb2 import CustomTag

from egress_xds.translate import names
from egress_xds.translate.protobuf import typed

# The log name Envoy reports on the stream, and the custom tags the server reads (egress_xds/traffic/entry.py).
GRPC_LOG_NAME = "egress-xds"
CHAIN_TAG = "egress.chain"
KIND_TAG = "egress.kind"
PROXY_TAG = "egress.proxy"
TARGET_TAG = "egress.target"  # an explicit listener's fixed target (captured traffic: the original destination)
KIND_PROXY = "proxy"
KIND_DIRECT = "direct"
KIND_DENY = "deny"

_COMMON_FIELDS = (
    "[%START_TIME%] egress chain=%FILTER_CHAIN_NAME% src=%DOWNSTREAM_REMOTE_ADDRESS% "
    "dst=%DOWNSTREAM_LOCAL_ADDRESS% sni=%REQUESTED_SERVER_NAME%"
)
_RESULT_FIELDS = (
    "cluster=%UPSTREAM_CLUSTER% upstream=%UPSTREAM_HOST% flags=%RESPONSE_FLAGS% "
    "failure=%UPSTREAM_TRANSPORT_FAILURE_REASON% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% duration_ms=%DURATION%"
)


def connection_logs(chain: str, kind: str, proxy: str = "", tunnel_target: str | None = None) -> list[AccessLog]:
    """For tcp_proxy chains; `tunnel_target` is the CONNECT authority (a formatter, or an explicit listener's
    fixed `host:port`), or an explicit listener's direct target."""
    target = f" connect={tunnel_target}" if tunnel_target and kind == KIND_PROXY else ""
    stdout = _stdout(f"{_COMMON_FIELDS}{target} {_RESULT_FIELDS}\n")
    fixed_target = tunnel_target if tunnel_target and "%" not in tunnel_target else ""
    grpc_log = TcpGrpcAccessLogConfig(common_config=_grpc_common(chain, kind, proxy, fixed_target))
    return [stdout, AccessLog(name="envoy.access_loggers.tcp_grpc", typed_config=typed(grpc_log))]


def request_logs(chain: str) -> list[AccessLog]:
    """For HTTP chains: adds method, authority and status of each request. Kind and proxy differ per route:
    the server reads them from the route's cluster and name."""
    request = (
        "method=%REQ(:METHOD)% authority=%REQ(:AUTHORITY)% path=%REQ(:PATH)% status=%RESPONSE_CODE% route=%ROUTE_NAME%"
    )
    stdout = _stdout(f"{_COMMON_FIELDS} {request} {_RESULT_FIELDS}\n")
    grpc_log = HttpGrpcAccessLogConfig(common_config=_grpc_common(chain, "", ""))
    return [stdout, AccessLog(name="envoy.access_loggers.http_grpc", typed_config=typed(grpc_log))]


def _grpc_common(chain: str, kind: str, proxy: str, target: str = "") -> CommonGrpcAccessLogConfig:
    tags = {CHAIN_TAG: chain, KIND_TAG: kind, PROXY_TAG: proxy, TARGET_TAG: target}
    return CommonGrpcAccessLogConfig(
        log_name=GRPC_LOG_NAME,
        grpc_service=GrpcService(envoy_grpc=GrpcService.EnvoyGrpc(cluster_name=names.XDS_CLUSTER)),
        transport_api_version=ApiVersion.V3,
        custom_tags=[
            CustomTag(tag=tag, literal=CustomTag.Literal(value=value)) for tag, value in tags.items() if value
        ],
    )


def _stdout(text_format: str) -> AccessLog:
    log_format = SubstitutionFormatString()
    log_format.text_format_source.inline_string = text_format
    return AccessLog(name="envoy.access_loggers.stdout", typed_config=typed(StdoutAccessLog(log_format=log_format)))

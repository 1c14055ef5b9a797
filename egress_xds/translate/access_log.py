"""Access logs on stdout (`kubectl logs` shows them). One line per connection or request, key=value fields.

The fields a platform engineer needs when a tunnel fails: which chain (policy decision) was taken, where the app
was connecting, the CONNECT target, the response flags (`UF,URX`, `UH`) and the upstream transport failure reason
(`tunnel_response:407` when the proxy refused the credentials).
"""

from __future__ import annotations

from envoy.config.accesslog.v3.accesslog_pb2 import AccessLog
from envoy.config.core.v3.substitution_format_string_pb2 import SubstitutionFormatString
from envoy.extensions.access_loggers.stream.v3.stream_pb2 import StdoutAccessLog

from egress_xds.translate.protobuf import typed

_COMMON_FIELDS = (
    "[%START_TIME%] egress chain=%FILTER_CHAIN_NAME% src=%DOWNSTREAM_REMOTE_ADDRESS% "
    "dst=%DOWNSTREAM_LOCAL_ADDRESS% sni=%REQUESTED_SERVER_NAME%"
)
_RESULT_FIELDS = (
    "cluster=%UPSTREAM_CLUSTER% upstream=%UPSTREAM_HOST% flags=%RESPONSE_FLAGS% "
    "failure=%UPSTREAM_TRANSPORT_FAILURE_REASON% rx=%BYTES_RECEIVED% tx=%BYTES_SENT% duration_ms=%DURATION%"
)


def connection_log(tunnel_target: str | None = None) -> AccessLog:
    """For tcp_proxy chains; `tunnel_target` is the formatter Envoy uses for the CONNECT authority, if any."""
    target = f" connect={tunnel_target}" if tunnel_target else ""
    return _stdout(f"{_COMMON_FIELDS}{target} {_RESULT_FIELDS}\n")


def request_log() -> AccessLog:
    """For HTTP chains: adds method, authority and status of each request."""
    request = (
        "method=%REQ(:METHOD)% authority=%REQ(:AUTHORITY)% path=%REQ(:PATH)% status=%RESPONSE_CODE% route=%ROUTE_NAME%"
    )
    return _stdout(f"{_COMMON_FIELDS} {request} {_RESULT_FIELDS}\n")


def _stdout(text_format: str) -> AccessLog:
    log_format = SubstitutionFormatString()
    log_format.text_format_source.inline_string = text_format
    return AccessLog(name="envoy.access_loggers.stdout", typed_config=typed(StdoutAccessLog(log_format=log_format)))

"""What happened to one connection or request, in the words of `egress-xds traffic`.

Decided from what Envoy really reports (see tests/integration/test_traffic.py):
- a tunnel the proxy refused: response flag UF with `upstream_transport_failure_reason` `tunnel_response:CODE`
  (407 credentials, 403 the proxy's ACL, 503 / 502 / 504 the proxy could not reach the destination);
- no connection to the proxy at all: UF / UH / URX without a tunnel response;
- plain HTTP through a proxy: the proxy's own status (407, 403, 50x), as the application gets it.
"""

from __future__ import annotations

import enum
import re

from egress_xds.traffic.entry import TrafficEvent
from egress_xds.translate.access_log import KIND_DENY, KIND_DIRECT, KIND_PROXY


class Outcome(enum.Enum):
    OK = "ok"  # through the proxy (tunnel established, or its answer relayed)
    PROXY_AUTH_REQUIRED = "proxy-auth-required"  # 407: the proxy refused the credentials (or their absence)
    PROXY_FORBIDDEN = "proxy-forbidden"  # 403: the proxy's ACL refused the destination
    PROXY_UNREACHABLE = "proxy-unreachable"  # Envoy could not connect to the proxy
    PROXY_ERROR = "proxy-error"  # any other refusal by the proxy
    DENIED_BY_POLICY = "denied-by-policy"  # the policy said deny: Envoy closed it (TCP) or answered 403 (HTTP)
    DIRECT = "direct"  # reached without a proxy
    CONNECT_FAILED = "connect-failed"  # the destination could not be reached (directly, or by the proxy: 50x)


OUTCOMES = tuple(outcome.value for outcome in Outcome)
REFUSALS = frozenset({Outcome.PROXY_AUTH_REQUIRED, Outcome.PROXY_FORBIDDEN, Outcome.PROXY_ERROR})
FAILURES = REFUSALS | {Outcome.PROXY_UNREACHABLE, Outcome.CONNECT_FAILED}
_TUNNEL_RESPONSE = re.compile(r"tunnel_response:(\d{3})")
_CONNECT_FAILURE_FLAGS = frozenset({"UF", "UH", "URX", "UT", "NC", "DF"})
_DESTINATION_UNREACHABLE = frozenset({502, 503, 504})


def proxy_status(event: TrafficEvent) -> int:
    """The proxy's answer: a refused CONNECT's status from the failure reason, or an HTTP response's status."""
    found = _TUNNEL_RESPONSE.search(event.failure)
    if found:
        return int(found.group(1))
    return event.response_code


def classify(event: TrafficEvent) -> Outcome:
    if event.kind == KIND_DENY:
        return Outcome.DENIED_BY_POLICY
    failed_to_connect = bool(_CONNECT_FAILURE_FLAGS.intersection(event.flags))
    if event.kind == KIND_DIRECT:
        return Outcome.CONNECT_FAILED if failed_to_connect else Outcome.DIRECT
    if event.kind != KIND_PROXY:
        return Outcome.PROXY_ERROR
    status = proxy_status(event)
    tunnel_refused = _TUNNEL_RESPONSE.search(event.failure) is not None
    if tunnel_refused or event.protocol == "http":
        if status == 407:
            return Outcome.PROXY_AUTH_REQUIRED
        if status == 403:
            return Outcome.PROXY_FORBIDDEN
        if status in _DESTINATION_UNREACHABLE:
            return Outcome.CONNECT_FAILED if not failed_to_connect or tunnel_refused else Outcome.PROXY_UNREACHABLE
        if tunnel_refused or (event.connect and status >= 300):  # a CONNECT not answered 2xx made no tunnel
            return Outcome.PROXY_ERROR
    if failed_to_connect:
        return Outcome.PROXY_UNREACHABLE
    return Outcome.OK

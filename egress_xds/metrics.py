"""Prometheus metrics of the control plane (served with `--metrics-address`).

Labels are only ever bounded, public values (a protocol, a resource type's short name, a reload result), never a
node id, a resource name or a message: those could grow without bound or carry a credential. The ADS streams
record through the small functions below, which keep a child per label value so that a response costs two
counter increments and no label lookup.
"""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, start_http_server

# Label values created up front, so that a scrape shows zeros instead of missing series.
PROTOCOLS = ("sotw", "delta")
TYPES = ("cds", "eds", "lds", "rds", "sds", "other")

RELOADS = Counter("egress_xds_reloads", "Policy reloads by result (ok, invalid)", ["result"])
SNAPSHOT_BUILD_SECONDS = Histogram(
    "egress_xds_snapshot_build_seconds",
    "Time to translate a policy set into snapshots",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)
CONNECTED_STREAMS = Gauge(
    "egress_xds_connected_streams", "ADS streams open now, by protocol (sotw, delta)", ["protocol"]
)
RESPONSES = Counter("egress_xds_responses", "xDS responses sent, by resource type (cds, lds, ...)", ["type"])
RESPONSE_BYTES = Counter(
    "egress_xds_response_bytes", "Bytes of xDS responses sent (serialized protobuf), by resource type", ["type"]
)
NACKS = Counter("egress_xds_nacks", "Responses Envoy rejected (NACK), by resource type", ["type"])
CONVERGENCE_SECONDS = Histogram(
    "egress_xds_convergence_seconds",
    "From a configuration change reaching a connected stream to that node's ACK of it, by resource type",
    ["type"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
)

IDENTITY_MISMATCHES = Counter(
    "egress_xds_identity_mismatches",
    "ADS streams refused (PERMISSION_DENIED) because the node's metadata claimed another namespace or service "
    "account than its client certificate, by field, claimed value and certificate value",
    ["field", "claimed", "certificate"],
)
PEERS_REFUSED = Counter(
    "egress_xds_peers_refused",
    "Calls refused for the peer's identity (no SPIFFE id in the certificate, admin write not allowed), by reason",
    ["reason"],
)
# A claimed value is the client's choice: label values are kept to Kubernetes names and the number of distinct
# (field, claimed, certificate) series is capped, past which they count under "<other>".
MAX_MISMATCH_SERIES = 200
_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")
_mismatch_series: set[tuple[str, str, str]] = set()

for _result in ("ok", "invalid"):
    RELOADS.labels(result=_result)
_STREAMS = {protocol: CONNECTED_STREAMS.labels(protocol=protocol) for protocol in PROTOCOLS}
_RESPONSES = {name: RESPONSES.labels(type=name) for name in TYPES}
_RESPONSE_BYTES = {name: RESPONSE_BYTES.labels(type=name) for name in TYPES}
_NACKS = {name: NACKS.labels(type=name) for name in TYPES}
_CONVERGENCE = {name: CONVERGENCE_SECONDS.labels(type=name) for name in TYPES}


def stream_opened(protocol: str) -> None:
    _STREAMS[protocol].inc()


def stream_closed(protocol: str) -> None:
    _STREAMS[protocol].dec()


def response_sent(type_name: str, size: int) -> None:
    """`type_name` is a short name from TYPES (see `egress_xds.type_urls.short_name`)."""
    _RESPONSES[type_name].inc()
    _RESPONSE_BYTES[type_name].inc(size)


def nack_received(type_name: str) -> None:
    _NACKS[type_name].inc()


def converged(type_name: str, seconds: float) -> None:
    _CONVERGENCE[type_name].observe(seconds)


def identity_mismatch(field: str, claimed: str, certificate: str) -> None:
    labels = (field, claimed if _NAME.fullmatch(claimed) else "<invalid>", certificate)
    if labels not in _mismatch_series:
        if len(_mismatch_series) >= MAX_MISMATCH_SERIES:
            labels = (field, "<other>", "<other>")
        else:
            _mismatch_series.add(labels)
    IDENTITY_MISMATCHES.labels(field=labels[0], claimed=labels[1], certificate=labels[2]).inc()


def peer_refused(reason: str) -> None:
    """`reason` is one of a few fixed words (no-identity, bad-identity, admin-write)."""
    PEERS_REFUSED.labels(reason=reason).inc()


# Egress traffic, from the access log Envoys stream back (egress_xds/traffic/). Labels: the proxy's name (from the
# policy; at most MAX_PROXY_SERIES distinct, past which "<other>"), the outcome and the decision kind, all fixed
# words. Never a destination or a node id: `egress-xds traffic` answers per destination.
TUNNELS = Counter(
    "egress_xds_tunnels",
    "Connections and plain-HTTP requests Envoy logged, by proxy (empty: none), outcome and decision kind",
    ["proxy", "outcome", "kind"],
)
TUNNEL_BYTES = Counter(
    "egress_xds_tunnel_bytes",
    "Bytes of those connections, by proxy, decision kind and direction (sent: to the application)",
    ["proxy", "kind", "direction"],
)
PROXY_REFUSALS = Counter(
    "egress_xds_proxy_refusals",
    "Tunnels and requests a proxy refused (407, 403, other non-2xx) or could not reach, by proxy and outcome",
    ["proxy", "outcome", "kind"],
)
MAX_PROXY_SERIES = 50
_proxy_labels: set[str] = set()
_PROXY_LABEL = re.compile(r"[A-Za-z0-9][-A-Za-z0-9._]{0,62}")
_KIND_LABELS = frozenset({"proxy", "direct", "deny"})
_traffic_children: dict[tuple[str, str, str], tuple[Any, Any, Any, Any]] = {}


def traffic_logged(proxy: str, outcome: str, kind: str, *, refused: bool, sent: int, received: int) -> None:
    """One access-log entry. `outcome` is one of egress_xds.traffic.outcome.OUTCOMES."""
    if proxy not in _proxy_labels:
        if len(_proxy_labels) >= MAX_PROXY_SERIES or not _PROXY_LABEL.fullmatch(proxy):
            proxy = "<other>" if proxy else ""
        else:
            _proxy_labels.add(proxy)
    kind = kind if kind in _KIND_LABELS else "<other>"
    children = _traffic_children.get((proxy, outcome, kind))
    if children is None:  # a label lookup costs more than the rest of an entry: one per series, kept
        children = (
            TUNNELS.labels(proxy=proxy, outcome=outcome, kind=kind),
            TUNNEL_BYTES.labels(proxy=proxy, kind=kind, direction="sent"),
            TUNNEL_BYTES.labels(proxy=proxy, kind=kind, direction="received"),
            PROXY_REFUSALS.labels(proxy=proxy, outcome=outcome, kind=kind) if refused else None,
        )
        _traffic_children[(proxy, outcome, kind)] = children
    tunnels, bytes_sent, bytes_received, refusals = children
    tunnels.inc()
    if sent:
        bytes_sent.inc(sent)
    if received:
        bytes_received.inc(received)
    if refusals is not None:
        refusals.inc()


def serve_metrics(address: str) -> str:
    """Expose /metrics on HOST:PORT (a background thread of prometheus_client). Returns the bound HOST:PORT,
    so that port 0 (any free port) can be logged and found."""
    host, separator, port = address.rpartition(":")
    if not separator or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address {address!r}: expected HOST:PORT (port 0: any free port)")
    host = host.removeprefix("[").removesuffix("]") or "0.0.0.0"
    server, _thread = start_http_server(int(port), addr=host)
    bound_port = server.server_address[1]
    return f"[{host}]:{bound_port}" if ":" in host else f"{host}:{bound_port}"

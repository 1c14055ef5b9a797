"""Prometheus metrics of the control plane (served with `--metrics-address`).

Labels are only ever bounded, public values (a protocol, a resource type's short name, a reload result), never a
node id, a resource name or a message: those could grow without bound or carry a credential. The ADS streams
record through the small functions below, which keep a child per label value so that a response costs two
counter increments and no label lookup.
"""

from __future__ import annotations

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

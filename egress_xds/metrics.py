"""Prometheus metrics of the control plane (served with `--metrics-address`). Never labelled with secrets."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

from egress_xds.policy.proxy_url import parse_host_port

RELOADS = Counter("egress_xds_reloads", "Policy reloads by result (ok, invalid)", ["result"])
SNAPSHOT_BUILD_SECONDS = Histogram(
    "egress_xds_snapshot_build_seconds",
    "Time to translate a policy set into snapshots",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0),
)


def serve_metrics(address: str) -> None:
    """Expose /metrics on HOST:PORT (a background thread of prometheus_client)."""
    host, port = parse_host_port(address)
    start_http_server(port, addr=host)

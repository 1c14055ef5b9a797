"""Defaults that more than one unit relies on, defined once: the xDS port, the sidecar's capture port, the file
watch's debounce. Flags and parameters take their defaults from here, so help texts and behaviour agree."""

from __future__ import annotations

XDS_PORT = 18000
# `serve` listens on every interface; client commands (`status`) look for the server on loopback.
SERVE_LISTEN = f"0.0.0.0:{XDS_PORT}"
SERVER_ADDRESS = f"127.0.0.1:{XDS_PORT}"

# The sidecar's capture listener, the port `capture`'s iptables rules redirect outbound TCP to (Istio's 15001).
CAPTURE_PORT = 15001

# File changes within this time are coalesced into one reload (editors write a file in several steps).
FILE_DEBOUNCE_MS = 200

# `serve --drain-window`: at shutdown, the streams are closed evenly over this time, so that the fleet reconnects to
# the other replicas over seconds, not in one burst. With `serve`'s 5 s grace this ends within 10 s, well inside
# Kubernetes' default 30 s termination grace period.
DRAIN_WINDOW_SECONDS = 5.0
# `serve --max-connection-age`: connections are closed after this time (gRPC core jitters it by +-10%), so that a
# fleet rebalances over the replicas after a scale-up. Envoy Gateway's xDS server caps connections at 10-12 h.
MAX_CONNECTION_AGE_SECONDS = 10 * 3600.0

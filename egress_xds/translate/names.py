"""Stable resource names. They appear in Envoy stats and access logs, so they are short and readable."""

from __future__ import annotations

CAPTURE_LISTENER = "egress-capture"
FORWARD_PROXY_LISTENER = "egress-forward-proxy"
READINESS_LISTENER = "egress-readiness"
PASSTHROUGH_CLUSTER = "egress-passthrough"
DENY_CLUSTER = "egress-deny"
XDS_CLUSTER = "egress-xds-control-plane"

PASSTHROUGH_CHAIN = "passthrough"
DENY_CHAIN = "deny"
HTTP_CHAIN = "http"
CAPTURE_LOOP_CHAIN = "capture-loop"


def proxy_connect_cluster(proxy: str) -> str:
    """The cluster that carries CONNECT tunnels to a proxy (plain HTTP/1.1, no HTTP options)."""
    return f"egress-proxy-{proxy}-connect"


def proxy_http_cluster(proxy: str) -> str:
    """The cluster that carries absolute-form plain HTTP requests to a proxy."""
    return f"egress-proxy-{proxy}-http"


def direct_target_cluster(listener: str) -> str:
    """Standalone: the cluster of an explicit listener whose target is reached directly."""
    return f"egress-direct-{listener}"


def tunnel_chain(proxy: str, *, by_name: bool) -> str:
    """`tunnel-corp` sends `CONNECT sni:port`; `tunnel-corp-ip` sends `CONNECT ip:port` (no name visible)."""
    return f"tunnel-{proxy}" if by_name else f"tunnel-{proxy}-ip"


def rule_http_chain(position: int) -> str:
    return f"http-rule-{position}"


def explicit_listener(name: str) -> str:
    return f"egress-listener-{name}"


def proxy_of_cluster(cluster: str) -> str | None:
    """The proxy name of a `-connect` or `-http` proxy cluster, else None."""
    for suffix in ("-connect", "-http"):
        if cluster.startswith("egress-proxy-") and cluster.endswith(suffix):
            return cluster.removeprefix("egress-proxy-").removesuffix(suffix)
    return None

"""`egress-xds explain`: which path a destination takes for a node, and why.

The answer is read from the Envoy listener the translator builds for that node (its ordered filter-chain matcher
and route tables, whose entries carry the policy decision they came from), so it cannot disagree with Envoy.
"""

from __future__ import annotations

from dataclasses import dataclass

from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy

from egress_xds.explain.destination import Probe, TrafficKind, parse_destination
from egress_xds.explain.listener_eval import UnsupportedConfig, choose_chain, choose_route, network_filter
from egress_xds.policy.model import EgressPolicy
from egress_xds.translate import names
from egress_xds.translate.capture_listener import capture_listener

__all__ = ["Explanation", "Probe", "TrafficKind", "UnsupportedConfig", "explain", "parse_destination"]


@dataclass(frozen=True)
class Explanation:
    probe: Probe
    verdict: str  # "proxy corp (http://...)", "direct", "deny"
    origin: str  # the policy decision
    chain: str
    detail: str  # what Envoy does on the wire
    proxy: str | None = None  # the proxy's name when the verdict is a proxy

    def __str__(self) -> str:
        return f"{self.probe} -> {self.verdict} by {self.origin}\n  envoy: chain {self.chain}, {self.detail}"

    def as_dict(self) -> dict[str, object]:
        """The machine-readable form (`explain -o json`)."""
        probe = self.probe
        return {
            "name": probe.name,
            "address": str(probe.ip) if probe.ip is not None else None,
            "port": probe.port,
            "protocol": probe.protocol.value,
            "verdict": "proxy" if self.proxy is not None else self.verdict,
            "proxy": self.proxy,
            "decision": self.origin,
            "chain": self.chain,
            "envoy": self.detail,
        }


def explain(policy: EgressPolicy, probe: Probe) -> Explanation:
    """Explain the path of `probe` through a sidecar node's capture listener."""
    listener = capture_listener(policy)
    choice = choose_chain(listener, probe)
    manager_or_proxy = network_filter(listener, choice.chain)
    if isinstance(manager_or_proxy, TcpProxy):
        verdict, detail, proxy = _stream_verdict(policy, manager_or_proxy, probe)
        return Explanation(probe, verdict, choice.origin, choice.chain, detail, proxy)
    authority = probe.name or str(probe.ip)
    if probe.port != 80:
        authority = f"{authority}:{probe.port}"
    route = choose_route(manager_or_proxy, authority)
    if route.cluster is None:
        return Explanation(probe, "deny", route.origin, choice.chain, f"answers HTTP {route.status}")
    proxy = names.proxy_of_cluster(route.cluster)
    if proxy is None:
        return Explanation(probe, "direct", route.origin, choice.chain, "forwards the request to the original address")
    verdict = f"proxy {proxy} ({policy.proxies[proxy].display_url})"
    detail = f"sends GET http://{authority}/... (absolute form) to the proxy"
    return Explanation(probe, verdict, route.origin, choice.chain, detail, proxy)


def _stream_verdict(policy: EgressPolicy, tcp_proxy: TcpProxy, probe: Probe) -> tuple[str, str, str | None]:
    if tcp_proxy.cluster == names.DENY_CLUSTER:
        return "deny", "closes the connection at once", None
    proxy = names.proxy_of_cluster(tcp_proxy.cluster)
    if proxy is None:
        return "direct", "connects to the original address", None
    hostname = tcp_proxy.tunneling_config.hostname
    target = str(probe) if "REQUESTED_SERVER_NAME" in hostname else f"{_address(probe)}:{probe.port}"
    return f"proxy {proxy} ({policy.proxies[proxy].display_url})", f"sends CONNECT {target}", proxy


def _address(probe: Probe) -> str:
    if probe.ip is None:
        return "<destination address>"
    return f"[{probe.ip}]" if probe.ip.version == 6 else str(probe.ip)

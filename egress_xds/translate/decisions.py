"""The ordered list of routing decisions for a policy: the single source of truth for where traffic goes.

Order: built-in pass-through (loopback, the proxies' own addresses), the policy's rules, the NO_PROXY entries (as
`direct` rules), and then the defaults (httpsProxy for TLS, httpProxy for plain HTTP, rawTcp for the rest).
Envoy's listener filter-chain matcher and route tables are both generated from this list, first match wins.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from egress_xds.policy.destinations import DomainPattern
from egress_xds.policy.model import DENY, DIRECT, Action, EgressPolicy, RawTcpMode, Rule, proxy_or_direct

LOOPBACK_NETWORKS = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class Decision:
    """One ordered rule and where it came from (for humans: access logs, `explain`)."""

    rule: Rule
    origin: str
    untouched: bool = False  # pass the TCP stream through as is, without looking at HTTP
    # A NO_PROXY entry. NO_PROXY is a set (every entry means direct), so its entries have no order among
    # themselves: which of two matching entries is named as the reason does not change where traffic goes.
    no_proxy: bool = False

    @property
    def action(self) -> Action:
        return self.rule.action


def ordered_decisions(policy: EgressPolicy) -> tuple[Decision, ...]:
    decisions = [
        Decision(
            Rule("loopback", (DomainPattern.exact("localhost"),), LOOPBACK_NETWORKS, (), DIRECT),
            "built-in: loopback and localhost are always direct",
            untouched=True,
        )
    ]
    for proxy in sorted(policy.proxies.values(), key=lambda item: item.name):
        for endpoint in proxy.endpoints:
            if endpoint.is_ip:
                network = ipaddress.ip_network(endpoint.host)
                decisions.append(
                    Decision(
                        Rule(f"proxy {proxy.name}", (), (network,), (endpoint.port,), DIRECT),
                        f"built-in: the address of proxy {proxy.name} ({endpoint}) passes through untouched",
                        untouched=True,
                    )
                )
    for position, rule in enumerate(policy.rules):
        decisions.append(Decision(rule, f"rule {position + 1} {rule.name!r}"))
    for entry in policy.no_proxy.entries:
        ports = (entry.port,) if entry.port is not None else ()
        domains = (entry.domain,) if entry.domain is not None else ()
        networks = (entry.network,) if entry.network is not None else ()
        decisions.append(
            Decision(
                Rule(f"noProxy {entry.raw}", domains, networks, ports, DIRECT),
                f"noProxy entry {entry.raw!r}",
                no_proxy=True,
            )
        )
    if policy.no_proxy.everything:
        decisions.append(Decision(Rule("noProxy *", (), (), (), DIRECT), "noProxy entry '*'", no_proxy=True))
    return tuple(decisions)


def default_tls_action(policy: EgressPolicy) -> Action:
    """TLS (and any stream whose name is its SNI) uses httpsProxy; unset means direct."""
    return proxy_or_direct(policy.https_proxy)


def default_http_action(policy: EgressPolicy) -> Action:
    """Plain HTTP uses httpProxy; unset means direct."""
    return proxy_or_direct(policy.http_proxy)


def default_raw_tcp_action(policy: EgressPolicy) -> Action:
    """TCP with neither SNI nor HTTP: tunnel `CONNECT ip:port` through httpsProxy, or as rawTcp says."""
    if policy.raw_tcp is RawTcpMode.DIRECT:
        return DIRECT
    if policy.raw_tcp is RawTcpMode.DENY:
        return DENY
    return proxy_or_direct(policy.https_proxy)

"""A loaded policy as `egress_xds.admin.v1.PolicySummary`: everything a human checks, nothing secret.

Proxies are shown by `display_url` (never with user:password); credentials only by their kind and user name.
"""

from __future__ import annotations

from egress_xds.admin.v1 import admin_pb2
from egress_xds.policy.model import EgressPolicy, NodeSelector, Proxy


def policy_summary(policy: EgressPolicy) -> admin_pb2.PolicySummary:
    summary = admin_pb2.PolicySummary(
        name=policy.name,
        source=policy.source,
        nodes=selector_text(policy.selector),
        http_proxy=policy.http_proxy.name if policy.http_proxy is not None else "",
        https_proxy=policy.https_proxy.name if policy.https_proxy is not None else "",
        no_proxy=[str(entry) for entry in policy.no_proxy.entries],
        raw_tcp=policy.raw_tcp.value,
        standalone_listeners=[
            f"{listener.name}: {_address(listener.listen_host, listener.listen_port)} -> "
            f"{_address(listener.target_host, listener.target_port)} ({listener.action})"
            for listener in policy.standalone.listeners
        ],
    )
    forward = policy.standalone.forward_proxy
    if forward is not None:
        summary.forward_proxy = _address(forward.listen_host, forward.listen_port)
    summary.proxies.extend(proxy_summary(proxy) for _, proxy in sorted(policy.proxies.items()))
    for number, rule in enumerate(policy.rules, start=1):
        summary.rules.append(
            admin_pb2.RuleSummary(
                number=number,
                name=rule.name,
                domains=[str(domain) for domain in rule.domains],
                cidrs=[str(cidr) for cidr in rule.cidrs],
                ports=list(rule.ports),
                action=str(rule.action),
            )
        )
    return summary


def proxy_summary(proxy: Proxy) -> admin_pb2.ProxySummary:
    credentials = "none"
    if proxy.credentials is not None:
        user = proxy.credentials.username
        credentials = f"basic (user {user})" if user else "header"
    return admin_pb2.ProxySummary(
        name=proxy.name,
        url=proxy.display_url,
        endpoints=[f"{endpoint} priority {endpoint.priority}" for endpoint in proxy.endpoints],
        credentials=credentials,
    )


def selector_text(selector: NodeSelector) -> str:
    """`id=GLOB key=value key In (a,b)`; `*` alone means every node."""
    parts = [f"id={selector.id_glob}"] if selector.id_glob != "*" else []
    if selector.service_account_glob is not None:
        parts.append(f"serviceAccount={selector.service_account_glob}")
    parts += [f"{key}={value}" for key, value in sorted(selector.metadata.items())]
    for requirement in selector.requirements:
        values = f" ({','.join(sorted(requirement.values))})" if requirement.values else ""
        parts.append(f"{requirement.key} {requirement.operator.value}{values}")
    return " ".join(parts) or "*"


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

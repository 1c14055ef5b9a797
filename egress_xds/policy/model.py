"""The egress policy model: immutable values built by the parser, read by the translator.

Everything here is validated and resolved already: a rule's action holds the proxy itself, not its name, so the
translator never looks a name up and never has to second-guess a value.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from egress_xds.policy.destinations import DomainPattern, IPNetwork, is_ip_literal
from egress_xds.policy.no_proxy import NoProxy


class Scheme(enum.Enum):
    """How Envoy talks to the proxy itself: plain TCP or TLS."""

    HTTP = "http"
    HTTPS = "https"


@dataclass(frozen=True)
class ProxyEndpoint:
    """One address of a proxy. Lower priority numbers are preferred; higher ones are failover."""

    host: str
    port: int
    priority: int = 0

    @property
    def is_ip(self) -> bool:
        return is_ip_literal(self.host)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class HealthCheck:
    """Active TCP-connect health check; needed so that failover really skips a dead primary."""

    interval_ms: int = 5000
    timeout_ms: int = 1000
    unhealthy_threshold: int = 2
    healthy_threshold: int = 1


@dataclass(frozen=True)
class Credentials:
    """What Envoy sends as `Proxy-Authorization`. `repr` never shows the value."""

    header_value: str = field(repr=False)
    username: str = ""

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, header_value=<redacted>)"


@dataclass(frozen=True)
class Proxy:
    """A named corporate forward proxy (possibly several endpoints for failover)."""

    name: str
    scheme: Scheme
    endpoints: tuple[ProxyEndpoint, ...]
    credentials: Credentials | None = None
    ca_file: str | None = None
    sni: str | None = None
    health_check: HealthCheck | None = None

    @property
    def display_url(self) -> str:
        """The proxy as a URL without credentials, safe for logs."""
        return f"{self.scheme.value}://{self.endpoints[0]}"


@dataclass(frozen=True)
class Direct:
    """To the original destination, without a proxy."""

    def __str__(self) -> str:
        return "direct"


@dataclass(frozen=True)
class Deny:
    """Refused: a TLS or TCP connection is closed, plain HTTP is answered 403."""

    def __str__(self) -> str:
        return "deny"


@dataclass(frozen=True)
class ViaProxy:
    """Through this proxy: a CONNECT tunnel, or plain HTTP in absolute form."""

    proxy: Proxy

    def __str__(self) -> str:
        return f"proxy {self.proxy.name}"


Action = Direct | Deny | ViaProxy
DIRECT = Direct()
DENY = Deny()


def proxy_or_direct(proxy: Proxy | None) -> Action:
    """Where a default (httpProxy, httpsProxy) sends traffic: its proxy, or direct when it is unset."""
    return ViaProxy(proxy) if proxy is not None else DIRECT


@dataclass(frozen=True)
class Rule:
    """An ordered per-destination rule. It matches when (a domain OR a CIDR matches) AND the port matches.

    A rule with no domains and no CIDRs matches every destination on its ports; with no ports, every port.
    Domain patterns only apply where a name is visible (TLS SNI, HTTP Host).
    """

    name: str
    domains: tuple[DomainPattern, ...] = ()
    cidrs: tuple[IPNetwork, ...] = ()
    ports: tuple[int, ...] = ()
    action: Action = DIRECT

    @property
    def matches_any_destination(self) -> bool:
        return not self.domains and not self.cidrs


class SelectorOperator(enum.Enum):
    """The operators of a Kubernetes label selector's `matchExpressions`, with the same meaning."""

    IN = "In"
    NOT_IN = "NotIn"  # also true when the key is absent, as in Kubernetes
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


@dataclass(frozen=True)
class MetadataRequirement:
    """One `matchExpressions` entry applied to flattened node metadata (pod labels are `labels.<key>`).

    Exact values (`NodeSelector.metadata`) cannot say "has a namespace, whatever it is" or "tier is not batch";
    Kubernetes workload selectors need both.
    """

    key: str
    operator: SelectorOperator
    values: frozenset[str] = frozenset()


@dataclass(frozen=True)
class NodeSelector:
    """Which Envoy nodes a policy applies to: a glob on the node id, a glob on its service account (metadata
    `serviceAccount`, verified with client certificates), exact node metadata values, and label-selector
    requirements on the metadata. All of them must hold."""

    id_glob: str = "*"
    metadata: Mapping[str, str] = field(default_factory=dict)
    requirements: tuple[MetadataRequirement, ...] = ()
    service_account_glob: str | None = None  # None: any node, with or without a service account

    def __hash__(self) -> int:
        return hash((self.id_glob, tuple(sorted(self.metadata.items())), self.requirements, self.service_account_glob))


class RawTcpMode(enum.Enum):
    """What happens to TCP that carries neither TLS SNI nor HTTP (so only IP rules can apply)."""

    TUNNEL = "tunnel"  # CONNECT ip:port through the HTTPS proxy
    DIRECT = "direct"
    DENY = "deny"


@dataclass(frozen=True)
class ExplicitListener:
    """Standalone node: a local address that always leads to one external host:port."""

    name: str
    listen_host: str
    listen_port: int
    target_host: str
    target_port: int
    action: Action


@dataclass(frozen=True)
class ForwardProxyListener:
    """Standalone node: a local HTTP proxy applications can use; Envoy adds the corporate credentials. Plain
    HTTP goes to `http_proxy`, CONNECT requests to `https_proxy` (each falls back to the other when unset)."""

    listen_host: str
    listen_port: int
    http_proxy: Proxy
    https_proxy: Proxy


@dataclass(frozen=True)
class Standalone:
    listeners: tuple[ExplicitListener, ...] = ()
    forward_proxy: ForwardProxyListener | None = None


@dataclass(frozen=True)
class EgressPolicy:
    """One effective policy. `proxies` holds every proxy by name; the defaults and every action refer to those
    same objects (`http_proxy`/`https_proxy` None means direct)."""

    name: str
    proxies: Mapping[str, Proxy]
    http_proxy: Proxy | None
    https_proxy: Proxy | None
    no_proxy: NoProxy
    rules: tuple[Rule, ...] = ()
    raw_tcp: RawTcpMode = RawTcpMode.TUNNEL
    selector: NodeSelector = field(default_factory=NodeSelector)
    standalone: Standalone = field(default_factory=Standalone)
    source: str = ""  # where it came from (file path, "environment", ...) for humans

    def __hash__(self) -> int:
        return hash((self.name, self.source))


@dataclass(frozen=True)
class PolicySet:
    """All policies a server holds, in order; a node gets the first whose selector matches it."""

    policies: tuple[EgressPolicy, ...]


def replace_proxies(policy: EgressPolicy, replacements: Mapping[str, Proxy]) -> EgressPolicy:
    """The policy with some proxies replaced by name (e.g. credentials from a Kubernetes Secret), every
    reference to them (defaults, rules, standalone listeners) following."""

    def resolved(proxy: Proxy) -> Proxy:
        return replacements.get(proxy.name, proxy)

    def resolved_action(action: Action) -> Action:
        return ViaProxy(resolved(action.proxy)) if isinstance(action, ViaProxy) else action

    standalone = policy.standalone
    forward = standalone.forward_proxy
    if forward is not None:
        forward = dataclasses.replace(
            forward, http_proxy=resolved(forward.http_proxy), https_proxy=resolved(forward.https_proxy)
        )
    return dataclasses.replace(
        policy,
        proxies={name: resolved(proxy) for name, proxy in policy.proxies.items()},
        http_proxy=resolved(policy.http_proxy) if policy.http_proxy is not None else None,
        https_proxy=resolved(policy.https_proxy) if policy.https_proxy is not None else None,
        rules=tuple(dataclasses.replace(rule, action=resolved_action(rule.action)) for rule in policy.rules),
        standalone=Standalone(
            tuple(dataclasses.replace(item, action=resolved_action(item.action)) for item in standalone.listeners),
            dataclasses.replace(
                forward, http_proxy=resolved(forward.http_proxy), https_proxy=resolved(forward.https_proxy)
            )
            if forward is not None
            else None,
        ),
    )

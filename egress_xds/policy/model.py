"""The egress policy model: immutable values built by the parser, read by the translator.

Everything here is validated already; the translator never has to second-guess a value.
"""

from __future__ import annotations

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


class ActionKind(enum.Enum):
    PROXY = "proxy"
    DIRECT = "direct"
    DENY = "deny"


@dataclass(frozen=True)
class Action:
    kind: ActionKind
    proxy: str | None = None  # the proxy name when kind is PROXY

    def __str__(self) -> str:
        return f"proxy {self.proxy}" if self.kind is ActionKind.PROXY else self.kind.value


DIRECT = Action(ActionKind.DIRECT)
DENY = Action(ActionKind.DENY)


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
    """Which Envoy nodes a policy applies to: a glob on the node id, exact node metadata values, and
    label-selector requirements on the metadata. All of them must hold."""

    id_glob: str = "*"
    metadata: Mapping[str, str] = field(default_factory=dict)
    requirements: tuple[MetadataRequirement, ...] = ()

    def __hash__(self) -> int:
        return hash((self.id_glob, tuple(sorted(self.metadata.items())), self.requirements))


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
    """Standalone node: a local HTTP proxy applications can use; Envoy adds the corporate credentials."""

    listen_host: str
    listen_port: int


@dataclass(frozen=True)
class Standalone:
    listeners: tuple[ExplicitListener, ...] = ()
    forward_proxy: ForwardProxyListener | None = None


@dataclass(frozen=True)
class EgressPolicy:
    """One effective policy. `http_proxy`/`https_proxy` are proxy names (None means direct)."""

    name: str
    proxies: Mapping[str, Proxy]
    http_proxy: str | None
    https_proxy: str | None
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

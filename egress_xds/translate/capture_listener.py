"""The sidecar's capture listener on port 15001: every outbound TCP connection of the pod lands here.

`original_dst` restores where the application was connecting, `tls_inspector` reads the SNI, `http_inspector`
recognises plain HTTP. An ordered filter-chain matcher then applies the policy's decisions, first match wins:

1. each decision in order (built-in pass-through, rules, NO_PROXY): by SNI for TLS, by destination CIDR and port
   for everything (plain HTTP that may still be claimed by an earlier domain rule gets an HTTP chain of its own);
2. plain HTTP -> the HTTP chain (Host-based routes, then httpProxy);
3. TLS -> httpsProxy tunnel; anything else -> rawTcp.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from envoy.config.core.v3.address_pb2 import Address, SocketAddress
from envoy.config.core.v3.base_pb2 import TrafficDirection
from envoy.config.listener.v3.listener_components_pb2 import FilterChain, ListenerFilter
from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.listener.http_inspector.v3.http_inspector_pb2 import HttpInspector
from envoy.extensions.filters.listener.original_dst.v3.original_dst_pb2 import OriginalDst
from envoy.extensions.filters.listener.tls_inspector.v3.tls_inspector_pb2 import TlsInspector
from google.protobuf.message import Message

from egress_xds.defaults import CAPTURE_PORT
from egress_xds.policy.model import Action, Deny, EgressPolicy, Rule, ViaProxy
from egress_xds.translate import chain_matcher, names
from egress_xds.translate.decisions import (
    Decision,
    default_http_action,
    default_raw_tcp_action,
    default_tls_action,
    ordered_decisions,
)
from egress_xds.translate.http_routes import connection_manager
from egress_xds.translate.protobuf import milliseconds, typed
from egress_xds.translate.tcp_proxy import TARGET_BY_ADDRESS, TARGET_BY_NAME, cluster_filter, tunnel_filter

# How long the inspectors wait for the client's first bytes. Server-first protocols (SSH, SMTP, MySQL) send
# nothing, so after this delay the connection continues as raw TCP.
LISTENER_FILTERS_TIMEOUT_MS = 1000


Entry = tuple[chain_matcher.Predicate | None, str, str]  # (predicate, chain, origin of the decision)
DEFAULT_HTTP_ORIGIN = "default: plain HTTP uses httpProxy"
DEFAULT_TLS_ORIGIN = "default: TLS uses httpsProxy"
DEFAULT_RAW_ORIGIN = "default: other TCP as rawTcp says"


def capture_listener(policy: EgressPolicy, port: int = CAPTURE_PORT) -> Listener:
    chains: dict[str, FilterChain] = {}
    entries: list[Entry] = []
    host_routes = _HostRoutes()
    for position, decision in enumerate(ordered_decisions(policy), start=1):
        rule = decision.rule
        ports = [chain_matcher.destination_port_in(rule.ports)] if rule.ports else []
        if rule.domains:
            by_name = [chain_matcher.is_tls(), chain_matcher.server_name_in(rule.domains), *ports]
            by_name_chain = _action_chain(policy, decision.action, chains, True)
            entries.append((chain_matcher.all_of(by_name), by_name_chain, decision.origin))
        if rule.cidrs or rule.matches_any_destination:
            destination = [chain_matcher.destination_in(rule.cidrs, f"rule_{position}_")] if rule.cidrs else []
            layer4 = destination + ports
            earlier = host_routes.deciding_before(decision)
            if not decision.untouched and (isinstance(decision.action, ViaProxy) or earlier):
                # Plain HTTP matched by address needs an HTTP chain when it goes through a proxy (absolute form),
                # or when an earlier domain rule, visible only in the Host header, claims it with another action.
                http_chain = names.rule_http_chain(position)
                chains[http_chain] = _http_chain(policy, http_chain, earlier, decision)
                http_entry = chain_matcher.all_of([*layer4, chain_matcher.is_plain_http()])
                entries.append((http_entry, http_chain, decision.origin))
            entries.extend(_stream_entries(policy, layer4, decision.action, chains, decision.origin))
            if not layer4:  # matches every destination: nothing after it can apply
                return _listener(port, chains, entries)
        if rule.domains and not decision.untouched:
            host_routes.add(decision)
    default_http = Decision(Rule("default", action=default_http_action(policy)), DEFAULT_HTTP_ORIGIN)
    chains[names.HTTP_CHAIN] = _http_chain(policy, names.HTTP_CHAIN, host_routes.decisions, default_http)
    entries.append((chain_matcher.is_plain_http(), names.HTTP_CHAIN, DEFAULT_HTTP_ORIGIN))
    tls = [chain_matcher.is_tls()]
    entries.extend(_stream_entries(policy, tls, default_tls_action(policy), chains, DEFAULT_TLS_ORIGIN))
    entries.extend(_stream_entries(policy, [], default_raw_tcp_action(policy), chains, DEFAULT_RAW_ORIGIN))
    return _listener(port, chains, entries)


@dataclass
class _HostRoutes:
    """The domain decisions a Host header can match, in policy order, for the HTTP chains of address decisions.

    An address decision's HTTP chain routes by Host through the domain decisions before it, then falls back to its
    own action. Two cuts keep LDS linear in the policy (a NO_PROXY of 500 domains and 50 CIDRs would otherwise
    repeat the 500 domains in 50 chains):
    - for a NO_PROXY address, only the domain decisions up to the last rule: NO_PROXY entries are a set, all
      direct, so a NO_PROXY domain after the last rule decides what the NO_PROXY address decides anyway;
    - no chain at all when none of those decisions has another action than the address decision's own.
    A request both would match is then attributed to the address entry."""

    decisions: list[Decision] = field(default_factory=list)
    _rules_end: int = 0  # 1 + position of the last decision that is a rule (not a NO_PROXY entry)
    _first: list[tuple[Action, int]] = field(default_factory=list)  # each action and where it first appears

    def add(self, decision: Decision) -> None:
        if not any(action == decision.action for action, _ in self._first):
            self._first.append((decision.action, len(self.decisions)))
        self.decisions.append(decision)
        if not decision.no_proxy:
            self._rules_end = len(self.decisions)

    def deciding_before(self, decision: Decision) -> list[Decision]:
        """The domain decisions an HTTP chain for `decision` must try first; empty: it needs none."""
        end = self._rules_end if decision.no_proxy else len(self.decisions)
        if all(action == decision.action or first >= end for action, first in self._first):
            return []
        return self.decisions[:end]


def _stream_entries(
    policy: EgressPolicy,
    conditions: list[chain_matcher.Predicate],
    action: Action,
    chains: dict[str, FilterChain],
    origin: str,
) -> list[Entry]:
    """Entries for TLS / raw TCP streams matching `conditions` (none: everything). A tunnel is opened to the SNI
    when the client sent one, else to the destination address."""
    entries: list[Entry] = []
    if isinstance(action, ViaProxy):
        with_name = chain_matcher.all_of([*conditions, chain_matcher.has_server_name()])
        entries.append((with_name, _action_chain(policy, action, chains, True), origin))
    entries.append((chain_matcher.all_of(conditions), _action_chain(policy, action, chains, False), origin))
    return entries


def _action_chain(policy: EgressPolicy, action: Action, chains: dict[str, FilterChain], by_name: bool) -> str:
    """The filter chain for TLS / raw TCP with this action, created on first use."""
    if isinstance(action, ViaProxy):
        name = names.tunnel_chain(action.proxy.name, by_name=by_name)
        if name not in chains:
            target = TARGET_BY_NAME if by_name else TARGET_BY_ADDRESS
            chains[name] = FilterChain(name=name, filters=[tunnel_filter(action.proxy, target, name)])
        return name
    if isinstance(action, Deny):
        chains.setdefault(names.DENY_CHAIN, _cluster_chain(names.DENY_CHAIN, names.DENY_CLUSTER))
        return names.DENY_CHAIN
    chains.setdefault(names.PASSTHROUGH_CHAIN, _cluster_chain(names.PASSTHROUGH_CHAIN, names.PASSTHROUGH_CLUSTER))
    return names.PASSTHROUGH_CHAIN


def _cluster_chain(name: str, cluster: str) -> FilterChain:
    return FilterChain(name=name, filters=[cluster_filter(cluster, name)])


def _http_chain(policy: EgressPolicy, name: str, domain_decisions: list[Decision], fallback: Decision) -> FilterChain:
    """Routes by Host: `domain_decisions` in order, then `fallback` for everything else."""
    manager = connection_manager(policy, name, domain_decisions, fallback.action, fallback.origin)
    return FilterChain(name=name, filters=[manager])


def _listener(port: int, chains: dict[str, FilterChain], entries: list[Entry]) -> Listener:
    return Listener(
        name=names.CAPTURE_LISTENER,
        address=Address(socket_address=SocketAddress(address="0.0.0.0", port_value=port)),
        traffic_direction=TrafficDirection.OUTBOUND,
        listener_filters=[
            _listener_filter("envoy.filters.listener.original_dst", OriginalDst()),
            _listener_filter("envoy.filters.listener.tls_inspector", TlsInspector()),
            _listener_filter("envoy.filters.listener.http_inspector", HttpInspector()),
        ],
        listener_filters_timeout=milliseconds(LISTENER_FILTERS_TIMEOUT_MS),
        continue_on_listener_filters_timeout=True,
        filter_chains=[chains[name] for name in sorted(chains)],
        filter_chain_matcher=chain_matcher.first_match(entries),
    )


def _listener_filter(name: str, config: Message) -> ListenerFilter:
    return ListenerFilter(name=name, typed_config=typed(config))

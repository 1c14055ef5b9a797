"""The policy decision of a captured TLS / TCP row, for GetTraffic.

Envoy's TCP access-log entry does not say which matcher entry chose its chain (several rules share one chain), so
the decision is read the way `egress-xds explain` reads it: from the node's capture listener, for the row's name,
address and port. It is shown only when that listener sends the row where Envoy did (same kind and proxy); after a
policy change that moved the destination it stays empty. At most `MAX_EXPLAINED` rows per answer are explained,
so an answer never holds the event loop (and the ADS streams on it) for long.
"""

from __future__ import annotations

from collections.abc import Callable

from envoy.config.listener.v3.listener_pb2 import Listener

from egress_xds.explain.destination import Probe, TrafficKind
from egress_xds.explain.listener_eval import UnsupportedConfig, choose_chain
from egress_xds.policy.destinations import parse_host_port, parse_ip
from egress_xds.policy.model import PolicySet
from egress_xds.traffic.store import DestinationStats
from egress_xds.translate import names
from egress_xds.translate.capture_listener import capture_listener

MAX_EXPLAINED = 500


def decision_finder(policies: PolicySet) -> Callable[[str, DestinationStats], str]:
    """A function (policy name, row) -> decision or "", with the capture listeners built once per answer."""
    by_name = {policy.name: policy for policy in policies.policies}
    listeners: dict[str, Listener] = {}
    budget = [MAX_EXPLAINED]

    def decision(policy_name: str, row: DestinationStats) -> str:
        if row.decision or row.protocol != "tcp" or not row.address or policy_name not in by_name or budget[0] <= 0:
            return row.decision
        budget[0] -= 1
        if policy_name not in listeners:
            listeners[policy_name] = capture_listener(by_name[policy_name])
        probe = _probe(row)
        if probe is None:
            return ""
        try:
            choice = choose_chain(listeners[policy_name], probe)
        except UnsupportedConfig:
            return ""
        return choice.origin if _path_of(choice.chain) == (row.kind, row.proxy) else ""

    return decision


def _probe(row: DestinationStats) -> Probe | None:
    try:
        host, _ = parse_host_port(row.destination)
        address, port = parse_host_port(row.address)
    except ValueError:
        return None
    ip = parse_ip(address)
    if ip is None:
        return None
    name = None if parse_ip(host) is not None else host
    return Probe(name=name, ip=ip, port=port, protocol=TrafficKind.TLS if name else TrafficKind.TCP)


def _path_of(chain: str) -> tuple[str, str]:
    """(kind, proxy) of a capture listener chain: `tunnel-corp[-ip]`, `passthrough`, `deny`, `capture-loop`."""
    if chain == names.PASSTHROUGH_CHAIN:
        return "direct", ""
    if chain in (names.DENY_CHAIN, names.CAPTURE_LOOP_CHAIN):
        return "deny", ""
    if chain.startswith("tunnel-"):
        return "proxy", chain.removeprefix("tunnel-").removesuffix("-ip")
    return "", ""

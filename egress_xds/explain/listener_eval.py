"""Evaluate the capture listener that egress-xds generated, as Envoy would, for one connection.

Only the matcher inputs and string matchers the translator emits are understood; anything else raises, so an
explanation can never silently differ from what Envoy does with the same config.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from envoy.config.listener.v3.listener_pb2 import Listener
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
)
from envoy.extensions.filters.network.tcp_proxy.v3.tcp_proxy_pb2 import TcpProxy
from envoy.extensions.matching.input_matchers.ip.v3.ip_pb2 import Ip
from google.protobuf.wrappers_pb2 import StringValue

from egress_xds.explain.destination import Probe, TrafficKind

_INPUTS = {
    "envoy.extensions.matching.common_inputs.network.v3.DestinationIPInput": "ip",
    "envoy.extensions.matching.common_inputs.network.v3.DestinationPortInput": "port",
    "envoy.extensions.matching.common_inputs.network.v3.ServerNameInput": "sni",
    "envoy.extensions.matching.common_inputs.network.v3.TransportProtocolInput": "transport",
    "envoy.extensions.matching.common_inputs.network.v3.ApplicationProtocolInput": "alpn",
    "envoy.extensions.matching.common_inputs.network.v3.SourceTypeInput": "source_type",
}


class UnsupportedConfig(Exception):
    """The config uses a matcher this evaluator does not know (a translator change without an evaluator change)."""


@dataclass(frozen=True)
class ChainChoice:
    chain: str
    origin: str  # the policy decision that produced the matcher entry


@dataclass(frozen=True)
class RouteChoice:
    origin: str
    cluster: str | None  # None: a direct response
    status: int | None


def choose_chain(listener: Listener, probe: Probe) -> ChainChoice:
    """The filter chain Envoy's ordered `filter_chain_matcher` selects for this connection."""
    inputs = _inputs(probe)
    matcher = listener.filter_chain_matcher
    for field_matcher in matcher.matcher_list.matchers:
        if _predicate(field_matcher.predicate, inputs):
            return _choice(field_matcher.on_match)
    if matcher.HasField("on_no_match"):
        return _choice(matcher.on_no_match)
    raise UnsupportedConfig("no filter chain matched and the listener has no default: Envoy would close it")


def network_filter(listener: Listener, chain: str) -> TcpProxy | HttpConnectionManager:
    """The (single) network filter of a chain, unpacked."""
    (found,) = [item for item in listener.filter_chains if item.name == chain]
    packed = found.filters[0].typed_config
    message: TcpProxy | HttpConnectionManager = (
        TcpProxy() if packed.Is(TcpProxy.DESCRIPTOR) else HttpConnectionManager()
    )
    packed.Unpack(message)
    return message


def choose_route(manager: HttpConnectionManager, authority: str) -> RouteChoice:
    """The first route of the (single, `*`) virtual host whose `:authority` matcher accepts the Host header."""
    for route in manager.route_config.virtual_hosts[0].routes:
        if route.match.HasField("connect_matcher"):
            continue
        if all(_header_matches(header, authority) for header in route.match.headers):
            if route.HasField("direct_response"):
                return RouteChoice(route.name, None, route.direct_response.status)
            return RouteChoice(route.name, route.route.cluster, None)
    raise UnsupportedConfig("no route matched")


def _inputs(probe: Probe) -> dict[str, str | None]:
    tls = probe.protocol is TrafficKind.TLS
    return {
        "ip": str(probe.ip) if probe.ip is not None else None,
        "port": str(probe.port),
        "sni": probe.name if tls else None,
        "transport": "tls" if tls else "raw_buffer",
        "alpn": "'http/1.1'" if probe.protocol is TrafficKind.HTTP else None,
        # Envoy says "local" for a source on loopback or with the destination's own address. A probe is a
        # connection from the pod: only a loopback destination (the pod's own addresses are not known here) is.
        "source_type": "local" if probe.ip is not None and probe.ip.is_loopback else None,
    }


def _choice(on_match: Any) -> ChainChoice:
    value = StringValue()
    on_match.action.typed_config.Unpack(value)
    return ChainChoice(chain=value.value, origin=on_match.action.name)


def _predicate(predicate: Any, inputs: dict[str, str | None]) -> bool:
    kind = predicate.WhichOneof("match_type")
    if kind == "or_matcher":
        return any(_predicate(item, inputs) for item in predicate.or_matcher.predicate)
    if kind == "and_matcher":
        return all(_predicate(item, inputs) for item in predicate.and_matcher.predicate)
    if kind == "not_matcher":
        return not _predicate(predicate.not_matcher, inputs)
    single = predicate.single_predicate
    input_name = _INPUTS.get(single.input.typed_config.type_url.rsplit("/", 1)[-1])
    if input_name is None:
        raise UnsupportedConfig(f"matcher input {single.input.typed_config.type_url}")
    value = inputs[input_name]
    if value is None:  # Envoy: an input without data matches nothing
        return False
    if single.HasField("custom_match"):
        ip_matcher = Ip()
        if not single.custom_match.typed_config.Unpack(ip_matcher):
            raise UnsupportedConfig(f"custom matcher {single.custom_match.typed_config.type_url}")
        address = ipaddress.ip_address(value)
        return any(
            address in ipaddress.ip_network(f"{cidr.address_prefix}/{cidr.prefix_len.value}")
            for cidr in ip_matcher.cidr_ranges
        )
    return _string_matches(single.value_match, value)


def _string_matches(matcher: Any, value: str) -> bool:
    kind = matcher.WhichOneof("match_pattern")
    pattern = getattr(matcher, kind)
    if kind == "safe_regex":
        return re.search(pattern.regex, value) is not None
    if matcher.ignore_case:
        value, pattern = value.lower(), pattern.lower()
    if kind == "exact":
        return bool(value == pattern)
    if kind == "prefix":
        return bool(value.startswith(pattern))
    if kind == "suffix":
        return bool(value.endswith(pattern))
    if kind == "contains":
        return pattern in value
    raise UnsupportedConfig(f"string matcher {kind}")


def _header_matches(header: Any, authority: str) -> bool:
    if header.name != ":authority" or not header.HasField("string_match"):
        raise UnsupportedConfig(f"route header matcher on {header.name}")
    return _string_matches(header.string_match, authority)

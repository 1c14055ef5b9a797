"""Predicates for the listener's `filter_chain_matcher` (Envoy's unified matcher API).

We use the matcher list rather than `filter_chain_match` because it is evaluated in order, first match wins, which
is exactly the semantics of the policy's rules; `filter_chain_match` picks the most specific chain instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias, cast

from envoy.config.core.v3.address_pb2 import CidrRange
from envoy.extensions.matching.common_inputs.network.v3 import network_inputs_pb2 as inputs
from envoy.extensions.matching.input_matchers.ip.v3.ip_pb2 import Ip
from google.protobuf.message import Message
from google.protobuf.wrappers_pb2 import StringValue, UInt32Value
from xds.core.v3.extension_pb2 import TypedExtensionConfig
from xds.type.matcher.v3.matcher_pb2 import Matcher
from xds.type.matcher.v3.regex_pb2 import RegexMatcher
from xds.type.matcher.v3.string_pb2 import StringMatcher

from egress_xds.policy.destinations import DomainPattern, IPNetwork
from egress_xds.translate.protobuf import typed

_Predicate = Matcher.MatcherList.Predicate
Predicate: TypeAlias = Message  # a Matcher.MatcherList.Predicate (the generated classes carry no static types)


def _predicate(**fields: object) -> Predicate:
    return cast(Predicate, _Predicate(**fields))


def _input(name: str, message: Message) -> TypedExtensionConfig:
    return TypedExtensionConfig(name=name, typed_config=typed(message))


def _single(input_config: TypedExtensionConfig, value: StringMatcher) -> Predicate:
    return _predicate(single_predicate=_Predicate.SinglePredicate(input=input_config, value_match=value))


def destination_in(networks: Sequence[IPNetwork], stat_prefix: str) -> Predicate:
    ip_matcher = Ip(
        cidr_ranges=[
            CidrRange(address_prefix=str(network.network_address), prefix_len=UInt32Value(value=network.prefixlen))
            for network in networks
        ],
        stat_prefix=stat_prefix,
    )
    return _predicate(
        single_predicate=_Predicate.SinglePredicate(
            input=_input("destination-ip", inputs.DestinationIPInput()),
            custom_match=TypedExtensionConfig(name="ip", typed_config=typed(ip_matcher)),
        )
    )


def destination_port_in(ports: Sequence[int]) -> Predicate:
    port_input = _input("destination-port", inputs.DestinationPortInput())
    return any_of([_single(port_input, StringMatcher(exact=str(port))) for port in ports])


def from_this_host() -> Predicate:
    """Envoy's SourceTypeInput: the source is a loopback address or the same address as the destination (after
    `original_dst`), i.e. the connection was made to this host itself, not redirected to it by capture."""
    source_type = _input("source-type", inputs.SourceTypeInput())
    return _single(source_type, StringMatcher(exact="local"))


def server_name_in(domains: Sequence[DomainPattern]) -> Predicate:
    name_input = _input("server-name", inputs.ServerNameInput())
    matchers = []
    for domain in domains:
        if domain.apex:
            matchers.append(_single(name_input, StringMatcher(exact=domain.suffix, ignore_case=True)))
        if domain.subdomains:
            matchers.append(_single(name_input, StringMatcher(suffix="." + domain.suffix, ignore_case=True)))
    return any_of(matchers)


def has_server_name() -> Predicate:
    """The client sent an SNI (an absent SNI gives the input no value, so no matcher matches)."""
    non_empty = StringMatcher(safe_regex=RegexMatcher(google_re2=RegexMatcher.GoogleRE2(), regex="^.+$"))
    return _single(_input("server-name", inputs.ServerNameInput()), non_empty)


def is_tls() -> Predicate:
    """Set by tls_inspector when the stream starts with a TLS ClientHello."""
    return _single(_input("transport-protocol", inputs.TransportProtocolInput()), StringMatcher(exact="tls"))


def is_plain_http() -> Predicate:
    """http_inspector reports `'http/1.0'` or `'http/1.1'` (quoted) for cleartext HTTP/1; TLS is excluded."""
    protocol = _single(
        _input("application-protocol", inputs.ApplicationProtocolInput()), StringMatcher(prefix="'http/1.")
    )
    return _predicate(and_matcher=_Predicate.PredicateList(predicate=[protocol, negate(is_tls())]))


def any_of(predicates: Sequence[Predicate]) -> Predicate:
    if len(predicates) == 1:
        return predicates[0]
    return _predicate(or_matcher=_Predicate.PredicateList(predicate=list(predicates)))


def all_of(predicates: Sequence[Predicate]) -> Predicate | None:
    """None (match everything) for an empty list."""
    if not predicates:
        return None
    if len(predicates) == 1:
        return predicates[0]
    return _predicate(and_matcher=_Predicate.PredicateList(predicate=list(predicates)))


def negate(predicate: Predicate) -> Predicate:
    return _predicate(not_matcher=predicate)


def to_chain(chain_name: str, origin: str) -> Matcher.OnMatch:
    """Select `chain_name`. The action's name (an opaque identifier to Envoy) records the policy decision that
    produced this entry, so `egress-xds explain` reads the reason from the very config Envoy runs."""
    return Matcher.OnMatch(action=TypedExtensionConfig(name=origin, typed_config=typed(StringValue(value=chain_name))))


def first_match(entries: Sequence[tuple[Predicate | None, str, str]]) -> Matcher:
    """An ordered matcher from (predicate, chain, origin) entries; a None predicate matches everything (last)."""
    matcher = Matcher()
    for predicate, chain, origin in entries:
        if predicate is None:
            matcher.on_no_match.CopyFrom(to_chain(chain, origin))
            break
        matcher.matcher_list.matchers.append(
            Matcher.MatcherList.FieldMatcher(predicate=predicate, on_match=to_chain(chain, origin))
        )
    return matcher

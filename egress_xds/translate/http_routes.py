"""Plain HTTP: an http_connection_manager whose ordered routes apply the policy by the Host header.

Requests that go through a proxy leave in absolute form (`GET http://host/path`, see the `-http` proxy cluster);
direct ones go to the original destination. Envoy's own headers never reach the outside world.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from envoy.config.core.v3.base_pb2 import DataSource
from envoy.config.core.v3.protocol_pb2 import Http1ProtocolOptions
from envoy.config.listener.v3.listener_components_pb2 import Filter
from envoy.config.route.v3.route_components_pb2 import (
    DirectResponseAction,
    HeaderMatcher,
    Route,
    RouteAction,
    RouteMatch,
    VirtualHost,
)
from envoy.config.route.v3.route_pb2 import RouteConfiguration
from envoy.extensions.filters.http.router.v3.router_pb2 import Router
from envoy.extensions.filters.network.http_connection_manager.v3.http_connection_manager_pb2 import (
    HttpConnectionManager,
    HttpFilter,
)
from envoy.type.matcher.v3.regex_pb2 import RegexMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from google.protobuf.wrappers_pb2 import BoolValue

from egress_xds.policy.destinations import DomainPattern
from egress_xds.policy.model import Action, Deny, EgressPolicy, ViaProxy
from egress_xds.translate import names
from egress_xds.translate.access_log import request_logs
from egress_xds.translate.decisions import Decision
from egress_xds.translate.protobuf import milliseconds, typed
from egress_xds.translate.tcp_proxy import proxy_authorization_header

HCM_FILTER = "envoy.filters.network.http_connection_manager"
# Headers Envoy would add on its own; none of them may leak to the outside world.
ENVOY_REQUEST_HEADERS = ["x-forwarded-proto", "x-request-id", "x-envoy-expected-rq-timeout-ms"]
DENIED_STATUS = 403
# Envoy refuses a regex whose RE2 program is larger than 10,000 instructions (`re2.max_program_size.error_level`);
# a rule with a few hundred domains is one. An RE2 program has at most about one instruction per character of
# the pattern, so the domains of a rule are split over consecutive routes of the same action, each regex at most
# this many characters (first match wins, so the order and the meaning are the same).
MAX_REGEX_LENGTH = 5000


def connection_manager(
    policy: EgressPolicy,
    stat_prefix: str,
    domain_decisions: Sequence[Decision],
    fallback: Action,
    fallback_origin: str,
    *,
    connect_fallback: Action | None = None,
) -> Filter:
    """An HCM whose routes try `domain_decisions` in order by Host, then `fallback`.

    With `connect_fallback` (the standalone forward-proxy listener), CONNECT requests are routed too (to
    `connect_fallback` when no decision matches) and forwarded as CONNECT to the proxy, which carries the tunnel.
    """
    forward_connect = connect_fallback is not None
    routes: list[Route] = []
    for decision in domain_decisions:
        for authority in _authority_matchers(decision.rule.domains, decision.rule.ports):
            if forward_connect:
                routes.append(_route(policy, decision.action, _match(authority, connect=True), decision.origin))
            routes.append(_route(policy, decision.action, _match(authority, connect=False), decision.origin))
    if connect_fallback is not None:
        routes.append(_route(policy, connect_fallback, _match(None, connect=True), "default: httpsProxy"))
    routes.append(_route(policy, fallback, _match(None, connect=False), fallback_origin))
    route_config = RouteConfiguration(
        name=stat_prefix,
        virtual_hosts=[VirtualHost(name="egress", domains=["*"], routes=routes)],
        request_headers_to_remove=ENVOY_REQUEST_HEADERS,
    )
    manager = HttpConnectionManager(
        stat_prefix=stat_prefix,
        codec_type=HttpConnectionManager.AUTO,
        route_config=route_config,
        generate_request_id=BoolValue(value=False),
        server_header_transformation=HttpConnectionManager.PASS_THROUGH,
        http_filters=[
            HttpFilter(name="envoy.filters.http.router", typed_config=typed(Router(suppress_envoy_headers=True)))
        ],
        access_log=request_logs(stat_prefix),
        upgrade_configs=[HttpConnectionManager.UpgradeConfig(upgrade_type="websocket")],
        # HTTP/1.0 clients exist (Python 3.11's http.client sends `CONNECT host:port HTTP/1.0`); Envoy would
        # answer them 426 by default.
        http_protocol_options=Http1ProtocolOptions(accept_http_10=True),
    )
    if forward_connect:
        manager.upgrade_configs.append(HttpConnectionManager.UpgradeConfig(upgrade_type="CONNECT"))
    return Filter(name=HCM_FILTER, typed_config=typed(manager))


def _match(authority: HeaderMatcher | None, *, connect: bool) -> RouteMatch:
    match = RouteMatch()
    if connect:
        match.connect_matcher.SetInParent()
    else:
        match.prefix = "/"
    if authority is not None:
        match.headers.append(authority)
    return match


def _route(policy: EgressPolicy, action: Action, match: RouteMatch, origin: str) -> Route:
    route = Route(name=origin, match=match)
    if isinstance(action, Deny):
        body = DataSource(inline_string=f"egress-xds: denied by policy ({origin})\n")
        route.direct_response.CopyFrom(DirectResponseAction(status=DENIED_STATUS, body=body))
        return route
    if isinstance(action, ViaProxy):
        proxy = action.proxy
        route.route.CopyFrom(RouteAction(cluster=names.proxy_http_cluster(proxy.name), timeout=milliseconds(0)))
        if proxy.credentials is not None:
            route.request_headers_to_add.append(proxy_authorization_header(proxy.credentials))
    else:
        route.route.CopyFrom(RouteAction(cluster=names.PASSTHROUGH_CLUSTER, timeout=milliseconds(0)))
    if match.HasField("connect_matcher"):
        route.route.upgrade_configs.append(RouteAction.UpgradeConfig(upgrade_type="CONNECT"))
    return route


def _authority_matchers(domains: Sequence[DomainPattern], ports: Sequence[int]) -> list[HeaderMatcher]:
    """Match the Host / :authority header: any of the domains, an optional trailing dot, and the port rule; one
    matcher per group of domains whose regex stays within `MAX_REGEX_LENGTH`.

    A Host without a port means port 80 (HTTP's default), so it matches a rule's ports only when they include 80.
    """
    if not ports:
        port_part = "(?::[0-9]+)?"
    else:
        listed = "|".join(str(port) for port in ports)
        port_part = f"(?::(?:{listed}))" + ("?" if 80 in ports else "")
    frame = len(f"(?i)^(?:)\\.?{port_part}$")
    groups: list[list[str]] = [[]]
    length = frame
    for alternative in (_domain_alternative(domain) for domain in domains):
        if groups[-1] and length + len(alternative) + 1 > MAX_REGEX_LENGTH:
            groups.append([])
            length = frame
        groups[-1].append(alternative)
        length += len(alternative) + 1
    return [
        HeaderMatcher(
            name=":authority",
            string_match=StringMatcher(safe_regex=RegexMatcher(regex=f"(?i)^(?:{'|'.join(group)})\\.?{port_part}$")),
        )
        for group in groups
    ]


def _domain_alternative(domain: DomainPattern) -> str:
    escaped = re.escape(domain.suffix)
    if domain.apex and domain.subdomains:
        return f"(?:[^.:]+\\.)*{escaped}"
    if domain.subdomains:
        return f"(?:[^.:]+\\.)+{escaped}"
    return escaped

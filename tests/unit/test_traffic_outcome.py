"""What the proxy said, from Envoy's access-log entries: entry conversion and outcome classification.

The entries are the protobuf messages Envoy sends (`envoy.data.accesslog.v3`), built with the fields Envoy really
sets in tests/integration/test_traffic.py (UF with `tunnel_response:CODE`, the custom tags of our loggers)."""

from __future__ import annotations

import pytest
from envoy.config.core.v3.base_pb2 import RequestMethod
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry, TCPAccessLogEntry
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.traffic.entry import MAX_TEXT, from_http, from_tcp
from egress_xds.traffic.outcome import OUTCOMES, Outcome, classify


def tcp_entry(
    kind: str, proxy: str = "", *, failure: str = "", flags: tuple[str, ...] = (), sni: str = "", target: str = ""
) -> TCPAccessLogEntry:
    entry = TCPAccessLogEntry()
    common = entry.common_properties
    common.custom_tags.update({"egress.chain": "chain", "egress.kind": kind})
    if proxy:
        common.custom_tags["egress.proxy"] = proxy
    if target:
        common.custom_tags["egress.target"] = target
    common.downstream_local_address.socket_address.address = "10.0.0.7"
    common.downstream_local_address.socket_address.port_value = 443
    common.upstream_transport_failure_reason = failure
    common.tls_properties.tls_sni_hostname = sni
    for flag in flags:
        setattr(common.response_flags, {"UF": "upstream_connection_failure", "UH": "no_healthy_upstream"}[flag], True)
    entry.connection_properties.sent_bytes = 10
    entry.connection_properties.received_bytes = 20
    return entry


def http_entry(
    cluster: str, status: int, *, route: str = "rule 1 'x'", authority: str = "api.example"
) -> HTTPAccessLogEntry:
    entry = HTTPAccessLogEntry()
    entry.common_properties.upstream_cluster = cluster
    entry.common_properties.route_name = route
    entry.request.authority = authority
    entry.request.path = "/secret/path?token=abc"
    entry.response.response_code.value = status
    return entry


@pytest.mark.parametrize(
    ("failure", "flags", "outcome"),
    [
        ("", (), Outcome.OK),
        ("tunnel_response:407", ("UF",), Outcome.PROXY_AUTH_REQUIRED),
        ("tunnel_response:403", ("UF",), Outcome.PROXY_FORBIDDEN),
        ("tunnel_response:503", ("UF",), Outcome.CONNECT_FAILED),
        ("tunnel_response:502", ("UF",), Outcome.CONNECT_FAILED),
        ("tunnel_response:400", ("UF",), Outcome.PROXY_ERROR),
        ("delayed connect error: Connection refused", ("UF",), Outcome.PROXY_UNREACHABLE),
        ("", ("UH",), Outcome.PROXY_UNREACHABLE),
    ],
)
def test_tunnels(failure: str, flags: tuple[str, ...], outcome: Outcome) -> None:
    assert classify(from_tcp(tcp_entry("proxy", "corp", failure=failure, flags=flags))) is outcome


def test_direct_deny_and_unknown_kinds() -> None:
    assert classify(from_tcp(tcp_entry("direct"))) is Outcome.DIRECT
    assert classify(from_tcp(tcp_entry("direct", flags=("UF",)))) is Outcome.CONNECT_FAILED
    assert classify(from_tcp(tcp_entry("deny", flags=("UH",)))) is Outcome.DENIED_BY_POLICY
    assert classify(from_tcp(tcp_entry("something-else"))) is Outcome.PROXY_ERROR


@pytest.mark.parametrize(
    ("cluster", "status", "outcome"),
    [
        ("egress-proxy-corp-http", 200, Outcome.OK),
        ("egress-proxy-corp-http", 404, Outcome.OK),  # the origin's answer, relayed: the proxy let it through
        ("egress-proxy-corp-http", 407, Outcome.PROXY_AUTH_REQUIRED),
        ("egress-proxy-corp-http", 403, Outcome.PROXY_FORBIDDEN),
        ("egress-proxy-corp-http", 503, Outcome.CONNECT_FAILED),
        ("egress-passthrough", 200, Outcome.DIRECT),
        ("", 403, Outcome.DENIED_BY_POLICY),  # the route's direct_response
    ],
)
def test_plain_http(cluster: str, status: int, outcome: Outcome) -> None:
    event = from_http(http_entry(cluster, status))
    assert classify(event) is outcome


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, Outcome.OK), (500, Outcome.PROXY_ERROR), (400, Outcome.PROXY_ERROR), (503, Outcome.CONNECT_FAILED)],
)
def test_a_connect_to_a_forward_proxy_listener_is_ok_only_when_the_proxy_answers_2xx(
    status: int, outcome: Outcome
) -> None:
    """Found by a new-user trial: squid answers a CONNECT to a name it cannot resolve with 500 (NONE_NONE/500), and
    that was counted `ok`; for a GET a 500 is the origin's answer relayed, for a CONNECT no tunnel was made."""
    entry = http_entry("egress-proxy-corp-connect", status, authority="nowhere.invalid:443")
    entry.request.request_method = RequestMethod.CONNECT
    assert classify(from_http(entry)) is outcome
    entry.request.request_method = RequestMethod.GET
    assert classify(from_http(entry)) is (Outcome.OK if status in (200, 500, 400) else outcome)


def test_http_proxy_unreachable_is_envoys_503_with_uf() -> None:
    entry = http_entry("egress-proxy-corp-http", 503)
    entry.common_properties.response_flags.upstream_connection_failure = True
    assert classify(from_http(entry)) is Outcome.PROXY_UNREACHABLE


def test_what_an_event_keeps() -> None:
    event = from_http(http_entry("egress-proxy-corp-http", 200, authority="alice:pw@API.Example."))
    assert event.destination == "api.example:80"  # no userinfo, lower case, HTTP's default port
    assert event.proxy == "corp" and event.kind == "proxy" and event.decision == "rule 1 'x'"
    assert "secret" not in repr(event) and "token" not in repr(event) and "pw" not in repr(event)
    tls = from_tcp(tcp_entry("proxy", "corp", sni="Api.Example"))
    assert tls.destination == "api.example:443" and tls.address == "10.0.0.7:443"
    assert (tls.bytes_sent, tls.bytes_received) == (10, 20)
    explicit = from_tcp(tcp_entry("proxy", "corp", sni="local.name", target="api.github.com:443"))
    assert explicit.destination == "api.github.com:443" and explicit.address == ""
    assert from_tcp(tcp_entry("direct")).destination == "10.0.0.7:443"


@given(
    kind=st.text(max_size=20),
    proxy=st.text(max_size=400),
    failure=st.text(max_size=400),
    sni=st.text(max_size=400),
    uf=st.booleans(),
)
def test_any_tcp_entry_has_one_outcome_and_bounded_texts(
    kind: str, proxy: str, failure: str, sni: str, uf: bool
) -> None:
    entry = tcp_entry("proxy", flags=("UF",) if uf else ())
    entry.common_properties.custom_tags.update({"egress.kind": kind, "egress.proxy": proxy})
    entry.common_properties.upstream_transport_failure_reason = failure
    entry.common_properties.tls_properties.tls_sni_hostname = sni
    event = from_tcp(entry)
    assert classify(event).value in OUTCOMES
    assert all(len(text) <= MAX_TEXT + 6 for text in (event.proxy, event.failure, event.destination, event.kind))


@given(status=st.integers(min_value=0, max_value=999), authority=st.text(max_size=300), cluster=st.text(max_size=60))
def test_any_http_entry_has_one_outcome(status: int, authority: str, cluster: str) -> None:
    event = from_http(http_entry(cluster, status, authority=authority))
    assert classify(event).value in OUTCOMES
    assert "@" not in event.destination

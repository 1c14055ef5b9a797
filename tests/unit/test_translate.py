"""The translator's output, read back as Envoy would see it (the traffic tests prove it behaves)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.json_format import MessageToJson

from egress_xds.policy import EgressPolicy, NodeMode
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import Resources, translate

POLICY = """
proxies:
  corp: http://alice:secret@10.250.1.2:3128
  backup:
    endpoints: ["http://10.250.1.3:3128", {url: "http://10.250.1.4:3128", priority: 1}]
httpsProxy: corp
httpProxy: corp
noProxy: "direct.example.test,10.250.2.3"
rules:
  - name: no evil
    domains: [evil.example.test]
    action: deny
  - name: db
    cidrs: [10.250.9.0/24]
    ports: [5432]
    action: direct
  - name: via backup
    cidrs: [10.250.8.0/24]
    action: {proxy: backup}
standalone:
  listeners:
    - name: api
      listen: 127.0.0.1:10443
      target: api.example.test:443
  forwardProxy:
    listen: 127.0.0.1:3129
"""


@pytest.fixture()
def policy(tmp_path: Path) -> EgressPolicy:
    path = tmp_path / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY))
    (loaded,) = load_policy_file(path).policies
    return loaded


def as_data(message: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MessageToJson(message, preserving_proto_field_name=True))
    return data


def sidecar(policy: EgressPolicy) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    resources = translate(policy, NodeMode.SIDECAR)
    (listener,) = resources.listeners
    return as_data(listener), {cluster.name: as_data(cluster) for cluster in resources.clusters}


def chain_order(listener: dict[str, Any]) -> list[str]:
    matcher = listener["filter_chain_matcher"]
    names = [entry["on_match"]["action"]["typed_config"]["value"] for entry in matcher["matcher_list"]["matchers"]]
    return [*names, matcher["on_no_match"]["action"]["typed_config"]["value"]]


def chain(listener: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [item for item in listener["filter_chains"] if item["name"] == name]
    config: dict[str, Any] = found["filters"][0]["typed_config"]
    return config


def test_translation_is_deterministic(policy: EgressPolicy) -> None:
    def serialized(resources: Resources) -> list[bytes]:
        return [item.SerializeToString(deterministic=True) for item in (*resources.listeners, *resources.clusters)]

    assert serialized(translate(policy, NodeMode.SIDECAR)) == serialized(translate(policy, NodeMode.SIDECAR))


def test_capture_listener_inspects_and_restores_the_original_destination(policy: EgressPolicy) -> None:
    listener, _ = sidecar(policy)
    # 127.0.0.1, where REDIRECT sends the pod's connections; never the pod's addresses (an open relay)
    assert listener["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 15001}
    assert [item["name"] for item in listener["listener_filters"]] == [
        "envoy.filters.listener.original_dst",
        "envoy.filters.listener.tls_inspector",
        "envoy.filters.listener.http_inspector",
    ]
    assert listener["continue_on_listener_filters_timeout"] is True
    assert listener["listener_filters_timeout"] == "1s"


def test_decisions_are_ordered_first_match_wins(policy: EgressPolicy) -> None:
    listener, _ = sidecar(policy)
    assert chain_order(listener) == [
        "capture-loop",  # from this host to port 15001 itself: closed, never forwarded (it would loop)
        "passthrough",  # loopback / localhost by SNI
        "passthrough",  # loopback by address
        "passthrough",  # backup's endpoints, corp's endpoint: apps that use HTTPS_PROXY themselves
        "passthrough",
        "passthrough",
        "deny",  # rule 1 by SNI
        "http-rule-6",  # rule 2: plain HTTP to the db network still honours rule 1 by Host
        "passthrough",  # rule 2
        "http-rule-7",  # rule 3: plain HTTP through backup leaves in absolute form
        "tunnel-backup",  # rule 3 with an SNI
        "tunnel-backup-ip",  # rule 3 without one
        "passthrough",  # noProxy direct.example.test by SNI
        "http-rule-9",  # noProxy 10.250.2.3
        "passthrough",
        "http",  # plain HTTP
        "tunnel-corp",  # TLS with SNI
        "tunnel-corp-ip",  # TLS without SNI
        "tunnel-corp",  # raw TCP with SNI (never, but harmless)
        "tunnel-corp-ip",  # raw TCP: CONNECT ip:port
    ]


def test_tunnels_carry_the_sni_or_the_address_and_the_credentials(policy: EgressPolicy) -> None:
    listener, _ = sidecar(policy)
    by_name = chain(listener, "tunnel-corp")
    assert by_name["cluster"] == "egress-proxy-corp-connect"
    tunnel = by_name["tunneling_config"]
    assert tunnel["hostname"] == "%REQUESTED_SERVER_NAME%:%DOWNSTREAM_LOCAL_PORT%"
    assert tunnel["headers_to_add"][0]["header"] == {"key": "Proxy-Authorization", "value": "Basic YWxpY2U6c2VjcmV0"}
    assert chain(listener, "tunnel-corp-ip")["tunneling_config"]["hostname"] == "%DOWNSTREAM_LOCAL_ADDRESS%"
    assert "headers_to_add" not in chain(listener, "tunnel-backup")["tunneling_config"]
    assert chain(listener, "tunnel-backup")["max_connect_attempts"] == 2


def test_proxy_clusters_speak_http1_and_absolute_form(policy: EgressPolicy) -> None:
    _, clusters = sidecar(policy)
    connect = clusters["egress-proxy-corp-connect"]
    assert "typed_extension_protocol_options" not in connect  # never HTTP/2: squid answers 400 to PRI *
    assert connect["type"] == "STATIC"
    options = clusters["egress-proxy-corp-http"]["typed_extension_protocol_options"]
    http = options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["explicit_http_config"]
    assert http == {"http_protocol_options": {"send_fully_qualified_url": True}}
    assert clusters["egress-passthrough"]["type"] == "ORIGINAL_DST"
    assert "endpoints" not in clusters["egress-deny"]["load_assignment"]


def test_failover_endpoints_have_priorities_and_a_health_check(policy: EgressPolicy) -> None:
    _, clusters = sidecar(policy)
    backup = clusters["egress-proxy-backup-connect"]
    priorities = [locality.get("priority", 0) for locality in backup["load_assignment"]["endpoints"]]
    assert priorities == [0, 1]
    (check,) = backup["health_checks"]
    assert "tcp_health_check" in check


def test_plain_http_leaks_no_envoy_headers_and_routes_by_host_in_order(policy: EgressPolicy) -> None:
    listener, _ = sidecar(policy)
    manager = chain(listener, "http")
    assert manager["generate_request_id"] is False
    assert manager["http_filters"][0]["typed_config"]["suppress_envoy_headers"] is True
    route_config = manager["route_config"]
    assert {"x-forwarded-proto", "x-request-id"} <= set(route_config["request_headers_to_remove"])
    routes = route_config["virtual_hosts"][0]["routes"]
    assert [route["name"] for route in routes] == [
        "rule 1 'no evil'",
        "noProxy entry 'direct.example.test'",
        "default: plain HTTP uses httpProxy",
    ]
    assert routes[0]["direct_response"]["status"] == 403
    assert routes[1]["route"]["cluster"] == "egress-passthrough"
    assert routes[2]["route"]["cluster"] == "egress-proxy-corp-http"
    assert routes[2]["route"]["timeout"] == "0s"
    assert routes[2]["request_headers_to_add"][0]["header"]["key"] == "Proxy-Authorization"


def test_standalone_node_gets_explicit_listeners_and_a_forward_proxy(policy: EgressPolicy) -> None:
    resources = translate(policy, NodeMode.STANDALONE)
    listeners = {listener.name: as_data(listener) for listener in resources.listeners}
    assert set(listeners) == {"egress-listener-api", "egress-forward-proxy"}
    api = listeners["egress-listener-api"]
    assert api["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 10443}
    tcp_proxy = api["filter_chains"][0]["filters"][0]["typed_config"]
    assert tcp_proxy["tunneling_config"]["hostname"] == "api.example.test:443"
    manager = listeners["egress-forward-proxy"]["filter_chains"][0]["filters"][0]["typed_config"]
    assert [config["upgrade_type"] for config in manager["upgrade_configs"]] == ["websocket", "CONNECT"]
    routes = manager["route_config"]["virtual_hosts"][0]["routes"]
    assert "connect_matcher" in routes[-2]["match"] and routes[-2]["route"]["cluster"] == "egress-proxy-corp-http"


def test_no_proxy_cidrs_after_no_proxy_domains_need_no_http_chains(tmp_path: Path) -> None:
    """Every NO_PROXY entry is `direct`, so plain HTTP to a NO_PROXY CIDR needs no Host-based routes: the
    listener must not grow with domains x CIDRs."""
    domains = ",".join(f"d{index}.example" for index in range(40))
    cidrs = ",".join(f"10.{index}.0.0/16" for index in range(40))
    path = tmp_path / "policy.yaml"
    path.write_text(f"httpsProxy: http://10.250.1.2:3128\nnoProxy: '{domains},{cidrs}'\n")
    (policy,) = load_policy_file(path).policies
    listener, _ = sidecar(policy)
    chains = {item["name"] for item in listener["filter_chains"]}
    assert not [name for name in chains if name.startswith("http-rule-")], sorted(chains)
    (resource,) = translate(policy, NodeMode.SIDECAR).listeners
    assert resource.ByteSize() < 64 * 1024

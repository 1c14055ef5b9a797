"""A NACK caused by a dependency recovers once the dependency is fixed, on a real Envoy (SotW and Delta).

`egress-xds serve` and a standalone Envoy (host loopback, running as uid 1337 as in a pod) start in sync with an
http:// proxy. The policy then switches to an https:// proxy whose `caFile` the server can read (so `check` and the
reload accept it) but Envoy cannot (mode 0600, root's): Envoy rejects the proxy cluster (CDS NACK) and, because
the forward-proxy listener's inline route names that cluster, the listeners too (LDS NACK). The CA file is then
fixed by pointing `caFile` at a readable copy: only the cluster changes, the listeners are byte for byte the ones
Envoy NACKed. The server must send LDS again once (the rule in README "Protocol behaviour"), Envoy must then hold
the listeners with that version and no error, and `status NODE` must show what the node holds, never "(not held)".
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.admin.serving import Serve
from tests.support.egress import bootstrap, replace_file, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.processes import wait_until
from tests.support.requirements import need_root
from tests.support.tls import LabCA

pytestmark = [pytest.mark.integration]

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
ENVOY_UID = 1337
POLICY = """
proxies:
  {name}: {proxy}
httpsProxy: {name}
httpProxy: {name}
standalone:
  listeners:
    - {{name: github, listen: "127.0.0.1:{tunnel}", target: "api.github.com:443"}}
  forwardProxy: {{listen: "127.0.0.1:{forward}"}}
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Setup:
    serve: Serve
    envoy: EnvoyProcess
    node_id: str
    directory: Path
    ports: dict[str, int]
    protocol: str
    shared: Path  # a directory Envoy's uid can read

    def context(self) -> str:
        return self.envoy.describe() + "\n" + self.serve.describe()

    def write(self, name: str, proxy: str) -> None:
        replace_file(self.serve.policy, POLICY.format(name=name, proxy=proxy, **self.ports))

    def node_types(self) -> dict[str, dict[str, Any]]:
        nodes = self.serve.call("egress_xds.admin.v1.Admin/ListNodes", {"node_id": self.node_id}).get("nodes", [])
        return {sync["short_name"]: sync for node in nodes for sync in node["types"]}

    def statuses(self) -> dict[str, str]:
        return {name: sync["status"] for name, sync in self.node_types().items()}

    def wait_statuses(self, cds: str, lds: str) -> None:
        wanted = {"cds": f"SYNC_STATUS_{cds}", "lds": f"SYNC_STATUS_{lds}"}
        wait_until(
            lambda: self.statuses() == wanted,
            timeout=20,
            what=f"the admin API to show CDS {cds} and LDS {lds}",
            describe=lambda: f"{self.statuses()}\n{self.context()}",
        )

    def dynamic_listeners(self) -> list[dict[str, Any]]:
        dump = self.envoy.config_dump()
        return [item for config in dump["configs"] for item in config.get("dynamic_listeners", [])]


@pytest.fixture(params=["sotw", "delta"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Setup]:
    need_root()
    ports = {"tunnel": free_port(), "forward": free_port()}
    shared = Path(tempfile.mkdtemp(prefix="egress-xds-nack-"))
    shared.chmod(0o755)
    serve = Serve(
        write_policy(tmp_path, POLICY.format(name="plain", proxy="http://127.0.0.1:3128", **ports)), tmp_path / "s.log"
    )
    serve.start()
    node_id = f"vm-{request.param}"
    try:
        config = bootstrap(node_id, serve.address, delta=request.param == "delta", mode="standalone")
        del config["admin"]  # start_envoy adds one on a free port
        with start_envoy(config, admin_port=0, uid=ENVOY_UID) as envoy:
            setup = Setup(serve, envoy, node_id, tmp_path, ports, request.param, shared)
            setup.wait_statuses("SYNCED", "SYNCED")
            yield setup
    finally:
        serve.stop()
        shutil.rmtree(shared, ignore_errors=True)


def test_listeners_nacked_for_a_rejected_cluster_recover_when_the_cluster_is_fixed(setup: Setup) -> None:
    before = {item["name"] for item in setup.dynamic_listeners()}
    good_ca = LabCA(setup.shared / "ca").ca_pem  # a real CA, readable by Envoy's uid
    bad_ca = setup.shared / "root-only-ca.pem"  # the same certificate, readable by the server only
    bad_ca.write_bytes(good_ca.read_bytes())
    bad_ca.chmod(0o600)
    setup.write("corp", f"{{url: https://127.0.0.1:3129, caFile: {bad_ca}}}")
    setup.wait_statuses("NACKED", "NACKED")
    types = setup.node_types()
    lds_nacked = types["lds"]["last_nack"]["version"]
    assert f"unable to read file: {bad_ca}" in types["cds"]["last_nack"]["message"]
    assert "unknown cluster 'egress-proxy-corp-http'" in types["lds"]["last_nack"]["message"]

    setup.write("corp", f"{{url: https://127.0.0.1:3129, caFile: {good_ca}}}")
    setup.wait_statuses("SYNCED", "SYNCED")
    types = setup.node_types()
    assert types["lds"]["version_acked"] == lds_nacked  # the very version Envoy NACKed, sent again and ACKed

    listeners = {item["name"]: item for item in setup.dynamic_listeners()}
    assert set(listeners) == set(before), setup.context()
    for name, item in listeners.items():
        assert "error_state" not in item, f"{name}: {item['error_state']}"
    # The listener Envoy rejected is now active (it routes to the fixed cluster), and Envoy runs the LDS version
    # it rejected before. (SotW: per listener, Envoy keeps the version a listener was first added with.)
    forward = json.dumps(listeners["egress-forward-proxy"]["active_state"]["listener"])
    assert "egress-proxy-corp-http" in forward, setup.context()
    [lds_dump] = [config for config in setup.envoy.config_dump()["configs"] if "dynamic_listeners" in config]
    if setup.protocol == "sotw":  # a Delta response has no set version; the admin API's is checked above
        assert lds_dump["version_info"] == lds_nacked

    detail = setup.serve.egress_xds("status", "--server", setup.serve.address, setup.node_id)
    assert detail.returncode == 0, detail.stderr
    assert "(not held)" not in detail.stdout, detail.stdout
    assert "CDS: no difference" in detail.stdout and "LDS: no difference" in detail.stdout, detail.stdout


def test_a_policy_envoy_refuses_whole_then_the_good_one_again_ends_in_sync(setup: Setup) -> None:
    """Found by trying the tool as a new user (Delta only, before the state machine's fixes): a policy whose only
    listener cannot bind and whose proxy is another one (so CDS changes too), then the good policy back. The Delta
    stream stayed CDS STALE / LDS NACK for good, Envoy kept a cluster the server wanted gone, and `status
    --fail-nack-after` failed on a healthy node."""
    before = {item["name"] for item in setup.dynamic_listeners()}
    refused = (
        "httpsProxy: http://127.0.0.1:3130\n"
        "standalone:\n  listeners:\n"
        "    - {name: unbindable, listen: '192.0.2.1:8080', target: 'api.github.com:443'}\n"
    )
    replace_file(setup.serve.policy, refused)
    wait_until(
        lambda: setup.statuses().get("lds") == "SYNC_STATUS_NACKED",
        timeout=20,
        what="Envoy to refuse the unbindable listener",
        describe=setup.context,
    )
    assert "cannot bind '192.0.2.1:8080'" in setup.node_types()["lds"]["last_nack"]["message"]
    setup.write("plain", "http://127.0.0.1:3128")
    setup.wait_statuses("SYNCED", "SYNCED")
    listeners = {item["name"]: item for item in setup.dynamic_listeners()}
    assert set(listeners) == before, setup.context()
    assert all("error_state" not in item for item in listeners.values()), setup.context()
    clusters = {
        item["cluster"]["name"]
        for config in setup.envoy.config_dump()["configs"]
        for item in config.get("dynamic_active_clusters", [])
    }
    assert not any("https-proxy" in name for name in clusters), clusters  # the refused policy's proxy is gone
    detail = setup.serve.egress_xds(
        "status", "--server", setup.serve.address, "--fail-nack-after", "0", "--fail-stale-after", "0"
    )
    assert detail.returncode == 0, detail.stdout + detail.stderr

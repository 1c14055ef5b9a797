"""Two replicas of `egress-xds serve` on one policy file, one real Envoy bootstrapped with both addresses
(`egress-xds bootstrap --xds-address A --xds-address B`), a client looping through real squid.

Envoy connects to A (B starts only once it has); A dies (SIGKILL, or SIGTERM: a graceful stop); Envoy's next
stream goes to B, and B has nothing new for it: Delta sends nothing (Envoy told B its versions in
`initial_resource_versions`), SotW sends the same versions. So no listener or cluster is modified (Envoy's own
`listener_manager` / `cluster_manager` counters, and the `version_info` of its config dump, before and after),
and no request of the loop fails. `egress-xds status --server A --server B` sees it move: the node on A first,
then on B with A named as not answering (exit 4, the view is partial).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.test_ads_with_envoy import POLICY, Requests
from tests.support.egress import REPO_ROOT, ServeProcess, egress_xds, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, Lab
from tests.support.processes import wait_until
from tests.support.proxies import ForwardProxy, start_squid
from tests.support.upstreams import Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
REPLICA_A = "127.0.0.1:18000"
REPLICA_B = "127.0.0.1:18002"
URL = "https://api.example.test/failover"
# Counters that move only when Envoy adds, changes or drops a listener or cluster (a drain for a listener).
CHANGE_COUNTERS = (
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
)


@dataclass
class Replicas:
    lab: Lab
    squid: ForwardProxy
    upstreams: Upstreams
    a: ServeProcess
    b: ServeProcess
    envoy: EnvoyProcess
    node_id: str
    protocol: str

    def context(self) -> str:
        parts = [self.envoy.describe(), self.squid.describe(), self.a.describe(), self.b.describe()]
        return "\n".join(parts)

    def status(self) -> tuple[int, dict[str, Any]]:
        """`egress-xds status --server A --server B -o json`, run in the pod namespace where both listen."""
        argv = [sys.executable, "-m", "egress_xds.cli", "status", "--server", REPLICA_A, "--server", REPLICA_B]
        result = self.lab.run("pod", [*argv, "-o", "json"], env={"PYTHONPATH": str(REPO_ROOT)}, timeout=30)
        assert result.returncode in (0, 4), f"status exited {result.returncode}: {result.stderr}"
        document: dict[str, Any] = json.loads(result.stdout)
        return result.returncode, document

    def replicas_of_node(self) -> list[str]:
        _, document = self.status()
        return [node["replica"] for node in document["nodes"] if node["node_id"] == self.node_id]


def versions(envoy: EnvoyProcess) -> dict[str, str]:
    """`version_info` of every dynamic listener and cluster, and of the LDS / CDS sets, from /config_dump."""
    found: dict[str, str] = {}
    for config in envoy.config_dump()["configs"]:
        if "version_info" in config:  # the LDS / CDS set versions
            found[config["@type"].rsplit(".", 1)[-1]] = config["version_info"]
        for item in config.get("dynamic_listeners", []):
            found[f"listener/{item['name']}"] = item.get("active_state", {}).get("version_info", "")
        for item in config.get("dynamic_active_clusters", []):
            found[f"cluster/{item['cluster']['name']}"] = item.get("version_info", "")
    return found


def change_counters(envoy: EnvoyProcess) -> dict[str, int]:
    stats = envoy.stats()
    return {name: stats.get(name, 0) for name in CHANGE_COUNTERS}


def updates_received(envoy: EnvoyProcess) -> dict[str, int]:
    """How many LDS / CDS responses Envoy accepted (an update with the same versions counts too)."""
    stats = envoy.stats()
    return {
        name: stats.get(name, 0)
        for name in ("listener_manager.lds.update_success", "cluster_manager.cds.update_success")
    }


@pytest.fixture(params=["sotw", "delta"])
def replicas(request: pytest.FixtureRequest, lab: Lab, upstreams: Upstreams, tmp_path: Path) -> Iterator[Replicas]:
    node = f"pod-failover-{request.param}"
    policy = write_policy(tmp_path, POLICY.format(proxy=f"{PROXY_IP}:3128"))
    a = ServeProcess(lab, "pod", policy, tmp_path / "a.log", REPLICA_A)
    b = ServeProcess(lab, "pod", policy, tmp_path / "b.log", REPLICA_B)
    args = ["bootstrap", "--node-id", node, "--xds-address", REPLICA_A, "--xds-address", REPLICA_B]
    config = yaml.safe_load(egress_xds(*args, *(["--delta"] if request.param == "delta" else [])).stdout)
    with start_squid(lab, port=3128) as squid:
        a.start()
        try:
            with start_envoy(config, netns=lab.pod, uid=ENVOY_UID) as envoy:
                lab.capture("pod")
                try:
                    envoy.wait_for_stat("control_plane.connected_state", lambda value: value == 1, timeout=20)
                    b.start()  # only now: Envoy's stream is on A
                    yield Replicas(lab, squid, upstreams, a, b, envoy, node, request.param)
                finally:
                    lab.uncapture("pod")
        finally:
            a.stop()
            b.stop()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_envoy_moves_to_the_other_replica_with_no_config_change_and_no_failed_request(
    replicas: Replicas, how: signal.Signals
) -> None:
    wait_until(lambda: replicas.replicas_of_node() == [REPLICA_A], timeout=20, what="the node on replica A")
    before_versions, before_counters = versions(replicas.envoy), change_counters(replicas.envoy)
    before_updates = updates_received(replicas.envoy)
    assert any(key.startswith("listener/") for key in before_versions), before_versions
    with Requests(replicas.lab, URL, replicas.upstreams.ca_pem) as client:
        wait_until(lambda: client.count >= 3, timeout=20, what="the client's first requests")
        assert replicas.a.proc is not None
        if how is signal.SIGKILL:
            os.killpg(replicas.a.proc.pid, signal.SIGKILL)
        replicas.a.stop()  # SIGTERM (the graceful stop), or reaps the killed one
        wait_until(
            lambda: replicas.replicas_of_node() == [REPLICA_B],
            timeout=20,
            what="the node on replica B",
            describe=replicas.context,
        )
        at_switch = client.count
        wait_until(lambda: client.count >= at_switch + 3, timeout=20, what="requests after the switch")
    assert not client.failures, f"{len(client.failures)} of {client.count} requests failed:\n{client.failures[:3]}"
    assert versions(replicas.envoy) == before_versions
    assert change_counters(replicas.envoy) == before_counters
    after_updates = updates_received(replicas.envoy)
    if replicas.protocol == "delta":  # B had nothing to send: Envoy's initial_resource_versions matched
        assert after_updates == before_updates
    else:  # B sent the full state again, in the very same versions (so nothing above was modified)
        assert all(after_updates[name] > before_updates[name] for name in before_updates), after_updates
    code, document = replicas.status()
    assert code == 4 and document["partial"] is True
    assert [item["address"] for item in document["unreachable"]] == [REPLICA_A]
    assert "Traceback" not in replicas.a.log() + replicas.b.log()
    print(f"{how.name}: {client.count} requests, 0 failed; versions kept: {sorted(before_versions.values())}")

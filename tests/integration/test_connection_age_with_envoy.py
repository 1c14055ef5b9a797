"""`serve --max-connection-age`: a real Envoy's connection is closed at its age, Envoy reconnects on a new one
and receives no changed configuration, and traffic through squid loses nothing meanwhile (SotW and Delta).

The sidecar (uid 1337, transparent capture in the pod namespace) tunnels through squid while a client keeps
sending requests. gRPC core sends the connection a GOAWAY at its (jittered) age and closes it the grace later;
Envoy opens a new connection (the server logs a second connect from another port, Envoy counts a second upstream
connection to the control plane). Over the reconnect, Envoy's listener and cluster managers add, modify and remove
nothing, nothing drains, and /config_dump shows every dynamic listener and cluster with the version and update
time it had before.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from egress_xds.xds.server import MAX_CONNECTION_AGE_GRACE_SECONDS
from tests.integration.test_ads_with_envoy import POLICY, Requests
from tests.support.egress import ServeProcess, bootstrap, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, Lab
from tests.support.processes import wait_until
from tests.support.proxies import ForwardProxy, start_squid
from tests.support.upstreams import Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
XDS_ADDRESS = "127.0.0.1:18000"
MAX_AGE_SECONDS = 2.0
XDS_CLUSTER = "egress-xds-control-plane"  # `egress-xds bootstrap`'s cluster for the server
# What a configuration change moves in Envoy's listener and cluster managers; none may move on a reconnect.
UPDATE_STATS = (
    "listener_manager.listener_added",
    "listener_manager.listener_modified",
    "listener_manager.listener_removed",
    "listener_manager.listener_in_place_updated",
    "listener_manager.listener_create_success",
    "listener_manager.total_filter_chains_draining",
    "listener_manager.total_listeners_draining",
    "listener_manager.lds.update_rejected",
    "cluster_manager.cluster_added",
    "cluster_manager.cluster_modified",
    "cluster_manager.cluster_removed",
    "cluster_manager.cluster_updated",
    "cluster_manager.warming_clusters",
    "cluster_manager.cds.update_rejected",
)
VERSION_STATS = ("listener_manager.lds.version", "cluster_manager.cds.version")
DELTA_SENT_NOTHING = ("listener_manager.lds.update_success", "cluster_manager.cds.update_success")


@dataclass
class Setup:
    lab: Lab
    squid: ForwardProxy
    server: ServeProcess
    envoy: EnvoyProcess
    upstreams: Upstreams
    node_id: str
    protocol: str

    def context(self) -> str:
        return "\n".join(part.describe() for part in (self.envoy, self.squid, self.upstreams, self.server))

    def connects(self) -> list[str]:
        """The peer (address:port) of each stream of this node the server logged, in order."""
        pattern = re.compile(rf"stream connected node={re.escape(self.node_id)} peer=(\S+)")
        return pattern.findall(self.server.log())


@pytest.fixture(params=["sotw", "delta"])
def setup(request: pytest.FixtureRequest, lab: Lab, upstreams: Upstreams, tmp_path: Path) -> Iterator[Setup]:
    policy = write_policy(tmp_path, POLICY.format(proxy=f"{PROXY_IP}:3128"))
    age = ("--max-connection-age", f"{MAX_AGE_SECONDS:g}s")
    server = ServeProcess(lab, "pod", policy, tmp_path / "serve.log", XDS_ADDRESS, args=age)
    node_id = f"pod-age-{request.param}"
    envoy_bootstrap = bootstrap(node_id, XDS_ADDRESS, delta=request.param == "delta")
    with start_squid(lab, port=3128) as squid:
        server.start()
        try:
            with start_envoy(envoy_bootstrap, netns=lab.pod, uid=ENVOY_UID) as envoy:
                lab.capture("pod")
                try:
                    yield Setup(lab, squid, server, envoy, upstreams, node_id, request.param)
                finally:
                    lab.uncapture("pod")
        finally:
            server.stop()


def dynamic_state(envoy: EnvoyProcess) -> dict[str, Any]:
    """Each dynamic listener and cluster with the version and update time Envoy holds it with."""
    state: dict[str, Any] = {}
    for config in envoy.config_dump()["configs"]:
        for item in config.get("dynamic_listeners", []):
            active = item.get("active_state", {})
            state[f"listener {item['name']}"] = (active.get("version_info"), active.get("last_updated"))
        for item in config.get("dynamic_active_clusters", []):
            state[f"cluster {item['cluster']['name']}"] = (item.get("version_info"), item.get("last_updated"))
        for key in ("dynamic_warming_clusters", "dynamic_warming_listeners"):
            if config.get(key):
                state[key] = config[key]
    return state


def test_an_aged_connection_is_replaced_without_a_config_change_or_a_lost_request(setup: Setup) -> None:
    envoy = setup.envoy
    url = "https://api.example.test/aged"
    envoy.wait_for_stat("control_plane.connected_state", lambda value: value == 1, timeout=20)
    with Requests(setup.lab, url, setup.upstreams.ca_pem) as client:
        wait_until(lambda: client.count >= 3, timeout=20, what="the client's first requests")
        # measured once Envoy holds its configuration and traffic flows, before the first connection's age
        stats_before = envoy.stats()
        dynamic_before = dynamic_state(envoy)
        squid_before = len(setup.squid.access_log())
        count_before = client.count
        wait_until(
            lambda: len(setup.connects()) >= 2,
            timeout=MAX_AGE_SECONDS * 1.1 + MAX_CONNECTION_AGE_GRACE_SECONDS + 10,
            what="Envoy to reconnect after the connection's age",
            describe=setup.context,
        )
        envoy.wait_for_stat("control_plane.connected_state", lambda value: value == 1, timeout=10)
        reconnected_at = client.count
        wait_until(lambda: client.count >= reconnected_at + 3, timeout=20, what="requests after the reconnect")
    stats_after = envoy.stats()
    first, second, *_ = setup.connects()
    assert first != second, f"the new stream came over the old connection ({first})\n{setup.context()}"
    assert stats_after[f"cluster.{XDS_CLUSTER}.upstream_cx_total"] >= 2, setup.context()

    assert not client.failures, f"{len(client.failures)} of {client.count} requests failed:\n{client.failures[:3]}"
    tunnels = [line for line in setup.squid.access_log()[squid_before:] if "CONNECT api.example.test:443" in line]
    assert len(tunnels) >= client.count - count_before - 1, setup.context()  # squid saw the loop's requests

    # SotW answers the new stream with the versions Envoy holds (Envoy counts one more update_success and finds
    # every resource unchanged); Delta declares them in initial_resource_versions and is sent nothing.
    unchanged = UPDATE_STATS + VERSION_STATS + (DELTA_SENT_NOTHING if setup.protocol == "delta" else ())
    changed = {name: (stats_before.get(name), stats_after.get(name)) for name in unchanged}
    assert {name: values for name, values in changed.items() if values[0] != values[1]} == {}, setup.context()
    assert dynamic_state(envoy) == dynamic_before, setup.context()

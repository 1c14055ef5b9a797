"""A real Envoy configured only by `egress-xds bootstrap` + `egress-xds serve`, over SotW and over Delta xDS.

The sidecar (uid 1337, transparent capture in the pod namespace) tunnels through squid; the policy file is then
rewritten to use tinyproxy while a client keeps sending requests: new tunnels move to tinyproxy within 2 s and no
request fails. Then the server is restarted under a running Envoy, which keeps forwarding and converges again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.egress import ServeProcess, bootstrap, replace_file, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, Lab
from tests.support.processes import wait_until
from tests.support.proxies import ForwardProxy, start_squid, start_tinyproxy
from tests.support.upstreams import PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
XDS_ADDRESS = "127.0.0.1:18000"
SWITCH_DEADLINE_SECONDS = 2.0
POLICY = """
httpsProxy: http://{proxy}
httpProxy: http://{proxy}
"""


@dataclass
class Requests:
    """A client in the pod sending one request at a time until stopped (bounded: at most 2,000 or 60 s)."""

    lab: Lab
    url: str
    ca: Path
    failures: list[str] = field(default_factory=list)
    count: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Requests:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and self.count < 2000 and time.monotonic() < deadline:
            result = self.lab.curl("pod", ["--cacert", str(self.ca), self.url], timeout=10)
            self.count += 1
            if not result.ok or f"peer={PEER_VIA_PROXY}" not in result.stdout:
                self.failures.append(str(result))


@dataclass
class Setup:
    lab: Lab
    squid: ForwardProxy
    tinyproxy: ForwardProxy
    server: ServeProcess
    envoy: EnvoyProcess
    upstreams: Upstreams

    def context(self) -> str:
        logs = [part.describe() for part in (self.envoy, self.squid, self.tinyproxy, self.upstreams)]
        return "\n".join([*logs, self.server.describe()])

    def curl(self, url: str) -> str:
        result = self.lab.curl("pod", ["--cacert", str(self.upstreams.ca_pem), url])
        assert result.ok, f"{result}\n{self.context()}"
        return result.stdout


@pytest.fixture(scope="module", params=["sotw", "delta"])
def setup(
    request: pytest.FixtureRequest, lab: Lab, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Setup]:
    directory = tmp_path_factory.mktemp(f"ads-{request.param}")
    policy = write_policy(directory, POLICY.format(proxy=f"{PROXY_IP}:3128"))
    server = ServeProcess(lab, "pod", policy, directory / "serve.log", XDS_ADDRESS)
    envoy_bootstrap = bootstrap(f"pod-{request.param}", XDS_ADDRESS, delta=request.param == "delta")
    with start_squid(lab, port=3128) as squid, start_tinyproxy(lab, port=8888) as tinyproxy:
        server.start()
        try:
            with start_envoy(envoy_bootstrap, netns=lab.pod, uid=ENVOY_UID) as envoy:
                lab.capture("pod")
                try:
                    yield Setup(lab, squid, tinyproxy, server, envoy, upstreams)
                finally:
                    lab.uncapture("pod")
        finally:
            server.stop()


def dynamic_names(envoy: EnvoyProcess) -> tuple[set[str], set[str]]:
    listeners: set[str] = set()
    clusters: set[str] = set()
    for config in envoy.config_dump()["configs"]:
        for item in config.get("dynamic_listeners", []):
            listeners.add(item["name"])
        for item in config.get("dynamic_active_clusters", []):
            clusters.add(item["cluster"]["name"])
    return listeners, clusters


def test_envoy_receives_listeners_and_clusters_and_tunnels(setup: Setup) -> None:
    listeners, clusters = dynamic_names(setup.envoy)
    assert listeners == {"egress-capture"}
    assert {"egress-proxy-http-proxy-connect", "egress-passthrough", "egress-deny"} <= clusters
    assert "egress-proxy-http-proxy-connect::10.250.1.2:3128::health_flags::healthy" in setup.envoy.admin_get(
        "/clusters"
    )
    body = setup.curl("https://api.example.test/over-ads")
    assert f"peer={PEER_VIA_PROXY} path=/over-ads" in body
    setup.squid.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443")
    assert "Traceback" not in setup.server.log()


def test_proxy_change_moves_new_tunnels_without_failed_requests(setup: Setup) -> None:
    url = "https://api.example.test/loop"
    tinyproxy_before = len(setup.tinyproxy.access_log())
    with Requests(setup.lab, url, setup.upstreams.ca_pem) as client:
        wait_until(lambda: client.count >= 3, timeout=20, what="the client's first requests")
        replace_file(setup.server.policy, POLICY.format(proxy=f"{PROXY_IP}:8888"))
        changed_at = time.monotonic()
        try:
            setup.tinyproxy.wait_for_log(r"CONNECT api\.example\.test:443", since=tinyproxy_before, timeout=10)
        except TimeoutError:
            pytest.fail(f"no tunnel through tinyproxy after the change\n{setup.context()}")
        switch_seconds = time.monotonic() - changed_at
        count_at_switch = client.count
        wait_until(lambda: client.count >= count_at_switch + 3, timeout=20, what="requests after the switch")
    assert not client.failures, f"{len(client.failures)} of {client.count} requests failed:\n{client.failures[:3]}"
    print(f"switch after {switch_seconds:.2f}s; {client.count} requests, {len(client.failures)} failed")
    assert switch_seconds <= SWITCH_DEADLINE_SECONDS, f"took {switch_seconds:.2f}s\n{setup.context()}"
    assert "reloaded 1 policies" in setup.server.log()


def test_server_restart_under_a_running_envoy(setup: Setup) -> None:
    setup.server.stop()
    setup.envoy.wait_for_stat("control_plane.connected_state", lambda value: value == 0, timeout=20)
    body = setup.curl("https://api.example.test/while-server-down")  # Envoy keeps its last config
    assert "path=/while-server-down" in body
    replace_file(setup.server.policy, POLICY.format(proxy=f"{PROXY_IP}:3128"))  # changed while down
    setup.server.start()
    setup.envoy.wait_for_stat("control_plane.connected_state", lambda value: value == 1, timeout=30)
    before = len(setup.squid.access_log())

    def tunnelled_through_squid() -> bool:
        setup.curl("https://api.example.test/after-restart")
        return any("after-restart" in line or "CONNECT api" in line for line in setup.squid.access_log()[before:])

    wait_until(tunnelled_through_squid, timeout=20, what="a tunnel through squid after the restart")

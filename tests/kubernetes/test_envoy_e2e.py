"""End to end: an EgressProxy change in the API server reaches a real Envoy, and its traffic moves proxies.

The lab's pod namespace holds everything a pod would: `egress-xds serve --kubernetes` (its kubeconfig points at
the fake API server, whose socket this test made inside the pod namespace), and Envoy (uid 1337, transparent
capture, bootstrap from `egress-xds bootstrap --namespace shop --pod-label app=client`). squid (with Basic auth,
the credentials coming from a Secret) and tinyproxy listen in corp; the HTTPS site is in inet.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.netns_socket import socket_in_netns
from tests.kubernetes.resources import egress_proxy, kubeconfig_text, secret
from tests.support.egress import REPO_ROOT, egress_xds
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, Lab
from tests.support.processes import wait_until
from tests.support.proxies import ForwardProxy, start_squid, start_tinyproxy
from tests.support.upstreams import PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
XDS_PORT = 18000
XDS_ADDRESS = f"127.0.0.1:{XDS_PORT}"
TOKEN = "e2e-token"
SQUID_USER, SQUID_PASSWORD = "shop-user", "squid-e2e-password"
SWITCH_DEADLINE_SECONDS = 3.0
URL = "https://api.example.test/k8s"


@dataclass
class Cluster:
    lab: Lab
    api: FakeApiServer
    squid: ForwardProxy
    tinyproxy: ForwardProxy
    envoy: EnvoyProcess
    upstreams: Upstreams
    serve_log: Path

    def context(self) -> str:
        parts = [part.describe() for part in (self.envoy, self.squid, self.tinyproxy, self.upstreams)]
        return "\n".join([*parts, "--- serve ---", self.serve_log.read_text(errors="replace")[-4000:]])

    def curl(self, path: str) -> str:
        result = self.lab.curl("pod", ["--cacert", str(self.upstreams.ca_pem), f"{URL}/{path}"])
        assert result.ok, f"{result}\n{self.context()}"
        return result.stdout


def corp_proxy(port: int) -> dict[str, object]:
    url = f"http://{PROXY_IP}:{port}"
    return egress_proxy("corp", "shop", httpsProxy=url, httpProxy=url, credentialsSecretRef={"name": "corp-proxy"})


@pytest.fixture
def cluster(lab: Lab, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    directory = tmp_path_factory.mktemp("k8s-e2e")
    with (
        FakeApiServer(socket_factory=socket_in_netns(lab.pod), token=TOKEN) as api,
        start_squid(lab, port=3128, auth=(SQUID_USER, SQUID_PASSWORD)) as squid,
        start_tinyproxy(lab, port=8888) as tinyproxy,
    ):
        api.apply(secret("corp-proxy", "shop", username=SQUID_USER, password=SQUID_PASSWORD))
        api.apply(corp_proxy(3128))
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text(api.url, TOKEN))
        serve_log = directory / "serve.log"
        argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--kubernetes", "--kubeconfig", str(kubeconfig)]
        with serve_log.open("ab") as log:
            serve = lab.popen("pod", [*argv, "--listen", XDS_ADDRESS], stdout=log, env={"PYTHONPATH": str(REPO_ROOT)})
        try:
            lab.wait_listening("pod", XDS_PORT, timeout=30, proc=serve)
            identity = ["--namespace", "shop", "--pod-name", "client-1", "--pod-label", "app=client"]
            bootstrap = yaml.safe_load(
                egress_xds("bootstrap", "--node-id", "client-1.shop", "--xds-address", XDS_ADDRESS, *identity).stdout
            )
            with start_envoy(bootstrap, netns=lab.pod, uid=ENVOY_UID) as envoy:
                lab.capture("pod")
                try:
                    yield Cluster(lab, api, squid, tinyproxy, envoy, upstreams, serve_log)
                finally:
                    lab.uncapture("pod")
        finally:
            lab.stop(serve)


def test_egressproxy_change_moves_envoy_traffic_to_the_other_proxy(cluster: Cluster) -> None:
    body = cluster.curl("via-squid")
    assert f"peer={PEER_VIA_PROXY} path=/k8s/via-squid" in body
    cluster.squid.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443")  # authenticated with the Secret
    tinyproxy_before = len(cluster.tinyproxy.access_log())

    cluster.api.apply(corp_proxy(8888))
    changed_at = time.monotonic()

    def through_tinyproxy() -> bool:
        cluster.curl("after-change")
        return any("CONNECT api.example.test:443" in line for line in cluster.tinyproxy.access_log()[tinyproxy_before:])

    wait_until(through_tinyproxy, timeout=20, interval=0.1, what="a tunnel through tinyproxy after the change")
    switch_seconds = time.monotonic() - changed_at
    print(f"EgressProxy change -> Envoy traffic through tinyproxy after {switch_seconds:.2f} s")
    assert switch_seconds <= SWITCH_DEADLINE_SECONDS, f"took {switch_seconds:.2f}s\n{cluster.context()}"
    status = (cluster.api.get("egressproxies", "corp", "shop") or {}).get("status", {})
    assert status.get("observedGeneration") == 2, status
    log = cluster.serve_log.read_text()
    assert "Traceback" not in log and SQUID_PASSWORD not in log

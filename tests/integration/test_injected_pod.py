"""The injected pod works: `egress-xds inject` turns a plain pod into a sidecar pod, and the spec it wrote is run
as the kubelet would (tests/support/kubelet.py) in the lab's pod namespace: the capture init container's real
iptables rules (as root with NET_ADMIN and NET_RAW only), the bootstrap container's shell command with its
Downward API environment and labels file, Envoy as the spec's uid with the spec's arguments and startup probe,
then the application container. Its HTTPS goes through the real squid (which logs the tunnel and the proxy
user); the destination the pod's annotation excludes from capture goes direct. Nothing of the sidecar is taken
from anywhere but the injected spec, so a spec that drifts from what runs fails here.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from egress_xds.inject.mutation import BOOTSTRAP_CONTAINER, CAPTURE_CONTAINER, ENVOY_CONTAINER
from tests.support.egress import ServeProcess, egress_xds, write_policy
from tests.support.kubelet import PodRun
from tests.support.netns import PROXY_IP, UPSTREAM_IP_2, Lab
from tests.support.proxies import start_squid
from tests.support.upstreams import PEER_DIRECT, PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

USER, PASSWORD = "pod-user", "Inj3cted-Secret"
XDS_ADDRESS = f"{PROXY_IP}:18000"  # the server in the corp namespace, as a Service would be: not loopback
# The sidecar settings, as a platform team writes them (admin on the unix socket, /ready on 15021: the defaults).
SETTINGS = f"""
xdsAddress: {XDS_ADDRESS}
excludePorts: [2222]
"""
POLICY = f"""
httpProxy: http://{USER}:{PASSWORD}@{PROXY_IP}:3128
httpsProxy: http://{USER}:{PASSWORD}@{PROXY_IP}:3128
"""


def plain_pod(ca_pem: Path) -> dict[str, Any]:
    """A workload's pod with nothing egress-xds-specific but an exclusion annotation."""
    curl = ["curl", "-q", "-sS", "--max-time", "10", "--cacert", str(ca_pem)]
    app = {
        "runAsUser": 1000,
        "runAsNonRoot": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "fetcher-0",
            "namespace": "web",
            "labels": {"app": "fetcher", "tier": "batch"},
            "annotations": {"egress.egress-xds.dev/exclude-cidrs": f"{UPSTREAM_IP_2}/32"},
        },
        "spec": {
            "restartPolicy": "Never",
            "initContainers": [  # the pod's own init container: it runs after Envoy, so its egress is tunnelled too
                {"name": "warm-cache", "image": "curlimages/curl:8.11.1", "securityContext": app,
                 "command": [*curl, "-o", "/dev/null", "https://api.example.test/warm-cache"]},
            ],
            "containers": [
                {"name": "app", "image": "curlimages/curl:8.11.1", "securityContext": app,
                 "command": [*curl, "https://api.example.test/injected"]},
                {"name": "excluded", "image": "curlimages/curl:8.11.1", "securityContext": app,
                 "command": [*curl, f"https://{UPSTREAM_IP_2}/excluded"]},
            ],
        },
    }  # fmt: skip


@pytest.fixture(scope="module")
def injected(upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("injected-pod")
    (directory / "settings.yaml").write_text(SETTINGS)
    (directory / "pod.yaml").write_text(yaml.safe_dump(plain_pod(upstreams.ca_pem)))
    result = egress_xds("inject", "--config", str(directory / "settings.yaml"), "-f", str(directory / "pod.yaml"))
    pod: dict[str, Any] = yaml.safe_load(result.stdout)
    return pod


@pytest.fixture(scope="module")
def running(
    lab: Lab, upstreams: Upstreams, injected: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PodRun, Any, Any]]:
    directory = tmp_path_factory.mktemp("injected-run")
    policy = write_policy(directory, POLICY)
    server = ServeProcess(lab, "corp", policy, directory / "serve.log", XDS_ADDRESS).start()
    run = PodRun(lab, injected, Path(tempfile.mkdtemp(prefix="egress-xds-pod-")))  # Envoy's uid must enter it
    try:
        with start_squid(lab, port=3128, auth=(USER, PASSWORD)) as squid:
            names = [container["name"] for container in injected["spec"]["initContainers"]]
            assert names == [CAPTURE_CONTAINER, BOOTSTRAP_CONTAINER, ENVOY_CONTAINER, "warm-cache"]
            for name in names[:2]:
                result = run.run(name)
                assert result.returncode == 0, f"{name}: {result}"
            envoy = run.start_envoy(ENVOY_CONTAINER)  # a native sidecar: the next one starts once its probe passed
            try:
                warm = run.run("warm-cache")
                assert warm.returncode == 0, f"{warm}\n{envoy.describe()}"
                yield run, squid, envoy
            finally:
                envoy.cleanup()
                lab.run("pod", ["egress-xds", "capture", "--clean"], check=True)
    finally:
        server.stop()
        run.cleanup()


def test_the_pods_own_init_container_already_had_its_egress_tunnelled(running: tuple[PodRun, Any, Any]) -> None:
    _, squid, envoy = running
    squid.wait_for_log(rf"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 {USER} ")
    envoy.wait_for_access_log(r"chain=tunnel-[a-z-]+ .*sni=api\.example\.test")


def test_the_apps_https_is_tunnelled_through_squid(running: tuple[PodRun, Any, Any]) -> None:
    run, squid, envoy = running
    before = (len(squid.access_log()), len(envoy.access_log()))
    result = run.run("app")
    assert result.returncode == 0, f"{result}\n{envoy.describe()}\n{squid.describe()}"
    assert result.stdout.strip() == f"host=api.example.test peer={PEER_VIA_PROXY} path=/injected tls=yes"
    squid.wait_for_log(rf"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 {USER} ", since=before[0])
    envoy.wait_for_access_log(r"chain=tunnel-[a-z-]+ .*sni=api\.example\.test", since=before[1])


def test_the_annotations_exclusion_reaches_the_real_iptables(running: tuple[PodRun, Any, Any], lab: Lab) -> None:
    run, squid, _ = running
    before = len(squid.access_log())
    result = run.run("excluded")
    assert result.returncode == 0, result
    assert f"peer={PEER_DIRECT} path=/excluded" in result.stdout
    assert not [line for line in squid.access_log()[before:] if UPSTREAM_IP_2 in line]
    rules = lab.iptables_rules("pod")
    assert f"-d {UPSTREAM_IP_2}/32 -j RETURN" in rules and "--dport 2222 -j RETURN" in rules


def test_envoy_runs_as_the_specs_uid_with_the_pods_identity(running: tuple[PodRun, Any, Any]) -> None:
    run, _, envoy = running
    spec_uid = run.container(ENVOY_CONTAINER)["securityContext"]["runAsUser"]
    status = Path(f"/proc/{envoy.pid}/status").read_text()
    assert re.search(rf"^Uid:\s+{spec_uid}\s+{spec_uid}\s", status, re.MULTILINE), status
    bootstrap = yaml.safe_load((run.volumes["egress-envoy-config"] / "envoy.yaml").read_text())
    assert bootstrap["node"]["id"] == "fetcher-0.web"
    metadata = bootstrap["node"]["metadata"]
    assert (metadata["namespace"], metadata["pod"]) == ("web", "fetcher-0")
    labels = {key: value for key, value in metadata.items() if key.startswith("labels.")}
    assert labels == {"labels.app": "fetcher", "labels.tier": "batch"}

"""`egress-xds status` over three replicas of `egress-xds serve` (one policy file), with real Envoys connected to
them: vm-a to A, vm-b to B, and two Envoys named vm-both, one on A and one on C. The replicas are given as repeated
`--server`, or found through the Service's EndpointSlices in the in-process Kubernetes API server
(`--service NAME.NAMESPACE --kubeconfig FILE`). Every stream shows exactly once, with its replica; a replica that
stops answering is named (stderr, the text, `-o json`) and the exit code is 4."""

from __future__ import annotations

import json
import socket
import subprocess
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.admin.serving import Serve
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import endpoint_slice, kubeconfig_text
from tests.support.egress import bootstrap, write_policy
from tests.support.envoy import start_envoy
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration]

POLICY = "httpsProxy: http://127.0.0.1:3128\n"
TOKEN = "token-of-the-status-test"
CONNECTED = {"vm-a": ["a"], "vm-b": ["b"], "vm-both": ["a", "c"]}
EXIT_PARTIAL = 4


@dataclass
class Fleet:
    servers: dict[str, Serve]  # "a", "b", "c"
    api: FakeApiServer
    kubeconfig: Path
    closed: str  # an address where nothing listens (a replica whose endpoint is not ready)

    def status(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.servers["a"].egress_xds("status", *args)

    def by_servers(self, *args: str) -> subprocess.CompletedProcess[str]:
        servers = [item for serve in self.servers.values() for item in ("--server", serve.address)]
        return self.status(*servers, *args)

    def by_service(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.status("--service", "egress-xds.egress-xds", "--kubeconfig", str(self.kubeconfig), *args)

    def name_of(self, address: str) -> str:
        return next(name for name, serve in self.servers.items() if serve.address == address)


def document_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode in (0, EXIT_PARTIAL), result.stdout + result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def closed_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    directory = tmp_path_factory.mktemp("replicas")
    policy = write_policy(directory, POLICY)
    with ExitStack() as stack:
        servers: dict[str, Serve] = {}
        for name in ("a", "b", "c"):
            serve = Serve(policy, directory / f"serve-{name}.log")
            stack.callback(serve.stop)
            servers[name] = serve.start()
        for node, names in CONNECTED.items():
            for name in names:
                config = bootstrap(node, servers[name].address, delta=name == "c", mode="standalone")
                del config["admin"]  # start_envoy adds one on a free port
                stack.enter_context(start_envoy(config, admin_port=0))
        api = stack.enter_context(FakeApiServer(token=TOKEN))
        kubeconfig = directory / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text(api.url, TOKEN))
        closed = closed_address()
        for name, serve in servers.items():
            host, port = serve.address.rsplit(":", 1)
            api.apply(
                endpoint_slice(f"egress-xds-{name}", "egress-xds", [(host, int(port), f"egress-xds-{name}", True)])
            )
        host, port = closed.rsplit(":", 1)
        api.apply(
            endpoint_slice("egress-xds-starting", "egress-xds", [(host, int(port), "egress-xds-starting", False)])
        )
        api.apply(endpoint_slice("webhook", "egress-xds-webhook", [(host, int(port), "egress-xds-webhook-1", True)]))
        fleet = Fleet(servers, api, kubeconfig, closed)

        def all_synced() -> bool:
            document = document_of(fleet.by_servers("-o", "json"))
            synced = [
                node for node in document["nodes"] if all(t["status"] == "SYNC_STATUS_SYNCED" for t in node["types"])
            ]
            return len(synced) == 4

        wait_until(all_synced, timeout=30, what="four synced Envoys", describe=lambda: fleet.by_servers().stdout)
        yield fleet


def test_every_stream_shows_once_with_its_replica(fleet: Fleet) -> None:
    result = fleet.by_servers()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    for serve in fleet.servers.values():
        (summary,) = [line for line in lines if line.startswith(f"server {serve.address} (")]
        assert summary.endswith(f"policy from {serve.policy}, 1 policies (default)")
    (header,) = [line for line in lines if line.startswith("NODE ")]
    assert header.split()[:2] == ["NODE", "REPLICA"]
    rows = [line.split() for line in lines if line.split()[:1] and line.split()[0] in CONNECTED]
    seen = sorted((row[0], fleet.name_of(row[1])) for row in rows)
    assert seen == sorted((node, name) for node, names in CONNECTED.items() for name in names), result.stdout

    document = document_of(fleet.by_servers("-o", "json"))
    assert document["partial"] is False and document["unreachable"] == []
    assert [server["address"] for server in document["servers"]] == [serve.address for serve in fleet.servers.values()]
    assert all(server["hostname"] == socket.gethostname() for server in document["servers"])
    streams = Counter((node["node_id"], fleet.name_of(node["replica"])) for node in document["nodes"])
    assert streams == Counter((node, name) for node, names in CONNECTED.items() for name in names)


def test_one_node_on_two_replicas_shows_both_in_detail(fleet: Fleet) -> None:
    result = fleet.by_servers("vm-both")
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line.startswith("node vm-both ")]
    assert [fleet.name_of(head.split(" on replica ")[1].split()[0]) for head in heads] == ["a", "c"], result.stdout


def test_the_service_endpoint_slices_name_every_ready_replica(fleet: Fleet) -> None:
    document = document_of(fleet.by_service("-o", "json"))
    asked = sorted(serve.address for serve in fleet.servers.values())
    assert sorted(server["address"] for server in document["servers"]) == asked  # not the unready, not the webhook
    assert document["unreachable"] == [] and len(document["nodes"]) == 4
    requests = fleet.api.requests_for("GET", "/apis/discovery.k8s.io/v1/namespaces/egress-xds/endpointslices")
    assert requests and requests[-1].query.get("labelSelector") == "kubernetes.io/service-name=egress-xds"


def test_a_replica_that_does_not_answer_is_named_and_the_view_is_partial(fleet: Fleet) -> None:
    fleet.servers["c"].stop()  # its EndpointSlice still says ready, as in the seconds after a crash
    gone = fleet.servers["c"].address
    for result in (fleet.by_servers(), fleet.by_service()):
        assert result.returncode == EXIT_PARTIAL, result.stdout + result.stderr
        assert f"error: replica {gone}" in result.stderr and "did not answer" in result.stderr
        assert f"server {gone}" in result.stdout and "NO ANSWER" in result.stdout
        assert "Traceback" not in result.stderr
    document = document_of(fleet.by_service("-o", "json"))
    (failure,) = document["unreachable"]
    assert failure["address"] == gone and failure["pod"] == "egress-xds-c" and "UNAVAILABLE" in failure["error"]
    assert document["partial"] is True
    assert sorted(node["node_id"] for node in document["nodes"]) == ["vm-a", "vm-b", "vm-both"]
    alone = fleet.status("--server", gone)
    assert alone.returncode == 1 and f"cannot ask egress-xds at {gone}" in alone.stderr

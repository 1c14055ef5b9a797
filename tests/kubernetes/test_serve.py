"""`egress-xds serve --kubernetes` as a user runs it (a subprocess with a kubeconfig), seen by an ADS client: the
resources reach nodes through the same snapshot path as a policy file, and a change is pushed within a second.
Combined with `--config`, the resources win for the pods they select and the file serves everyone else."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from egress_xds.type_urls import CLUSTER_TYPE_URL
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import egress_proxy, secret
from tests.xds.client import SotwClient, decode, make_node

REPO_ROOT = Path(__file__).resolve().parents[2]
PUSH_DEADLINE_SECONDS = 2.0  # the issue asks for 1 s (measured: ~0.1 s); room for a loaded 2-core CI machine


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Serve:
    proc: subprocess.Popen[bytes]
    address: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def serve(api: FakeApiServer, kubeconfig: Path, tmp_path: Path) -> Iterator[Serve]:
    policy = tmp_path / "policy.yaml"
    policy.write_text("httpsProxy: http://10.250.9.99:3128\n")
    api.apply(secret("creds", "shop", username="shop-user", password="never-logged-pw"))
    api.apply(egress_proxy("corp", "shop", httpsProxy="http://10.250.9.1:3128", credentialsSecretRef={"name": "creds"}))
    address = f"127.0.0.1:{free_port()}"
    log_path = tmp_path / "serve.log"
    argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--kubernetes", "--kubeconfig", str(kubeconfig)]
    argv += ["--config", str(policy), "--listen", address]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        )
    running = Serve(proc, address, log_path)
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", int(address.rsplit(":", 1)[1]))) == 0:
                    break
            assert proc.poll() is None and time.monotonic() < deadline, f"serve did not start:\n{running.log()}"
            time.sleep(0.05)
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
async def channel(serve: Serve) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(serve.address) as opened:
        yield opened


async def proxy_endpoints(client: SotwClient) -> tuple[set[str], object]:
    """The proxy addresses in the next CDS response (and the response, to ACK it)."""
    response = await client.recv()
    endpoints = set()
    for packed in response.resources:
        cluster = decode(CLUSTER_TYPE_URL, packed)
        for group in cluster.load_assignment.endpoints:
            for endpoint in group.lb_endpoints:
                address = endpoint.endpoint.address.socket_address
                endpoints.add(f"{address.address}:{address.port_value}")
    return endpoints, response


async def test_resources_reach_nodes_and_changes_are_pushed(
    serve: Serve, channel: grpc.aio.Channel, api: FakeApiServer
) -> None:
    pod = SotwClient(channel, make_node("client-1.shop", {"namespace": "shop", "labels.app": "client"}))
    vm = SotwClient(channel, make_node("vm-1"))
    try:
        for client in (pod, vm):
            await client.send(CLUSTER_TYPE_URL, [])
        pod_endpoints, pod_response = await proxy_endpoints(pod)
        vm_endpoints, _ = await proxy_endpoints(vm)
        assert "10.250.9.1:3128" in pod_endpoints, serve.log()
        assert "10.250.9.99:3128" in vm_endpoints and "10.250.9.1:3128" not in vm_endpoints, "the file's policy"
        await pod.ack(pod_response)  # type: ignore[arg-type]
        changed_at = time.monotonic()
        api.apply(
            egress_proxy("corp", "shop", httpsProxy="http://10.250.9.2:3128", credentialsSecretRef={"name": "creds"})
        )
        pushed, _ = await proxy_endpoints(pod)
        took = time.monotonic() - changed_at
        assert "10.250.9.2:3128" in pushed and "10.250.9.1:3128" not in pushed
        assert took < PUSH_DEADLINE_SECONDS, f"the change took {took:.2f} s to reach the node"
        await vm.expect_silence(0.3)  # the file's node is not disturbed
    finally:
        await pod.close()
        await vm.close()
    await asyncio.sleep(0.1)
    log = serve.log()
    assert "kubernetes: published" in log and "Traceback" not in log
    assert "never-logged-pw" not in log

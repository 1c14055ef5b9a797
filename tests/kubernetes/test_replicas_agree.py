"""Two replicas of `egress-xds serve` on the same policy agree byte for byte: for the same node, the same versions
and the same serialized resources, over SotW and Delta, with the policy from a file and from Kubernetes (the
in-process API server, both replicas listing the same objects). This is what lets an Envoy move between
replicas without a change (tests/integration/test_replica_failover.py shows it with a real Envoy)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL
from tests.integration.serve_command import ServeCommand
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import egress_proxy, secret
from tests.support.processes import wait_until
from tests.xds.client import DeltaClient, SotwClient, make_node

NODE = make_node("client-1.shop", {"namespace": "shop", "labels.app": "client"})
POLICY = """
httpsProxy: http://10.250.9.99:3128
noProxy: [".internal.example", "10.0.0.0/8"]
rules:
  - {name: partner, domains: ["*.partner.example"], action: {proxy: partner}}
proxies:
  partner: {url: "http://partner:s3cret-pw@10.250.9.7:8080"}
"""
TYPES = (CLUSTER_TYPE_URL, LISTENER_TYPE_URL)


def start_replicas(source_args: list[str], directory: Path, expect_policy: str) -> list[ServeCommand]:
    replicas: list[ServeCommand] = []
    try:
        for name in ("a", "b"):
            replica = ServeCommand(source_args, directory / f"{name}.log")
            replicas.append(replica)
            wait_until(
                lambda replica=replica: expect_policy in [policy.name for policy in replica.get_policy().policies],
                timeout=20,
                what=f"replica {name} to serve policy {expect_policy}",
                describe=replica.describe,
            )
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


@pytest.fixture(params=["file", "kubernetes"])
def replicas(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[ServeCommand]]:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    if request.param == "file":
        started = start_replicas(["--config", str(policy)], tmp_path, "default")
    else:
        api: FakeApiServer = request.getfixturevalue("api")
        kubeconfig: Path = request.getfixturevalue("kubeconfig")
        api.apply(secret("creds", "shop", username="shop-user", password="never-logged-pw"))
        api.apply(
            egress_proxy("corp", "shop", httpsProxy="http://10.250.9.1:3128", credentialsSecretRef={"name": "creds"})
        )
        source = ["--kubernetes", "--kubeconfig", str(kubeconfig), "--config", str(policy)]
        started = start_replicas(source, tmp_path, "egressproxy/shop/corp")
    try:
        yield started
    finally:
        for replica in started:
            replica.stop()


async def sotw_state(address: str) -> dict[str, Any]:
    """Per type: the version and every resource's bytes, as the first response of a new stream has them."""
    async with grpc.aio.insecure_channel(address) as channel:
        client = SotwClient(channel, NODE)
        try:
            state: dict[str, Any] = {}
            for type_url in TYPES:
                await client.send(type_url, [])
                response = await client.recv()
                assert response.type_url == type_url
                state[type_url] = (
                    response.version_info,
                    sorted(packed.SerializeToString() for packed in response.resources),
                )
                await client.ack(response)
            return state
        finally:
            await client.close()


async def delta_state(address: str) -> dict[str, Any]:
    async with grpc.aio.insecure_channel(address) as channel:
        client = DeltaClient(channel, NODE)
        try:
            state: dict[str, Any] = {}
            for type_url in TYPES:
                await client.send(type_url, ["*"])
                response = await client.recv()
                assert response.type_url == type_url
                state[type_url] = {
                    resource.name: (resource.version, resource.resource.SerializeToString())
                    for resource in response.resources
                }
                await client.ack(response)
            return state
        finally:
            await client.close()


@pytest.mark.parametrize("protocol", ["sotw", "delta"])
def test_two_replicas_send_the_same_node_the_same_bytes(replicas: list[ServeCommand], protocol: str) -> None:
    fetch = sotw_state if protocol == "sotw" else delta_state

    async def both() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(fetch(replica.address) for replica in replicas)))

    first, second = asyncio.run(both())
    assert all(first[type_url] for type_url in TYPES), f"nothing was sent: {first}"
    assert first == second, "the replicas disagree for the same node"
    versions = replicas[0].get_policy().snapshots, replicas[1].get_policy().snapshots
    assert [dict(item.versions) for item in versions[0]] == [dict(item.versions) for item in versions[1]]

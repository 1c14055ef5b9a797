"""Many nodes on one snapshot, nodes moving between snapshots, and resources serialized once for all streams."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

import pytest

from egress_xds.policy.node import Node
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from egress_xds.xds import desired as desired_module
from egress_xds.xds import snapshot as snapshot_module
from egress_xds.xds.snapshot import PreparedResource, ResourceSet
from tests.xds.client import DeltaClient, SotwClient, delta_names, eventually, sotw_names
from tests.xds.conftest import Ads
from tests.xds.data import cluster, listener, snapshot

STREAMS_PER_PROTOCOL = 40


async def test_many_nodes_share_one_snapshot_and_only_they_are_woken(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    ads.cache.set_snapshot("g2", snapshot([cluster("other")]))
    sotw = [ads.sotw(node_id=f"sotw-{index}") for index in range(STREAMS_PER_PROTOCOL)]
    delta = [ads.delta(node_id=f"delta-{index}") for index in range(STREAMS_PER_PROTOCOL)]
    bystanders: list[SotwClient | DeltaClient] = [
        ads.sotw(node_id="g2-sotw", group="g2"),
        ads.delta(node_id="g2-delta", group="g2"),
    ]
    everyone: list[SotwClient | DeltaClient] = [*sotw, *delta, *bystanders]
    for client in everyone:
        await client.send(CDS, [])
    first = await asyncio.gather(*(client.recv() for client in everyone))
    sotw_first, delta_first = first[:STREAMS_PER_PROTOCOL], first[STREAMS_PER_PROTOCOL : 2 * STREAMS_PER_PROTOCOL]
    assert all(response == sotw_first[0] for response in sotw_first)  # byte-for-byte the same response
    assert all(response == delta_first[0] for response in delta_first)
    assert sotw_names(sotw_first[0]) == ["a", "b"] and delta_names(delta_first[0]) == ["a", "b"]
    for client, response in zip(everyone, first, strict=True):
        await client.ack(response)

    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b"), cluster("c")]))
    updates = await asyncio.gather(*(client.recv() for client in [*sotw, *delta]))
    assert {tuple(sotw_names(update)) for update in updates[:STREAMS_PER_PROTOCOL]} == {("a", "b", "c")}
    assert {tuple(delta_names(update)) for update in updates[STREAMS_PER_PROTOCOL:]} == {("c",)}
    for client in bystanders:
        await client.expect_silence()
    new_version = ads.cache.get("g1").version(CDS)  # type: ignore[union-attr]
    g1_records = [record for record in ads.registry.streams() if record.group == "g1"]
    assert len(g1_records) == 2 * STREAMS_PER_PROTOCOL
    assert {record.types[CDS].version_sent for record in g1_records} == {new_version}


@pytest.mark.parametrize("protocol", ["sotw", "delta"])
async def test_node_whose_selector_changes_moves_to_the_other_snapshot(ads: Ads, protocol: str) -> None:
    ads.cache.set_snapshot("red", snapshot([cluster("red-proxy")]))
    ads.cache.set_snapshot("blue", snapshot([cluster("blue-proxy")]))
    client = ads.sotw(group="red") if protocol == "sotw" else ads.delta(group="red")
    await client.send(CDS)
    first = await client.recv()
    await client.ack(first)

    def blue_for_node_1(node: Node) -> str | None:
        return "blue" if node.id == "node-1" else node.metadata.get("group")

    assert ads.cache.set_grouping(blue_for_node_1) == 1
    moved = await client.recv()
    if protocol == "sotw":
        assert sotw_names(moved) == ["blue-proxy"]
    else:
        assert delta_names(moved) == ["blue-proxy"] and list(moved.removed_resources) == ["red-proxy"]
    await eventually(lambda: ads.record().group == "blue")


async def test_node_in_no_group_gets_an_empty_configuration(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw(group=None)
    await client.send(CDS, [])
    response = await client.recv()
    assert sotw_names(response) == []


async def test_resources_are_serialized_once_for_all_streams(ads: Ads, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_pack: Callable[..., PreparedResource] = snapshot_module.pack_resource

    def counting_pack(*args: object, **kwargs: object) -> PreparedResource:
        calls.append(str(args[1]))
        return real_pack(*args, **kwargs)

    monkeypatch.setattr(snapshot_module, "pack_resource", counting_pack)
    per_stream_sets: list[str] = []

    class CountingResourceSet(ResourceSet):
        def __init__(self, type_url: str, resources: Mapping[str, PreparedResource]) -> None:
            per_stream_sets.append(type_url)
            super().__init__(type_url, resources)

    monkeypatch.setattr(desired_module, "ResourceSet", CountingResourceSet)
    built = snapshot([cluster("a"), cluster("b")], [listener("l1", "a")])
    assert sorted(calls) == ["a", "b", "l1"]
    ads.cache.set_snapshot("g1", built)

    clients = [ads.sotw(node_id=f"s{index}") for index in range(15)]
    deltas = [ads.delta(node_id=f"d{index}") for index in range(15)]
    for client in clients:
        await client.send(CDS, [])
        await client.send(LDS, [])
    for delta in deltas:
        await delta.send(CDS)
        await delta.send(LDS)
    responses = await asyncio.gather(*(client.recv() for client in [*clients, *deltas] for _ in range(2)))
    assert len(responses) == 60
    assert sorted(calls) == ["a", "b", "l1"]  # 30 streams, 60 responses, no further packing
    # Wildcard streams were answered from the snapshot's own ResourceSet (prebuilt version and body).
    assert per_stream_sets == []

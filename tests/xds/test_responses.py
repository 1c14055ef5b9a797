"""Shared responses: assembled once per content, parsed as the real messages, a nonce never repeated on a stream."""

from __future__ import annotations

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.xds import control_plane, responses
from tests.xds.conftest import Ads
from tests.xds.data import cluster, snapshot


def test_sotw_response_is_one_object_for_every_stream_and_parses_as_the_real_message() -> None:
    resource_set = snapshot([cluster("a"), cluster("b")]).resources(CDS)
    first = responses.sotw_response(resource_set, last_sequence=0)
    other_stream = responses.sotw_response(resource_set, last_sequence=0)
    assert other_stream is first  # the same bytes object: nothing assembled per stream
    expected = DiscoveryResponse(version_info=resource_set.version, type_url=CDS, nonce=first.nonce)
    for name in ("a", "b"):
        expected.resources.add().Pack(cluster(name))
    expected.control_plane.identifier = control_plane.IDENTIFIER
    assert DiscoveryResponse.FromString(first.payload) == expected
    assert first.nonce == format(first.sequence, "x")


def test_a_stream_sent_the_shared_response_already_gets_its_own_with_a_fresh_nonce() -> None:
    resource_set = snapshot([cluster("a")]).resources(CDS)
    shared = responses.sotw_response(resource_set, last_sequence=0)
    again = responses.sotw_response(resource_set, last_sequence=shared.sequence)
    assert again is not shared and again.sequence > shared.sequence and again.nonce != shared.nonce
    assert DiscoveryResponse.FromString(again.payload).nonce == again.nonce
    # A stream type that moved on to a newer response does not get the older shared one back either.
    assert responses.sotw_response(resource_set, last_sequence=again.sequence).sequence > again.sequence
    # Others still share the first one.
    assert responses.sotw_response(resource_set, last_sequence=0) is shared


def test_delta_responses_are_shared_per_shape_and_bounded() -> None:
    resource_set = snapshot([cluster("a"), cluster("b")]).resources(CDS)
    a, b = resource_set.resources["a"], resource_set.resources["b"]
    both = responses.delta_response(resource_set, [a, b], [], last_sequence=0)
    assert responses.delta_response(resource_set, [a, b], [], last_sequence=0) is both
    only_b = responses.delta_response(resource_set, [b], ["gone"], last_sequence=0)
    assert only_b is not both
    parsed = DeltaDiscoveryResponse.FromString(only_b.payload)
    assert [resource.name for resource in parsed.resources] == ["b"]
    assert (parsed.system_version_info, parsed.type_url, parsed.nonce) == (resource_set.version, CDS, only_b.nonce)
    assert list(parsed.removed_resources) == ["gone"]
    for index in range(2 * responses.MAX_SHARED_SHAPES):
        responses.delta_response(resource_set, [], [f"r{index}"], last_sequence=0)
    assert resource_set.shared_responses is not None
    assert len(resource_set.shared_responses) == responses.MAX_SHARED_SHAPES


async def test_streams_in_sync_get_the_same_response_and_a_repeat_on_one_stream_gets_its_own_nonce(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    one, two = ads.sotw("node-1"), ads.sotw("node-2")
    for client in (one, two):
        await client.send(CDS, [])
    first, second = await one.recv(), await two.recv()
    assert first == second  # the same content and nonce: one response shared by both streams
    await one.ack(first)
    await one.send(CDS, [], nonce="")  # a request as if new: the unchanged set is answered again
    again = await one.recv()
    assert again.version_info == first.version_info and again.nonce != first.nonce
    await one.ack(again)
    await ads.acked(CDS, first.version_info, node_id="node-1")
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    changed_one, changed_two = await one.recv(), await two.recv()
    assert changed_one.nonce == changed_two.nonce and changed_one.nonce not in (first.nonce, again.nonce)

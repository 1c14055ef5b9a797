"""State-of-the-World ADS, one test per protocol rule (docs/architecture.md), over a real gRPC channel."""

from __future__ import annotations

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from tests.xds.client import SotwClient, eventually, sotw_names
from tests.xds.conftest import Ads
from tests.xds.data import cluster, listener, snapshot


async def _ack(ads: Ads, client: SotwClient, response: DiscoveryResponse) -> None:
    await client.ack(response)
    await ads.acked(response.type_url, response.version_info, client.node.id)


async def _subscribe_cds(client: SotwClient, names: list[str] | None = None) -> DiscoveryResponse:
    await client.send(CDS, names or [])
    response: DiscoveryResponse = await client.recv()
    assert response.type_url == CDS
    return response


async def test_empty_first_request_is_wildcard_for_listeners_and_clusters(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")], [listener("l1", "a")]))
    client = ads.sotw()
    assert sotw_names(await _subscribe_cds(client)) == ["a", "b"]
    await client.send(LDS, [])
    response = await client.recv()
    assert (response.type_url, sotw_names(response)) == (LDS, ["l1"])


async def test_legacy_wildcard_lasts_while_acks_carry_empty_lists(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw()
    await client.ack(await _subscribe_cds(client))  # Envoy ACKs a wildcard with an empty list
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    assert sotw_names(await client.recv()) == ["a", "b"]


async def test_star_is_explicit_wildcard_and_resubscribe_resends(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    client = ads.sotw()
    first = await _subscribe_cds(client, ["*"])
    assert sotw_names(first) == ["a", "b"]
    # After an explicit subscription an empty list unsubscribes from everything...
    await client.send(CDS, [], nonce=first.nonce, version=first.version_info)
    emptied = await client.recv()
    assert sotw_names(emptied) == []
    # ...and subscribing again re-sends the same, unchanged set.
    await client.send(CDS, ["*"], nonce=emptied.nonce, version=emptied.version_info)
    again = await client.recv()
    assert sotw_names(again) == ["a", "b"]
    assert again.version_info == first.version_info


async def test_listener_and_cluster_responses_carry_the_full_set(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b"), cluster("c")]))
    client = ads.sotw()
    first = await _subscribe_cds(client)
    await client.ack(first)
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", port=9999), cluster("c")]))
    update = await client.recv()
    assert sotw_names(update) == ["a", "b", "c"]  # all of them, not just the changed one, and no duplicates
    assert update.version_info != first.version_info


async def test_nack_is_not_answered_with_the_same_config(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a")]))
    client = ads.sotw()
    good = await _subscribe_cds(client)
    await _ack(ads, client, good)
    await client.send(LDS, [])
    await _ack(ads, client, await client.recv())

    ads.cache.set_snapshot("g1", snapshot([cluster("a", port=1)], [listener("l1", "a")]))
    bad = await client.recv()
    await client.nack(bad, "cluster a: port 1 refused", acked_version=good.version_info)
    record = ads.record()
    await eventually(lambda: record.types[CDS].nack_message is not None)
    status = record.types[CDS]
    assert status.nack_message == "cluster a: port 1 refused"
    assert status.version_acked == good.version_info
    assert status.nack_version == bad.version_info and status.nacked
    await client.expect_silence()

    # A change of another type wakes the stream: it sends the new listeners and the NACKed clusters once more
    # (README "Protocol behaviour"); NACKed again with nothing changed since, they are not sent again.
    ads.cache.set_snapshot("g1", snapshot([cluster("a", port=1)], [listener("l1", "a", port=15002)]))
    response = await client.recv()
    assert response.type_url == LDS
    await _ack(ads, client, response)
    again = await client.recv()
    assert (again.type_url, again.version_info) == (CDS, bad.version_info)
    await client.nack(again, "cluster a: port 1 refused", acked_version=good.version_info)
    await client.expect_silence()

    # A new cluster config is sent.
    ads.cache.set_snapshot("g1", snapshot([cluster("a", port=2)], [listener("l1", "a", port=15002)]))
    fixed = await client.recv()
    assert fixed.type_url == CDS and fixed.version_info not in (good.version_info, bad.version_info)


async def test_request_with_stale_nonce_is_ignored(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    client = ads.sotw()
    first = await _subscribe_cds(client, ["a"])
    ads.cache.set_snapshot("g1", snapshot([cluster("a", port=1), cluster("b")]))
    second = await client.recv()
    assert sotw_names(second) == ["a"]

    # NACK of the first response and a new name list, both answering a response that is no longer the latest.
    await client.send(CDS, ["a", "b"], nonce=first.nonce, error="stale complaint")
    await client.expect_silence()
    assert ads.record().types[CDS].nack_message is None

    # The same request with the latest nonce is honoured.
    await client.send(CDS, ["a", "b"], nonce=second.nonce, version=second.version_info)
    assert sotw_names(await client.recv()) == ["a", "b"]


async def test_requested_but_absent_names_are_pushed_when_they_appear(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw()
    first = await _subscribe_cds(client, ["a", "later"])
    assert sotw_names(first) == ["a"]
    await client.ack(first)
    await client.expect_silence()
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("later"), cluster("unrelated")]))
    assert sotw_names(await client.recv()) == ["a", "later"]


async def test_clusters_are_sent_before_listeners(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a")]))
    client = ads.sotw()
    # Subscribe listeners first: on a change the server must still send clusters first.
    await client.send(LDS, [])
    await client.ack(await client.recv())
    await client.ack(await _subscribe_cds(client))
    ads.cache.set_snapshot("g1", snapshot([cluster("b")], [listener("l1", "b")]))
    order = [(await client.recv()).type_url, (await client.recv()).type_url]
    assert order == [CDS, LDS]


async def test_cluster_removed_only_after_listeners_using_it_are_gone(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("old"), cluster("keep")], [listener("l1", "old")]))
    client = ads.sotw()
    await _ack(ads, client, await _subscribe_cds(client))
    await client.send(LDS, [])
    await _ack(ads, client, await client.recv())

    ads.cache.set_snapshot("g1", snapshot([cluster("new"), cluster("keep")], [listener("l1", "new")]))
    clusters = await client.recv()
    assert clusters.type_url == CDS
    assert sotw_names(clusters) == ["keep", "new", "old"]  # make: the new one, while l1 still uses "old"
    listeners = await client.recv()
    assert listeners.type_url == LDS
    await client.ack(clusters)
    await client.expect_silence()  # "old" stays until the listener change is acknowledged

    await client.ack(listeners)
    final = await client.recv()
    assert final.type_url == CDS
    assert sotw_names(final) == ["keep", "new"]  # break: now nothing uses "old"
    assert final.version_info == ads.cache.get("g1").version(CDS)  # type: ignore[union-attr]


async def test_cluster_kept_while_listener_update_is_nacked(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("old")], [listener("l1", "old")]))
    client = ads.sotw()
    await _ack(ads, client, await _subscribe_cds(client))
    await client.send(LDS, [])
    await _ack(ads, client, await client.recv())

    ads.cache.set_snapshot("g1", snapshot([cluster("new")], [listener("l1", "new")]))
    clusters = await client.recv()
    listeners = await client.recv()
    await client.ack(clusters)
    await client.nack(listeners, "listener l1 rejected")
    await client.expect_silence()  # Envoy still runs the old l1: "old" must not be removed


async def test_node_is_only_required_on_the_first_request(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw(node_id="envoy-7")
    await client.ack(await _subscribe_cds(client))  # the ACK carries no node
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b")]))
    assert sotw_names(await client.recv()) == ["a", "b"]
    assert ads.record("envoy-7").group == "g1"


async def test_unknown_type_url_gets_an_empty_response(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw()
    unknown = "type.googleapis.com/example.Unknown"
    await client.send(unknown, ["x"])
    response = await client.recv()
    assert (response.type_url, list(response.resources)) == (unknown, [])
    assert sotw_names(await _subscribe_cds(client)) == ["a"]  # the stream still works


async def test_first_request_on_reconnect_is_answered_even_if_up_to_date(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    first = ads.sotw()
    response = await _subscribe_cds(first)
    await first.close()
    second = ads.sotw()
    await second.send(CDS, [], version=response.version_info)
    again = await second.recv()
    assert again.version_info == response.version_info and sotw_names(again) == ["a"]


async def test_request_without_nonce_is_answered_even_if_nothing_changed(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw()
    first = await _subscribe_cds(client, ["a"])
    await _ack(ads, client, first)
    await client.send(CDS, ["a"])  # a new request (no nonce): the client wants an answer
    assert (await client.recv()).version_info == first.version_info


async def test_nonce_from_an_earlier_stream_does_not_block_the_first_answer(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw()
    await client.send(CDS, [], nonce="nonce-of-a-previous-stream", version="old")
    assert sotw_names(await client.recv()) == ["a"]

"""Defects the xDS state machine (`test_state_machine.py`) found, each as a small deterministic sequence against the
real server over a loopback channel. Each test failed before its fix."""

from __future__ import annotations

from typing import Any

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from tests.xds.client import DeltaClient, SotwClient, delta_names, delta_versions, eventually, sotw_names
from tests.xds.conftest import Ads
from tests.xds.data import cluster, listener, snapshot

ONE = snapshot([cluster("a")], [listener("l1", "a")])


async def _recv(client: SotwClient | DeltaClient, type_url: str) -> Any:
    response = await client.recv()
    assert response.type_url == type_url, response
    return response


async def _synced_sotw(ads: Ads, first: Any) -> SotwClient:
    ads.cache.set_snapshot("g1", first)
    client = ads.sotw()
    await client.send(CDS, [])
    await client.ack(await _recv(client, CDS))
    await client.send(LDS, [])
    await client.ack(await _recv(client, LDS))
    return client


async def _synced_delta(ads: Ads, first: Any) -> DeltaClient:
    ads.cache.set_snapshot("g1", first)
    client = ads.delta()
    await client.send(CDS)
    await client.ack(await _recv(client, CDS))
    await client.send(LDS)
    await client.ack(await _recv(client, LDS))
    await eventually(lambda: ads.record().types[LDS].ack_time is not None)
    return client


async def test_1_sotw_a_nack_that_crosses_its_fix_is_retried(ads: Ads) -> None:
    client = await _synced_sotw(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", 1)], [listener("l1", "a"), listener("l2", "b")]))
    await client.ack(await _recv(client, CDS))
    listeners = await _recv(client, LDS)
    # The fix reaches the stream before the NACK does: CDS changes, LDS does not.
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", 2)], [listener("l1", "a"), listener("l2", "b")]))
    await client.ack(await _recv(client, CDS))
    await client.nack(listeners, "l2: unknown cluster b")
    again = await _recv(client, LDS)  # was: never sent, the node stayed without l2
    assert again.version_info == listeners.version_info and sotw_names(again) == ["l1", "l2"]


async def test_1_delta_a_nack_that_crosses_its_fix_is_retried(ads: Ads) -> None:
    client = await _synced_delta(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", 1)], [listener("l1", "a"), listener("l2", "b")]))
    await client.ack(await _recv(client, CDS))
    listeners = await _recv(client, LDS)
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", 2)], [listener("l1", "a"), listener("l2", "b")]))
    await client.ack(await _recv(client, CDS))
    await client.nack(listeners, "l2: unknown cluster b")
    again = await _recv(client, LDS)
    assert delta_versions(again) == delta_versions(listeners)


async def test_2_a_cluster_the_latest_cds_removed_is_not_sent_again_for_a_new_listener(ads: Ads) -> None:
    client = await _synced_sotw(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([], []))  # CDS unchanged: l1 still uses a (make-before-break)
    await client.ack(await _recv(client, LDS))
    removed = await _recv(client, CDS)
    assert sotw_names(removed) == []  # not ACKed yet when the next change comes
    ads.cache.set_snapshot("g1", snapshot([], [listener("l2", "a")]))  # a listener naming the removed cluster
    new = await _recv(client, LDS)
    assert sotw_names(new) == ["l2"]
    await client.nack(new, "l2: unknown cluster a")
    await client.expect_silence()  # was: CDS with `a` again, a cluster the configuration no longer has


async def test_3_clusters_of_removed_listeners_go_while_lds_is_nacked(ads: Ads) -> None:
    both = snapshot([cluster("a"), cluster("b")], [listener("l1", "a"), listener("l2", "b")])
    client = await _synced_sotw(ads, both)
    ads.cache.set_snapshot("g1", snapshot([cluster("b")], [listener("l2", "b", port=1)]))  # CDS unchanged: a kept
    await client.nack(await _recv(client, LDS), "l2: port 1 refused")  # Envoy removed l1 all the same
    removed = await _recv(client, CDS)  # was: `a` kept for as long as LDS stays NACKed
    assert sotw_names(removed) == ["b"]


async def test_4_delta_a_refused_then_withdrawn_listener_is_removed(ads: Ads) -> None:
    client = await _synced_delta(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a"), listener("l2", "a", port=1)]))
    await client.nack(await _recv(client, LDS), "l2: port 1 refused")
    await eventually(lambda: ads.record().types[LDS].nacked)
    ads.cache.set_snapshot("g1", snapshot([cluster("a", 2)], [listener("l1", "a")]))
    await client.ack(await _recv(client, CDS))
    update = await _recv(client, LDS)
    assert list(update.removed_resources) == ["l2"]  # was: [] (Envoy may hold l2: it applies listeners one by one)


async def test_5_delta_the_nack_of_an_earlier_response_counts(ads: Ads) -> None:
    client = await _synced_delta(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a"), listener("l2", "a", port=1)]))
    first = await _recv(client, LDS)
    ads.cache.set_snapshot(
        "g1", snapshot([cluster("a")], [listener("l1", "a"), listener("l2", "a", port=1), listener("l3", "a")])
    )
    second = await _recv(client, LDS)
    await client.nack(first, "l2: port 1 refused")  # Envoy answers every response, in order
    await client.ack(second)
    await eventually(lambda: ads.record().types[LDS].nack_message is not None)  # was: the NACK ignored
    ads.cache.set_snapshot(
        "g1", snapshot([cluster("a", 2)], [listener("l1", "a"), listener("l2", "a", port=1), listener("l3", "a")])
    )
    await client.ack(await _recv(client, CDS))
    assert delta_names(await _recv(client, LDS)) == ["l2"]  # the refused listener gets its retry


async def test_6_sotw_a_request_after_a_nack_is_not_an_ack(ads: Ads) -> None:
    client = await _synced_sotw(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a", port=1)]))
    bad = await _recv(client, LDS)
    acked = ads.record().types[LDS].version_acked
    await client.nack(bad, "l1: port 1 refused", acked)
    await eventually(lambda: ads.record().types[LDS].nacked)
    # Envoy's next request of the type (a subscription change) carries the NACKed nonce and its old version.
    await client.send(LDS, ["*"], nonce=bad.nonce, version=acked)
    await client.expect_silence()  # the server has read it
    assert ads.record().types[LDS].version_acked == acked  # was: the NACKed version, read as ACKed


async def test_7_delta_a_name_is_listed_once_in_removed_resources(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", ONE)
    client = ads.delta()
    await client.send(CDS)
    await client.ack(await _recv(client, CDS))
    await client.send(LDS, ["l1", "l2"])
    await client.ack(await _recv(client, LDS))
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a"), listener("l2", "a", port=1)]))
    await client.nack(await _recv(client, LDS), "l2: port 1 refused")
    await eventually(lambda: ads.record().types[LDS].nacked)
    ads.cache.set_snapshot("g1", snapshot([cluster("a", 2)], [listener("l1", "a")]))
    await client.ack(await _recv(client, CDS))
    update = await _recv(client, LDS)
    assert list(update.removed_resources) == ["l2"]


async def test_8_delta_a_response_after_an_unsubscribe_counts_as_a_change_for_the_retry(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b"), cluster("c")], [listener("l1", "c")]))
    client = ads.delta()
    await client.send(CDS, ["a", "b"])
    await client.ack(await _recv(client, CDS))
    await client.send(LDS)
    listeners = await _recv(client, LDS)
    await client.nack(listeners, "l1: unknown cluster c")
    await eventually(lambda: ads.record().types[LDS].nacked)
    await client.send(CDS, ["c"], ["b"])
    await client.ack(await _recv(client, CDS))
    again = await _recv(client, LDS)  # was: never sent (the response after an unsubscribe was "no change")
    assert delta_versions(again) == delta_versions(listeners)


async def test_9_delta_a_refused_listener_is_retried_after_a_later_ack(ads: Ads) -> None:
    client = await _synced_delta(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([cluster("a")], [listener("l1", "a"), listener("l2", "a", port=1)]))
    await client.nack(await _recv(client, LDS), "l2: port 1 refused")
    await eventually(lambda: ads.record().types[LDS].nacked)
    ads.cache.set_snapshot(
        "g1", snapshot([cluster("a")], [listener("l1", "a"), listener("l2", "a", port=1), listener("l3", "a")])
    )
    await client.ack(await _recv(client, LDS))  # l3 alone: ACKed
    await eventually(lambda: not ads.record().types[LDS].nacked)
    ads.cache.set_snapshot(
        "g1", snapshot([cluster("a", 2)], [listener("l1", "a"), listener("l2", "a", port=1), listener("l3", "a")])
    )
    await client.ack(await _recv(client, CDS))
    assert delta_names(await _recv(client, LDS)) == ["l2"]  # was: l2 never offered again


async def test_10_delta_unsubscribing_star_keeps_names_subscribed_in_the_same_request(ads: Ads) -> None:
    client = await _synced_delta(ads, ONE)
    ads.cache.set_snapshot("g1", snapshot([], [listener("l1", "a")]))  # l1 still uses a: a is kept
    await client.expect_silence()
    await client.send(LDS, ["l1"], ["*"])
    update = await _recv(client, LDS)  # was: first a CDS removing `a`, which l1 uses
    assert delta_names(update) == ["l1"]
    await client.ack(update)
    await client.expect_silence()

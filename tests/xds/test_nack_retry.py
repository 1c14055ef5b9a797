"""A NACKed type is sent again, once, when anything else in the node's configuration changes (README "Protocol
behaviour"): a listener NACKed because it needs a cluster Envoy rejected must get a chance once the cluster is
fixed, although its own version did not change. A NACK alone never causes a resend."""

from __future__ import annotations

from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryResponse, DiscoveryResponse

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from tests.xds.client import DeltaClient, SotwClient, delta_versions, eventually, sotw_names
from tests.xds.conftest import Ads
from tests.xds.data import cluster, listener, snapshot

BROKEN = snapshot([cluster("a"), cluster("b", port=1)], [listener("l1", "a"), listener("l2", "b")])
FIXED = snapshot([cluster("a"), cluster("b", port=2)], [listener("l1", "a"), listener("l2", "b")])


async def _sotw_recv(client: SotwClient, type_url: str) -> DiscoveryResponse:
    response: DiscoveryResponse = await client.recv()
    assert response.type_url == type_url, response
    return response


async def _delta_recv(client: DeltaClient, type_url: str) -> DeltaDiscoveryResponse:
    response: DeltaDiscoveryResponse = await client.recv()
    assert response.type_url == type_url, response
    return response


async def test_sotw_nacked_listeners_are_sent_again_once_after_a_cluster_change(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", BROKEN)
    client = ads.sotw()
    await client.send(CDS, [])
    clusters = await _sotw_recv(client, CDS)
    await client.nack(clusters, "cluster b rejected")
    await client.send(LDS, [])
    listeners = await _sotw_recv(client, LDS)
    await client.nack(listeners, "listener l2: unknown cluster b")
    await eventually(lambda: ads.record().types[LDS].nacked)
    await client.expect_silence()  # a NACK alone sends nothing

    ads.cache.set_snapshot("g1", FIXED)  # only the clusters change
    fixed = await _sotw_recv(client, CDS)
    await client.ack(fixed)
    again = await _sotw_recv(client, LDS)
    assert (again.version_info, sotw_names(again)) == (listeners.version_info, ["l1", "l2"])
    assert again.nonce != listeners.nonce
    await client.ack(again)
    await ads.acked(LDS, listeners.version_info)
    status = ads.record().types[LDS]
    assert not status.nacked and set(status.acked) == {"l1", "l2"}
    await client.expect_silence()


async def test_sotw_a_repeated_nack_with_nothing_changed_is_not_answered(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", BROKEN)
    client = ads.sotw()
    await client.send(CDS, [])
    await client.ack(await _sotw_recv(client, CDS))
    await client.send(LDS, [])
    listeners = await _sotw_recv(client, LDS)
    await client.nack(listeners, "rejected")
    await eventually(lambda: ads.record().types[LDS].nacked)  # the change must come after the NACK
    ads.cache.set_snapshot("g1", FIXED)
    await client.ack(await _sotw_recv(client, CDS))
    again = await _sotw_recv(client, LDS)
    await client.nack(again, "rejected again")
    await eventually(lambda: ads.record().types[LDS].nack_message == "rejected again")
    await client.expect_silence(1.0)  # never a loop: the second NACK is not answered
    # The NACKed type's own change is sent as always; a NACKed CDS (before LDS in ADS order) is retried after.
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", port=2)], [listener("l1", "a")]))
    changed = await _sotw_recv(client, LDS)
    assert sotw_names(changed) == ["l1"]
    await client.expect_silence()


async def test_sotw_nacked_clusters_are_retried_after_a_listener_change(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", BROKEN)
    client = ads.sotw()
    await client.send(CDS, [])
    clusters = await _sotw_recv(client, CDS)
    await client.nack(clusters, "cluster b rejected")
    await client.send(LDS, [])
    await client.ack(await _sotw_recv(client, LDS))
    await eventually(lambda: ads.record().types[CDS].nacked)
    ads.cache.set_snapshot("g1", snapshot([cluster("a"), cluster("b", port=1)], [listener("l1", "a")]))
    await client.ack(await _sotw_recv(client, LDS))
    again = await _sotw_recv(client, CDS)
    assert again.version_info == clusters.version_info
    await client.expect_silence()


async def test_delta_nacked_listeners_are_sent_again_once_after_a_cluster_change(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", BROKEN)
    client = ads.delta()
    await client.send(CDS)
    await client.nack(await _delta_recv(client, CDS), "cluster b rejected")
    await client.send(LDS)
    listeners = await _delta_recv(client, LDS)
    await client.nack(listeners, "listener l2: unknown cluster b")
    await eventually(lambda: ads.record().types[LDS].nacked)
    await client.expect_silence()

    ads.cache.set_snapshot("g1", FIXED)
    fixed = await _delta_recv(client, CDS)
    assert list(delta_versions(fixed)) == ["b"]
    await client.ack(fixed)
    again = await _delta_recv(client, LDS)
    assert delta_versions(again) == delta_versions(listeners)  # the refused versions, again
    await client.ack(again)
    await eventually(lambda: ads.record().types[LDS].ack_time is not None)
    status = ads.record().types[LDS]
    assert not status.nacked and not status.still_refused and set(status.acked) == {"l1", "l2"}
    await client.expect_silence()

    await client.nack(again, "a late complaint")  # a NACK of nothing new: not answered
    await client.expect_silence()


async def test_delta_reconnect_declared_resources_count_as_held(ads: Ads) -> None:
    """A Delta Envoy that reconnects (e.g. after a server restart) declares what it holds and is sent only what
    differs: the status must show it holding the rest (was: NOT SENT, every resource "(not held)")."""
    ads.cache.set_snapshot("g1", FIXED)
    first = ads.delta()
    await first.send(CDS)
    clusters = delta_versions(await _delta_recv(first, CDS))
    await first.send(LDS)
    listeners = delta_versions(await _delta_recv(first, LDS))
    await first.close()
    await eventually(lambda: not ads.registry.for_node("node-1"))

    again = ads.delta()
    await again.send(CDS, initial=clusters)
    await again.send(LDS, initial={**listeners, "l2": "an-older-version"})
    update = await _delta_recv(again, LDS)
    assert list(delta_versions(update)) == ["l2"]
    await again.expect_silence()
    cds = ads.record().types[CDS]
    assert set(cds.acked) == {"a", "b"} and cds.version_acked == FIXED.version(CDS) == cds.version_sent
    assert cds.ack_time is not None and cds.last_update_time is not None
    lds = ads.record().types[LDS]
    assert set(lds.acked) == {"l1"}  # l2 is being updated; what the client holds of it is unknown
    await again.ack(update)
    await eventually(lambda: set(ads.record().types[LDS].acked) == {"l1", "l2"})
    assert ads.record().types[LDS].version_acked == FIXED.version(LDS)

"""Make-before-break when responses go unacknowledged: what a stream *may* hold (egress_xds/xds/state.py `held`,
`held_uses`) after NACKs, which the ACK-driven tests in test_sotw.py never reach (found by mutation testing,
scripts/mutation.sh state).

Envoy applies listeners and clusters one by one, so after a NACK it may run part of the rejected response: a
cluster named by any listener it may hold must stay until a listener response without it is ACKed.
"""

from __future__ import annotations

from envoy.service.discovery.v3.discovery_pb2 import DiscoveryResponse

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.type_urls import LISTENER_TYPE_URL as LDS
from tests.xds.client import SotwClient, eventually, sotw_names
from tests.xds.conftest import Ads
from tests.xds.data import cluster, listener, snapshot


async def _recv(client: SotwClient, type_url: str) -> DiscoveryResponse:
    response: DiscoveryResponse = await client.recv()
    assert response.type_url == type_url
    return response


async def _nacked(ads: Ads, client: SotwClient, response: DiscoveryResponse) -> None:
    await client.nack(response, f"{response.type_url} rejected (test)")
    await eventually(lambda: ads.record().types[response.type_url].nonce == response.nonce)


async def _listeners_acked(ads: Ads, client: SotwClient) -> None:
    await client.send(LDS, [])
    listeners = await _recv(client, LDS)
    await client.ack(listeners)
    await ads.acked(LDS, listeners.version_info)


async def test_a_cluster_of_a_nacked_cluster_response_is_kept_while_a_listener_uses_it(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("old")], [listener("l1", "old")]))
    client = ads.sotw()
    await client.send(CDS, [])
    await client.nack(await _recv(client, CDS), "cluster old rejected (test)")
    await _listeners_acked(ads, client)

    ads.cache.set_snapshot("g1", snapshot([cluster("new")], [listener("l1", "new")]))
    # Envoy may run "old" from the NACKed response, and l1 (ACKed) points at it.
    assert sotw_names(await _recv(client, CDS)) == ["new", "old"]
    assert sotw_names(await _recv(client, LDS)) == ["l1"]


async def test_clusters_of_several_unacknowledged_responses_are_all_kept(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("old")], [listener("l1", "old")]))
    client = ads.sotw()
    await client.send(CDS, [])
    first = await _recv(client, CDS)
    await _listeners_acked(ads, client)
    await _nacked(ads, client, first)

    ads.cache.set_snapshot("g1", snapshot([cluster("old"), cluster("extra")], [listener("l1", "old")]))
    second = await _recv(client, CDS)
    assert sotw_names(second) == ["extra", "old"]
    await _nacked(ads, client, second)

    ads.cache.set_snapshot("g1", snapshot([cluster("new")], [listener("l1", "new")]))
    assert sotw_names(await _recv(client, CDS)) == ["new", "old"]


async def test_clusters_of_every_listener_version_sent_since_the_last_ack_are_kept(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("old"), cluster("mid")], [listener("l1", "old")]))
    client = ads.sotw()
    await client.send(CDS, [])
    clusters = await _recv(client, CDS)
    await client.ack(clusters)
    await ads.acked(CDS, clusters.version_info)
    await _listeners_acked(ads, client)

    # l1 now points at "mid"; Envoy NACKs the response but may have applied it.
    ads.cache.set_snapshot("g1", snapshot([cluster("old"), cluster("mid")], [listener("l1", "mid")]))
    await _nacked(ads, client, await _recv(client, LDS))

    ads.cache.set_snapshot("g1", snapshot([cluster("new")], [listener("l1", "new")]))
    # Either version of l1 may be running: both clusters stay.
    assert sotw_names(await _recv(client, CDS)) == ["mid", "new", "old"]
    listeners = await _recv(client, LDS)
    await client.ack(listeners)
    # Once a listener response is ACKed, nothing uses them any more.
    assert sotw_names(await _recv(client, CDS)) == ["new"]

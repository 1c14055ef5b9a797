"""The gRPC server around the protocol: stream records, log lines, shutdown, listening."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import grpc
import pytest

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import AdsVariant
from egress_xds.xds.server import (
    bound_port,
    create_server,
    install_signal_handlers,
    start_server,
    stop_server,
)
from tests.xds.client import SotwClient, eventually, make_node
from tests.xds.conftest import Ads, group_by_metadata
from tests.xds.data import cluster, snapshot


async def test_stream_record_tracks_sent_acked_and_nacked(ads: Ads) -> None:
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.delta(node_id="envoy-9")
    await client.send(CDS)
    response = await client.recv()
    record = ads.record("envoy-9")
    assert record.protocol is AdsVariant.DELTA and record.peer.startswith("ipv4:127.0.0.1:")
    status = record.types[CDS]
    assert (status.version_sent, status.nonce, status.version_acked) == (
        response.system_version_info,
        response.nonce,
        "",
    )
    assert status.wildcard and status.last_update_time is not None
    await client.ack(response)
    await eventually(lambda: status.version_acked == response.system_version_info)
    assert status.ack_time is not None and not status.nacked

    ads.cache.set_snapshot("g1", snapshot([cluster("a", port=1)]))
    rejected = await client.recv()
    await client.nack(rejected, "bad port")
    await eventually(lambda: status.nacked)
    assert (status.nack_message, status.nack_version) == ("bad port", rejected.system_version_info)
    assert status.version_acked == response.system_version_info and status.nack_time is not None

    await client.close()
    await eventually(lambda: not ads.registry.for_node("envoy-9"))


async def test_connect_nack_and_disconnect_are_logged(ads: Ads, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="egress_xds.xds")
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw(node_id="envoy-log")
    await client.send(CDS, [])
    response = await client.recv()
    await client.nack(response, "first line\nsecond line")
    await eventually(lambda: any("NACK" in line for line in caplog.messages))
    await client.close()
    await eventually(lambda: any("disconnected" in line for line in caplog.messages))
    lines = [line for line in caplog.messages if "envoy-log" in line]
    connected, nack, disconnected = lines
    assert "connected" in connected and "protocol=sotw" in connected and "peer=ipv4:127.0.0.1:" in connected
    assert nack.endswith("first line second line") and CDS in nack  # Envoy's message, on one line
    assert "disconnected" in disconnected and "protocol=sotw" in disconnected


async def test_stop_ends_streams_at_once_with_unavailable() -> None:
    cache = SnapshotCache(group_by_metadata)
    cache.set_snapshot("g1", snapshot([cluster("a")]))
    server = await start_server(cache, "127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bound_port(server)}") as channel:
        client = SotwClient(channel, make_node("n", {"group": "g1"}))
        await client.send(CDS, [])
        await client.recv()
        stop = asyncio.create_task(stop_server(server, grace=30))
        await asyncio.wait_for(client.ended.wait(), 5)  # long before the 30 s grace
        assert await client.call.code() == grpc.StatusCode.UNAVAILABLE
        await asyncio.wait_for(stop, 5)


async def test_signal_stops_the_server() -> None:
    cache = SnapshotCache(group_by_metadata)
    server = await start_server(cache, "127.0.0.1:0")
    stopped = asyncio.Event()
    install_signal_handlers(server, grace=1, signals=(signal.SIGUSR1,), on_stop=stopped.set)
    os.kill(os.getpid(), signal.SIGUSR1)
    await asyncio.wait_for(stopped.wait(), 5)
    timed_out = await server.wait_for_termination(timeout=1)
    assert not timed_out


async def test_a_second_server_cannot_take_the_same_port() -> None:
    cache = SnapshotCache(group_by_metadata)
    server = await start_server(cache, "127.0.0.1:0")
    try:
        with pytest.raises(RuntimeError):
            create_server(cache, f"127.0.0.1:{bound_port(server)}")
    finally:
        await stop_server(server, grace=0)

"""The gRPC server around the protocol: stream records, log lines, listening, and how streams end.

Shutdown and the maximum connection age are checked from the clients' side: when each real gRPC client saw its
stream end, with which status, and over which connection it came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest

import egress_xds
from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.registry import AdsVariant, TypeRecord
from egress_xds.xds.server import AdsServer
from egress_xds.xds.sotw import SotwStream
from tests.xds.client import SotwClient, eventually, make_node
from tests.xds.conftest import Ads, group_by_metadata
from tests.xds.data import cluster, snapshot
from tests.xds.fleet import Fleet, most_within, own_connection, spread_evenly


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


# -- stopping --------------------------------------------------------------------------------------------------


@asynccontextmanager
async def running(server: AdsServer, envoys: int) -> AsyncIterator[Fleet]:
    await server.start()
    clients = Fleet(f"127.0.0.1:{server.port}", envoys, {"group": "g1"})
    try:
        await clients.connect()
        assert len(server.registry) == envoys
        yield clients
    finally:
        await clients.close()
        await server.stop(grace=0)


def new_server(**settings: float) -> AdsServer:
    """A bound server whose group "g1" has one cluster."""
    cache = SnapshotCache(group_by_metadata)
    cache.set_snapshot("g1", snapshot([cluster("a")]))
    return AdsServer(cache, "127.0.0.1:0", **settings)


async def test_stop_without_a_drain_window_ends_streams_at_once_with_unavailable() -> None:
    server = new_server()
    async with running(server, envoys=5) as envoys:
        started = asyncio.get_running_loop().time()
        stop = asyncio.create_task(server.stop(grace=30))
        ended = await envoys.all_ended(timeout=5)  # long before the 30 s grace
        assert ended[-1] - started < 1.0
        assert await envoys.codes() == [grpc.StatusCode.UNAVAILABLE] * 5
        await asyncio.wait_for(stop, 5)


async def test_stop_spreads_the_closes_over_the_drain_window() -> None:
    window, count = 1.5, 30
    server = new_server(drain_window=window)
    async with running(server, envoys=count) as envoys:
        started = asyncio.get_running_loop().time()
        stop = asyncio.create_task(server.stop(grace=5))
        ended = await envoys.all_ended(timeout=window + 5)
        await asyncio.wait_for(stop, 5)
        offsets = [time - started for time in ended]
        assert offsets[-1] <= window + 0.5, offsets
        # spread, not at once: over the window, and evenly (one close every 50 ms; a busy machine may bunch a few)
        assert offsets[-1] - offsets[0] >= 0.7 * window, offsets
        assert most_within(offsets, 0.1) <= 6, offsets
        assert spread_evenly(offsets, window, slack=4), offsets
        assert await envoys.codes() == [grpc.StatusCode.UNAVAILABLE] * count


async def test_a_draining_server_accepts_no_new_stream_and_turns_unhealthy_first() -> None:
    events: list[str] = []
    server = new_server(drain_window=2.0)

    async def stopping() -> None:
        events.append(f"stopping with {len(server.registry)} streams")

    server.on_stopping(stopping)
    async with running(server, envoys=4) as envoys:
        stop = asyncio.create_task(server.stop(grace=5))
        await eventually(lambda: len(server.registry) < 4, timeout=2)
        assert events == ["stopping with 4 streams"]  # before the first close
        # an Envoy whose stream ended comes back: not on its old connection (GOAWAY), not on a new one
        async with own_connection(f"127.0.0.1:{server.port}") as fresh:
            for channel in (envoys.channels[0], fresh):
                late = SotwClient(channel, make_node("late", {"group": "g1"}))
                with contextlib.suppress(grpc.aio.AioRpcError):  # the write fails once the call has
                    await late.send(CDS, [])
                await asyncio.wait_for(late.ended.wait(), 2)
                assert late.responses.empty() and await late.call.code() == grpc.StatusCode.UNAVAILABLE
        assert len(server.registry) >= 1, "the drain was over before the new streams were tried"
        assert not server.registry.for_node("late")
        second = asyncio.create_task(server.stop(grace=5))  # a second signal: waits for the same stop
        await asyncio.wait_for(asyncio.gather(stop, second), 10)
        assert events == ["stopping with 4 streams"]


async def test_max_connection_age_closes_each_connection_once_jittered_and_envoy_comes_back_on_a_new_one() -> None:
    """gRPC core's max connection age, as `serve --max-connection-age` sets it: every connection is closed after
    its own jittered age (so a fleet that connected together does not reconnect together); the client's new
    stream then runs on a new connection (another local port), which a load balancer can send elsewhere."""
    age, grace, count = 1.0, 0.2, 12
    server = new_server(max_connection_age=age, max_connection_age_grace=grace)
    async with running(server, envoys=count) as envoys:
        connected = asyncio.get_running_loop().time()
        peers = {record.peer for record in server.registry.for_node("n0")}
        ended = await envoys.all_ended(timeout=age * 1.1 + grace + 3)
        lifetimes = [time - connected for time in ended]
        assert age * 0.9 - 0.1 <= lifetimes[0] and lifetimes[-1] <= age * 1.1 + grace + 1.0, lifetimes
        assert lifetimes[-1] - lifetimes[0] >= 0.02, f"no jitter: {lifetimes}"
        assert set(await envoys.codes()) == {grpc.StatusCode.UNAVAILABLE}

        again = SotwClient(envoys.channels[0], make_node("n0", {"group": "g1"}))
        await again.send(CDS, [])
        await again.recv()
        [record] = server.registry.for_node("n0")
        assert record.peer not in peers, "the new stream ran on the old connection"
        await again.close()


async def test_a_second_server_cannot_take_the_same_port() -> None:
    cache = SnapshotCache(group_by_metadata)
    async with AdsServer(cache, "127.0.0.1:0") as server:
        with pytest.raises(RuntimeError):
            AdsServer(cache, f"127.0.0.1:{server.port}")


def _tasks_running_our_code() -> list[asyncio.Task[object]]:
    """Tasks with a frame of egress_xds on their stack (gRPC's own per-RPC tasks run Cython frames only)."""
    package = str(Path(egress_xds.__file__).parent)
    return [
        task
        for task in asyncio.all_tasks()
        if any(frame.f_code.co_filename.startswith(package) for frame in task.get_stack())
    ]


async def test_an_idle_stream_costs_no_task_of_its_own(ads: Ads) -> None:
    """The RPC's own task reads and serves; a change is pushed by a task that ends with the push. Before, every
    stream kept a reader task beside the RPC's for its whole life."""
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    clients = [ads.sotw(node_id=f"sotw-{index}") for index in range(5)]
    clients += [ads.delta(node_id=f"delta-{index}") for index in range(5)]
    for client in clients:
        await client.send(CDS)
        await client.ack(await client.recv())
    ads.cache.set_snapshot("g1", snapshot([cluster("b")]))
    for client in clients:
        await client.ack(await client.recv())
    await eventually(lambda: _all_acked(_cds_statuses(ads), count=10))
    await eventually(lambda: not _tasks_running_our_code())
    assert ads.server is not None and len(ads.server.streams()) == 10


def _all_acked(statuses: list[TypeRecord], count: int) -> bool:
    return len(statuses) == count and all(status.version_acked == status.version_sent for status in statuses)


def _cds_statuses(ads: Ads) -> list[TypeRecord]:
    return [record.types[CDS] for record in ads.registry.streams() if CDS in record.types]


async def test_a_defect_in_a_push_ends_the_stream_with_unknown_and_is_logged(
    ads: Ads, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A change is pushed by a short-lived task; what it fails with must not vanish with that task."""
    ads.cache.set_snapshot("g1", snapshot([cluster("a")]))
    client = ads.sotw(node_id="envoy-defect")
    await client.send(CDS)
    await client.ack(await client.recv())
    await eventually(lambda: _all_acked(_cds_statuses(ads), count=1))

    def broken(*_: object) -> bytes | None:
        raise RuntimeError("a defect")

    monkeypatch.setattr(SotwStream, "_respond", broken)
    ads.cache.set_snapshot("g1", snapshot([cluster("b")]))
    await asyncio.wait_for(client.ended.wait(), 5)
    assert await client.call.code() == grpc.StatusCode.UNKNOWN
    await eventually(lambda: not ads.registry.for_node("envoy-defect"))
    assert "a defect" in caplog.text

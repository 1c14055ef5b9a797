"""Many SotW clients, one connection each as Envoys have, for tests of how a server ends streams (shutdown drain,
maximum connection age): when each client saw its stream end, and with which status."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import grpc

from egress_xds.type_urls import CLUSTER_TYPE_URL as CDS
from tests.xds.client import SotwClient, make_node


def own_connection(address: str) -> grpc.aio.Channel:
    """A channel with its own connection: by default, gRPC channels to one target share one connection."""
    return grpc.aio.insecure_channel(address, options=(("grpc.use_local_subchannel_pool", 1),))


class Fleet:
    """`count` SotW clients of `address` (node ids `n0`, `n1`, ...), each on its own connection; once `connect`ed
    each holds its first CDS response, and `ended_at[i]` is the loop time client `i` saw its stream end."""

    def __init__(self, address: str, count: int, metadata: Mapping[str, str] | None = None) -> None:
        self.channels = [own_connection(address) for _ in range(count)]
        self.clients = [
            SotwClient(channel, make_node(f"n{index}", metadata)) for index, channel in enumerate(self.channels)
        ]
        self.ended_at: list[float | None] = [None] * count
        self._watchers: list[asyncio.Task[None]] = []

    async def connect(self, timeout: float = 10.0) -> None:
        """Every stream open and answered (the server has registered it)."""
        for client in self.clients:
            await client.send(CDS, [])
        for index, client in enumerate(self.clients):
            await client.recv(timeout)
            self._watchers.append(asyncio.create_task(self._watch(index, client)))

    async def _watch(self, index: int, client: SotwClient) -> None:
        await client.ended.wait()
        self.ended_at[index] = asyncio.get_running_loop().time()

    async def all_ended(self, timeout: float) -> list[float]:
        """The loop times the streams ended, sorted; TimeoutError if one is still open after `timeout`."""
        await asyncio.wait_for(asyncio.gather(*self._watchers), timeout)
        return sorted(time for time in self.ended_at if time is not None)

    async def codes(self) -> list[grpc.StatusCode]:
        return [await client.call.code() for client in self.clients]

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)
        for channel in self.channels:
            await channel.close()


def most_within(times: Iterable[float], span: float) -> int:
    """The largest number of `times` inside any interval of length `span`."""
    ordered = sorted(times)
    return max(
        (sum(1 for other in ordered[index:] if other - first <= span) for index, first in enumerate(ordered)), default=0
    )


def spread_evenly(offsets: list[float], window: float, *, slack: int) -> bool:
    """Each quarter of `window` holds a quarter of the (sorted) `offsets`, give or take `slack`."""
    quarters = [
        sum(1 for offset in offsets if index * window / 4 <= offset < (index + 1) * window / 4) for index in range(4)
    ]
    return all(abs(quarter - len(offsets) / 4) <= slack for quarter in quarters)

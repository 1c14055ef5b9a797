"""Ending many streams over a window instead of all at once (`serve --drain-window`).

When a replica shuts down (a rollout, a scale-down), each of its Envoys reconnects to another replica. Closed in the
same millisecond, 10,000 streams arrive there as one burst of 10,000 connects, handshakes and full pushes; spread
evenly over a few seconds, the receiving replicas serve them as they come. Stream `i` of `n` is closed at
`window * i / n`: the first at once, the last one step before the window ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

# The loop wakes at most this often, whatever the number of streams: 10,000 streams over 5 s are closed in 500
# steps of 20, not 10,000 sleeps of 0.5 ms.
MIN_STEP_SECONDS = 0.01


class Closable(Protocol):
    def close(self) -> None: ...


def close_offsets(count: int, window: float) -> list[float]:
    """When, in seconds after the start, each of `count` streams is closed over `window`."""
    if count <= 0:
        return []
    return [window * index / count for index in range(count)]


async def close_over(streams: Sequence[Closable], window: float) -> None:
    """Close `streams` in order, evenly spread over `window` seconds (0: all at once). Returns after the last
    close, at most `window` seconds (and one step) after it was called."""
    loop = asyncio.get_running_loop()
    offsets = close_offsets(len(streams), max(window, 0.0))
    start = loop.time()
    closed = 0
    while closed < len(streams):
        elapsed = loop.time() - start
        while closed < len(streams) and offsets[closed] <= elapsed:
            streams[closed].close()
            closed += 1
        if closed < len(streams):
            await asyncio.sleep(max(offsets[closed] - elapsed, MIN_STEP_SECONDS))

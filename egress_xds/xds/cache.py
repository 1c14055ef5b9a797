"""One snapshot per group of nodes, and watches that wake exactly the streams whose snapshot changed.

The cache is the one small interface between whatever produces configuration (policy reloads, Kubernetes) and
the protocol servers, as in go-control-plane: producers call `set_snapshot` / `remove` / `set_grouping`; a
stream calls `watch(node, wake)` once, then reads `watch.snapshot()` whenever `wake` was called.

Which group a node belongs to is decided by an injected function, so the cache knows nothing about policies.

- The function returns a key that has a snapshot: the node gets that snapshot.
- It returns a key that has no snapshot (yet, or any more after `remove`): the node *waits*. It keeps whatever
  it holds and is sent nothing until a snapshot for that key is set or a regrouping moves it. This covers the
  start-up race (streams connect before the first snapshot is built) without pushing a transient empty config.
- It returns None (no policy selects the node): the node gets the `unmatched` snapshot, by default an empty
  one, so Envoy finishes initialising with no listeners and clusters instead of stalling in its initial fetch
  (and a node whose policy was withdrawn stops tunnelling). Pass `unmatched=None` to make such nodes wait.

All methods must be called from the event loop thread that runs the server (wakes are plain callbacks, e.g.
`asyncio.Event.set`); from another thread use `loop.call_soon_threadsafe`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable

from egress_xds.policy.node import Node
from egress_xds.xds.snapshot import Snapshot

GroupFn = Callable[[Node], Hashable | None]

EMPTY_SNAPSHOT = Snapshot.empty()

_log = logging.getLogger("egress_xds.xds")


class Watch:
    """A stream's interest in its node's group. `wake` is called whenever `snapshot()` may have changed."""

    __slots__ = ("_cache", "_closed", "group", "node", "wake")

    def __init__(self, cache: SnapshotCache, node: Node, group: Hashable | None, wake: Callable[[], None]) -> None:
        self._cache = cache
        self._closed = False
        self.node = node
        self.group = group
        self.wake = wake

    def snapshot(self) -> Snapshot | None:
        """The snapshot this node should hold now, or None while it waits for one."""
        return self._cache.snapshot_for_group(self.group)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._cache._unwatch(self)


class SnapshotCache:
    """Snapshots by group key, and the watches of connected streams."""

    def __init__(self, group_for_node: GroupFn, *, unmatched: Snapshot | None = EMPTY_SNAPSHOT) -> None:
        self._group_for_node = group_for_node
        self._unmatched = unmatched
        self._snapshots: dict[Hashable, Snapshot] = {}
        self._watches: dict[Hashable | None, set[Watch]] = {}

    # -- producers ---------------------------------------------------------------------------------------------

    def set_snapshot(self, key: Hashable, snapshot: Snapshot) -> bool:
        """Install the snapshot of a group and wake its streams. Returns False (and wakes nobody) if unchanged."""
        if key is None:
            raise ValueError("None is not a group key: it means 'no group'")
        current = self._snapshots.get(key)
        if current is not None and current.same_as(snapshot):
            return False
        self._snapshots[key] = snapshot
        self._wake(self._watches.get(key, ()))
        return True

    def remove(self, key: Hashable) -> None:
        """Forget a group's snapshot. Its streams keep their configuration and wait (see the module docstring)."""
        self._snapshots.pop(key, None)

    def set_grouping(self, group_for_node: GroupFn) -> int:
        """Replace the grouping function and move every stream whose group changes. Returns how many moved."""
        self._group_for_node = group_for_node
        moved: list[Watch] = []
        for watches in list(self._watches.values()):
            for watch in list(watches):
                group = self.group_of(watch.node)
                if group != watch.group:
                    self._move(watch, group)
                    moved.append(watch)
        if moved:
            _log.info("regrouping moved %d stream(s) to another snapshot", len(moved))
        self._wake(moved)
        return len(moved)

    # -- readers -----------------------------------------------------------------------------------------------

    def get(self, key: Hashable) -> Snapshot | None:
        return self._snapshots.get(key)

    def keys(self) -> list[Hashable]:
        return list(self._snapshots)

    def group_of(self, node: Node) -> Hashable | None:
        return self._group_for_node(node)

    def snapshot_for_group(self, group: Hashable | None) -> Snapshot | None:
        if group is None:
            return self._unmatched
        return self._snapshots.get(group)

    def snapshot_for_node(self, node: Node) -> Snapshot | None:
        return self.snapshot_for_group(self.group_of(node))

    def watch_count(self, key: Hashable | None = None) -> int:
        """Streams watching one group (None: those in no group)."""
        return len(self._watches.get(key, ()))

    # -- streams -----------------------------------------------------------------------------------------------

    def watch(self, node: Node, wake: Callable[[], None]) -> Watch:
        """Register a stream's node. `wake` is called (synchronously) when its snapshot may have changed."""
        watch = Watch(self, node, self.group_of(node), wake)
        self._watches.setdefault(watch.group, set()).add(watch)
        return watch

    def _unwatch(self, watch: Watch) -> None:
        watches = self._watches.get(watch.group)
        if watches is not None:
            watches.discard(watch)
            if not watches:
                del self._watches[watch.group]

    def _move(self, watch: Watch, group: Hashable | None) -> None:
        self._unwatch(watch)
        _log.debug("node %s moves from group %r to %r", watch.node.id, watch.group, group)
        watch.group = group
        self._watches.setdefault(group, set()).add(watch)

    @staticmethod
    def _wake(watches: Iterable[Watch]) -> None:
        for watch in list(watches):
            watch.wake()

"""The server side of the ADS benchmarks: the policy, the snapshot built from it, and what every child process
shares (pipe commands, CPU / RSS / GC readings). `ads_fanout.server_main` runs egress-xds on it;
`floor_server.floor_main` runs the floor on the very same snapshot."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import resource
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
TYPES = (CDS, LDS)


# -- the policy and its snapshot ---------------------------------------------------------------------------------------

_PROXIES = ("corp", "partner", "eu", "lab")


def policy_text(changed: bool) -> str:
    """One realistic policy; `changed` sends rule-4 through a newly added proxy `audit` (CDS and LDS both change).

    NO_PROXY holds domain and host:port entries but no CIDR: today each CIDR entry adds a plain-HTTP filter chain
    that repeats every domain virtual host, so the listener grows with domains x CIDRs (bench/README.md).
    """
    lines = [
        "proxies:",
        "  corp:",
        "    endpoints:",
        "      - {url: 'http://proxy-a.corp.example:3128', priority: 0}",
        "      - {url: 'http://proxy-b.corp.example:3128', priority: 1}",
        "  partner: https://partner-proxy.example:443",
        "  eu: http://proxy.eu.corp.example:8080",
        "  lab: http://10.20.30.40:3128",
    ]
    if changed:
        lines.append("  audit: http://audit-proxy.corp.example:3128")
    lines += ["httpProxy: corp", "httpsProxy: corp", "rawTcp: tunnel", "noProxy:"]
    lines += [f"  - .svc{index}.internal.example" for index in range(90)]
    lines += [f"  - host{index}.corp.example:{8000 + index}" for index in range(10)]
    lines.append("rules:")
    for index in range(30):
        if index < 3:
            rule = f"cidrs: [192.0.{index}.0/24], ports: [5432, 6379], action: direct"
        elif index % 3 == 0:
            rule = f"domains: [blocked{index}.example, '*.blocked{index}.example'], action: deny"
        else:
            proxy = "audit" if changed and index == 4 else _PROXIES[index % len(_PROXIES)]
            domains = f"['*.saas{index}.example', api.saas{index}.example]"
            rule = f"domains: {domains}, ports: [443], action: {{proxy: {proxy}}}"
        lines.append(f"  - {{name: rule-{index}, {rule}}}")
    return "\n".join(lines) + "\n"


# -- helpers shared by all processes ------------------------------------------------------------------------------


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE to the hard limit: one socket per connection, up to N with --streams-per-channel 1."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads)."""
    times = os.times()
    return times.user + times.system


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child_setup(cpus: Sequence[int]) -> None:
    # Ctrl-C reaches the whole process group: let the coordinator stop the children in order.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_fd_limit()
    if cpus:
        os.sched_setaffinity(0, cpus)


class Commands:
    """Reads (command, args...) tuples from a pipe inside an event loop, without a thread."""

    def __init__(self, conn: Connection, handle: Callable[[tuple[Any, ...]], None]) -> None:
        self._conn = conn
        self._handle = handle
        self.closed = asyncio.Event()
        asyncio.get_running_loop().add_reader(conn.fileno(), self._readable)

    def _readable(self) -> None:
        try:
            while self._conn.poll():
                self._handle(self._conn.recv())
        except (EOFError, OSError):  # the coordinator is gone: stop
            self.close()

    def close(self) -> None:
        if not self.closed.is_set():
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self.closed.set()


# -- the server process -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerStats:
    rss_kb: int
    cpu: float  # user + system seconds so far, read before anything else
    gc_seconds: float  # time spent in cyclic garbage collection so far
    streams: int
    gc_objects: int  # objects tracked by the cyclic GC, after a full collection


class GcClock:
    """Time spent in the cyclic garbage collector, from `gc.callbacks` (observes; changes nothing)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def server_main(conn: Connection, cpus: Sequence[int], gc_threshold: tuple[int, ...] | None) -> None:
    child_setup(cpus)
    if gc_threshold:
        gc.set_threshold(*gc_threshold)
    asyncio.run(_serve(conn))


def parse_policy(changed: bool) -> Any:
    from egress_xds.policy.parse import parse_document
    from egress_xds.policy.yaml_tree import load_document

    return parse_document(load_document(policy_text(changed), "bench"))


SIDECARS = ("default", "sidecar")  # the one snapshot every simulated Envoy gets: (policy, mode)


def build_snapshot(changed: bool) -> Any:
    """The snapshot egress-xds serves every simulated Envoy, built as `serve` builds it (the floor serves it too)."""
    from egress_xds.policy.node import NodeMode, PolicyGroup
    from egress_xds.publish import PolicyPublisher
    from egress_xds.xds.cache import SnapshotCache

    cache = SnapshotCache(lambda node: None)
    PolicyPublisher(cache).publish(parse_policy(changed))
    snapshot = cache.get(PolicyGroup(SIDECARS[0], NodeMode(SIDECARS[1])))
    if snapshot is None:
        raise RuntimeError(f"no snapshot for {SIDECARS}: {cache.keys()}")
    return snapshot


async def _serve(conn: Connection) -> None:
    from egress_xds.policy.node import NodeMode, PolicyGroup
    from egress_xds.publish import PolicyPublisher
    from egress_xds.xds.cache import SnapshotCache
    from egress_xds.xds.server import AdsServer

    parse = parse_policy
    gc_clock = GcClock()
    cache = SnapshotCache(lambda node: None)
    publisher = PolicyPublisher(cache)
    publisher.publish(parse(changed=False))
    key = PolicyGroup(SIDECARS[0], NodeMode(SIDECARS[1]))
    snapshot = cache.get(key)
    if snapshot is None:
        raise RuntimeError(f"no snapshot for {key}: {cache.keys()}")
    sizes = {type_url: len(snapshot.resources(type_url).sotw_body) for type_url in TYPES}
    counts = {type_url: len(snapshot.resources(type_url)) for type_url in TYPES}
    server = AdsServer(cache, "127.0.0.1:0")
    await server.start()
    registry = server.registry

    def handle(command: tuple[Any, ...]) -> None:
        name = command[0]
        if name == "stats":
            cpu, gc_seconds = cpu_seconds(), gc_clock.seconds
            gc.collect()
            conn.send(("stats", ServerStats(rss_kb(), cpu, gc_seconds, len(registry), len(gc.get_objects()))))
        elif name == "change":
            cpu, gc_seconds = cpu_seconds(), gc_clock.seconds
            started = time.perf_counter()
            report = publisher.publish(parse(changed=True))  # what a reload does: parse, translate, publish
            reload_seconds = time.perf_counter() - started
            new = cache.get(key)
            versions = dict(new.versions) if new is not None else {}
            conn.send(("changed", cpu, gc_seconds, reload_seconds, versions, [str(key) for key in report.changed]))
        elif name == "stop":
            commands.close()

    commands = Commands(conn, handle)
    conn.send(("ready", server.port, dict(snapshot.versions), sizes, counts, os.getpid()))
    await commands.closed.wait()
    await server.stop(grace=1.0)
    with contextlib.suppress(OSError):
        conn.send(("stopped",))

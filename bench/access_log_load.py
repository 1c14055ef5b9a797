"""Access-log load: what the traffic view costs the server (issue 14).

Run: ``python bench/access_log_load.py [--rates 1000,5000] [--seconds 10] [--nodes 20] [--destinations 10000]``
This is a benchmark, not a test: it prints figures and asserts nothing.

- **Memory**: a `TrafficStore` in this process tracks ``--destinations`` distinct destinations spread over
  workloads of 100 each (the default per-workload budget); bytes from tracemalloc (the store's own allocations),
  per destination and per 10,000.
- **CPU**: the real ``egress-xds serve`` (a subprocess on ``127.0.0.1:<free port>``, its own process group, stopped
  by PID at the end, also on error or Ctrl-C) receives ``StreamAccessLogs`` from ``--nodes`` streams, as Envoy sends
  them (the node on the first message, then batches of TCP and HTTP entries every 100 ms: tunnels to 500 names, a
  fifth of them refused with `tunnel_response:407/403`, as the loggers of egress_xds/translate/access_log.py tag
  them), at each rate for ``--seconds``. The server's user + system CPU (``/proc/PID/stat``) over the window, per
  second, and per 1,000 entries/s. **The reference**, measured in the same run with the same client: a bare grpc.aio
  servicer in a process of its own that only iterates the stream (protobuf decode, nothing else); the ratio
  egress-xds / floor is the figure that holds on a shared machine.

Results (2-core VM shared with other work, load average 5-7; server code at the commit that added this text):

    memory: 10000 destinations over 100 workloads: 5647 KiB, 578 B per destination, 5.51 MiB per 10,000

      rate/s | server     | entries | CPU ms/s | CPU ms/s per 1,000 entries/s
    ---------+------------+---------+----------+-----------------------------
        1000 | egress-xds |    9900 |      122 |        130
        1000 | floor      |    9825 |       54 |         59
        5000 | egress-xds |   49425 |      266 |         57
        5000 | floor      |   48625 |       75 |         16

    egress-xds / floor at 1000/s: 2.23x;  at 5000/s: 3.54x

Per-message gRPC cost dominates at low rates (20 streams, two messages each per 100 ms); the cost of an entry is
the slope: (266 - 122) ms/s over 3,950 more entries/s, about 36 µs per entry, i.e. about 36 ms of CPU per second
(3.6 % of a core) per 1,000 entries/s on top of the stream overhead (the floor's slope: about 5 µs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
from envoy.data.accesslog.v3.accesslog_pb2 import HTTPAccessLogEntry, TCPAccessLogEntry
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.fanout.procfs import cpu_seconds  # noqa: E402 - after the path is set
from egress_xds.demo.processes import free_port  # noqa: E402
from egress_xds.traffic.entry import TrafficEvent  # noqa: E402
from egress_xds.traffic.outcome import Outcome  # noqa: E402
from egress_xds.traffic.store import MAX_DESTINATIONS, TrafficStore  # noqa: E402

POLICY = "httpsProxy: http://127.0.0.1:3128\nhttpProxy: http://127.0.0.1:3128\n"
BATCH_SECONDS = 0.1
NAMES = 500


# --- memory ---------------------------------------------------------------------------------------------------


def memory_per_destination(destinations: int) -> tuple[int, int]:
    """(bytes for `destinations` tracked destinations, workloads used)."""
    workloads = max(1, destinations // MAX_DESTINATIONS)
    store = TrafficStore(max_workloads=workloads)
    tracemalloc.start()
    for number in range(destinations):
        event = TrafficEvent(
            protocol="tcp",
            chain="tunnel-corp",
            kind="proxy",
            proxy="corp",
            decision="",
            destination=f"service-{number}.partner-{number % 97}.example.com:443",
            address=f"10.{number % 250}.{number // 250 % 250}.7:443",
            response_code=0,
            flags=(),
            failure="",
            bytes_sent=1000,
            bytes_received=200,
            duration_ms=20,
        )
        store.record(f"pod-{number % workloads}", "payments", "default", event, Outcome.OK, now=time.time())
    used, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return used, workloads


# --- load -----------------------------------------------------------------------------------------------------


def _entries(rng: random.Random, count: int) -> list[als_pb2.StreamAccessLogsMessage]:
    """A batch as Envoy flushes it: a message of TCP entries and one of HTTP entries (a message holds one kind)."""
    message = als_pb2.StreamAccessLogsMessage()
    http_message = als_pb2.StreamAccessLogsMessage()
    for _ in range(count):
        if rng.random() < 0.8:
            entry = TCPAccessLogEntry()
            common = entry.common_properties
            refused = rng.random() < 0.2
            common.custom_tags.update({"egress.chain": "tunnel-corp", "egress.kind": "proxy", "egress.proxy": "corp"})
            common.tls_properties.tls_sni_hostname = f"api-{rng.randrange(NAMES)}.example.com"
            common.downstream_local_address.socket_address.address = "10.1.2.3"
            common.downstream_local_address.socket_address.port_value = 443
            if refused:
                common.response_flags.upstream_connection_failure = True
                common.upstream_transport_failure_reason = rng.choice(("tunnel_response:407", "tunnel_response:403"))
            entry.connection_properties.sent_bytes = rng.randrange(100_000)
            entry.connection_properties.received_bytes = rng.randrange(10_000)
            common.duration.FromMilliseconds(rng.randrange(2000))
            message.tcp_logs.log_entry.append(entry)
        else:
            http = HTTPAccessLogEntry()
            http.common_properties.upstream_cluster = "egress-proxy-corp-http"
            http.common_properties.route_name = "default: plain HTTP uses httpProxy"
            http.common_properties.custom_tags["egress.chain"] = "http"
            http.request.authority = f"www-{rng.randrange(NAMES)}.example.com"
            http.request.path = "/some/path?query=1"
            http.response.response_code.value = 200
            http_message.http_logs.log_entry.append(http)
    return [batch for batch in (message, http_message) if batch.WhichOneof("log_entries")]


async def _stream(address: str, node: int, rate_per_node: float, seconds: float, seed: int) -> int:
    rng = random.Random(seed)
    sent = 0

    async def messages() -> AsyncIterator[als_pb2.StreamAccessLogsMessage]:
        nonlocal sent
        first = als_pb2.StreamAccessLogsMessage()
        first.identifier.node.id = f"bench-{node}"
        first.identifier.node.metadata.fields["namespace"].string_value = f"ns-{node % 5}"
        first.identifier.log_name = "egress-xds"
        yield first
        start = time.monotonic()
        owed = 0.0
        while (elapsed := time.monotonic() - start) < seconds:
            owed += rate_per_node * BATCH_SECONDS
            count = int(owed)
            owed -= count
            if count:
                sent += count
                for batch in _entries(rng, count):
                    yield batch
            await asyncio.sleep(max(0.0, BATCH_SECONDS - (time.monotonic() - start - elapsed)))

    async with grpc.aio.insecure_channel(address) as channel:
        stub = als_pb2_grpc.AccessLogServiceStub(channel)
        await stub.StreamAccessLogs(messages(), timeout=seconds + 30)
    return sent


async def _load(address: str, nodes: int, rate: int, seconds: float) -> int:
    counts = await asyncio.gather(*(_stream(address, node, rate / nodes, seconds, node) for node in range(nodes)))
    return sum(counts)


def measure(pid: int, address: str, nodes: int, rate: int, seconds: float) -> tuple[float, int, float]:
    """(server CPU seconds per second, entries sent, wall seconds)."""
    before, start = cpu_seconds(pid), time.monotonic()
    sent = asyncio.run(_load(address, nodes, rate, seconds))
    time.sleep(0.5)  # the last batches are processed
    wall = time.monotonic() - start
    return (cpu_seconds(pid) - before) / wall, sent, wall


# --- the floor: a servicer that only decodes ------------------------------------------------------------------


class _Floor:
    async def StreamAccessLogs(  # gRPC method name
        self, request_iterator: AsyncIterator[als_pb2.StreamAccessLogsMessage], context: grpc.aio.ServicerContext
    ) -> als_pb2.StreamAccessLogsResponse:
        async for _message in request_iterator:
            pass
        return als_pb2.StreamAccessLogsResponse()


async def _serve_floor(port: int) -> None:
    server = grpc.aio.server()
    als_pb2_grpc.add_AccessLogServiceServicer_to_server(_Floor(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print("floor listening", flush=True)
    await server.wait_for_termination()


# --- processes ------------------------------------------------------------------------------------------------


def _counted(address: str) -> int:
    from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

    with grpc.insecure_channel(address) as channel:
        answer = admin_pb2_grpc.AdminStub(channel).GetTraffic(admin_pb2.GetTrafficRequest(), timeout=30)
    return sum(sum(row.outcomes.values()) for workload in answer.workloads for row in workload.destinations)


def _start(argv: list[str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[2:4]} exited {proc.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return proc
        time.sleep(0.1)
    raise RuntimeError(f"{argv} did not listen within 30 s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="1000,5000", help="entries per second, comma-separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="per rate and server")
    parser.add_argument("--nodes", type=int, default=20, help="access-log streams (one per simulated Envoy)")
    parser.add_argument("--destinations", type=int, default=10_000, help="for the memory figure")
    parser.add_argument("--floor-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        asyncio.run(_serve_floor(args.floor_server))
        return 0

    used, workloads = memory_per_destination(args.destinations)
    print(
        f"memory: {args.destinations} destinations over {workloads} workloads: {used / 1024:.0f} KiB, "
        f"{used / args.destinations:.0f} B per destination, "
        f"{used * 10_000 / args.destinations / 2**20:.2f} MiB per 10,000"
    )

    rates = [int(rate) for rate in args.rates.split(",")]
    with tempfile.TemporaryDirectory(prefix="egress-xds-bench-als-") as directory:
        policy = Path(directory) / "policy.yaml"
        policy.write_text(POLICY)
        servers = {
            "egress-xds": lambda port: [
                sys.executable,
                "-m",
                "egress_xds.cli",
                "serve",
                "--config",
                str(policy),
                "--listen",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
            ],
            "floor": lambda port: [sys.executable, str(Path(__file__).resolve()), "--floor-server", str(port)],
        }
        results: dict[tuple[str, int], tuple[float, int, float]] = {}
        for name, argv in servers.items():
            port = free_port()
            proc = _start(argv(port), port, Path(directory) / f"{name}.log")
            try:
                time.sleep(1.0)
                idle_before = cpu_seconds(proc.pid)
                time.sleep(2.0)
                idle = (cpu_seconds(proc.pid) - idle_before) / 2.0
                print(f"{name}: idle CPU {idle * 1000:.0f} ms/s")
                for rate in rates:
                    results[(name, rate)] = measure(proc.pid, f"127.0.0.1:{port}", args.nodes, rate, args.seconds)
                if name == "egress-xds":
                    counted = _counted(f"127.0.0.1:{port}")
                    sent = sum(results[(name, rate)][1] for rate in rates)
                    print(f"egress-xds counted {counted} of the {sent} entries sent (admin GetTraffic)")
            finally:
                _stop(proc)
    print()
    print("  rate/s | server     | entries | CPU ms/s | CPU ms/s per 1,000 entries/s")
    print("---------+------------+---------+----------+-----------------------------")
    for (name, rate), (cpu, sent, wall) in sorted(results.items(), key=lambda item: (item[0][1], item[0][0])):
        actual = sent / wall
        print(f"{rate:>8} | {name:<10} | {sent:>7} | {cpu * 1000:>8.0f} | {cpu * 1000 / actual * 1000:>10.0f}")
    print()
    for rate in rates:
        ours, floor = results[("egress-xds", rate)][0], results[("floor", rate)][0]
        print(f"egress-xds / floor at {rate}/s: {ours / floor:.2f}x" if floor else f"floor used no CPU at {rate}/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

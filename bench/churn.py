"""Leak and churn benchmark: does the server give back what streams took, round after round?

Run: ``python bench/churn.py [--rounds 20] [--streams 500] [--flood-mb 200] [--timeout 300]``
This is a benchmark, not a test: it prints figures and asserts nothing.

- **Server**: the real ``egress-xds serve --config <a temporary policy> --listen 127.0.0.1:<free port>`` in a
  subprocess of its own (its own process group; stopped by PID at the end, also on error or Ctrl-C).
- **Churn**: ``--rounds`` times, ``--streams`` streams connect at once (half SotW, half Delta, 50 per HTTP/2
  connection), each behaving like Envoy: node + wildcard CDS, ACK, wildcard LDS, ACK; then all of them close
  (client cancel); 0.5 s later the round is measured: the server's ``VmRSS`` (``/proc/PID/status``) and open
  descriptors (``/proc/PID/fd``). A leak is growth round after round; then last / first, both figures
  again 12 s after the last round, and the median RSS of the last 5 rounds over the first 5 (single rounds are noisy).
- **Flood** (issue 9, item 14): one SotW stream sends ``--flood-mb`` MB of LDS requests (100 KB each, every one
  subscribing a new name so that each needs a ~0.2 MB response) and never reads a response: the server soon
  blocks in ``write``. RSS before, during (after the
  client gave up writing for 5 s, or sent everything) and after the stream ended (+2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from envoy.config.core.v3.base_pb2 import Node
from envoy.service.discovery.v3 import ads_pb2_grpc
from envoy.service.discovery.v3.discovery_pb2 import DeltaDiscoveryRequest, DiscoveryRequest
from google.rpc.status_pb2 import Status

REPO_ROOT = Path(__file__).resolve().parents[1]
CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
STREAMS_PER_CHANNEL = 50
SETTLE_SECONDS = 12.0  # longer than the server's minimum interval between collections after stream closes
# 300 NO_PROXY entries make LDS ~0.2 MB: a client that does not read soon fills its HTTP/2 window.
NO_PROXY = ", ".join(["localhost", ".svc", ".cluster.local", *(f"host-{index}.corp.example" for index in range(300))])
POLICY = f"""
httpsProxy: http://127.0.0.1:3128
httpProxy: http://127.0.0.1:3128
noProxy: [{NO_PROXY}]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Server:
    def __init__(self, directory: Path) -> None:
        self.policy = directory / "policy.yaml"
        self.policy.write_text(POLICY)
        self.port = free_port()
        self.log = (directory / "serve.log").open("wb")
        argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--config", str(self.policy)]
        argv += ["--listen", f"127.0.0.1:{self.port}", "--log-level", "warning"]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"egress-xds serve exited with {self.proc.returncode}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            await asyncio.sleep(0.1)
        raise TimeoutError("egress-xds serve did not listen")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


async def envoy_like(channel: grpc.aio.Channel, node_id: str, delta: bool) -> Any:
    """CDS, ACK, LDS, ACK, as Envoy does on ADS. Returns the call once both are ACKed (it stays open)."""
    stub = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel)
    node = Node(id=node_id, cluster="bench")
    if delta:
        call = stub.DeltaAggregatedResources()
        await call.write(DeltaDiscoveryRequest(type_url=CDS, node=node))
        cds = await call.read()
        await call.write(DeltaDiscoveryRequest(type_url=CDS, response_nonce=cds.nonce))
        await call.write(DeltaDiscoveryRequest(type_url=LDS))
        lds = await call.read()
        await call.write(DeltaDiscoveryRequest(type_url=LDS, response_nonce=lds.nonce))
    else:
        call = stub.StreamAggregatedResources()
        await call.write(DiscoveryRequest(type_url=CDS, node=node))
        cds = await call.read()
        await call.write(DiscoveryRequest(type_url=CDS, version_info=cds.version_info, response_nonce=cds.nonce))
        await call.write(DiscoveryRequest(type_url=LDS))
        lds = await call.read()
        await call.write(DiscoveryRequest(type_url=LDS, version_info=lds.version_info, response_nonce=lds.nonce))
    return call


async def churn_round(address: str, round_index: int, streams: int) -> float:
    started = time.monotonic()
    channels = [grpc.aio.insecure_channel(address) for _ in range(max(1, streams // STREAMS_PER_CHANNEL))]
    try:
        calls = await asyncio.gather(
            *(
                envoy_like(channels[index % len(channels)], f"churn-{round_index}-{index}", delta=index % 2 == 1)
                for index in range(streams)
            )
        )
        for call in calls:
            call.cancel()
    finally:
        for channel in channels:
            await channel.close()
    return time.monotonic() - started


async def flood(address: str, server: Server, megabytes: int) -> tuple[int, int, int, int]:
    before = rss_kib(server.pid)
    channel = grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 8 * 1024 * 1024)])
    call = ads_pb2_grpc.AggregatedDiscoveryServiceStub(channel).StreamAggregatedResources()
    padding = "y" * 100_000
    names = ["*"]
    sent = 0
    node = Node(id="flood", cluster="bench")
    peak = before
    try:
        for index in range(megabytes * 10):
            names.append(f"name-{index}")
            request = DiscoveryRequest(type_url=LDS, resource_names=names[-50:], node=node)
            request.error_detail.CopyFrom(Status(message=padding))
            try:
                await asyncio.wait_for(call.write(request), 5)
            except TimeoutError:
                break  # held back by flow control: the server stopped reading
            sent += len(padding)
            if index % 50 == 0:
                peak = max(peak, rss_kib(server.pid))
        peak = max(peak, rss_kib(server.pid))
        if call.done():
            print(f"flood stream ended by the server: {await call.code()} {await call.details()}")
    finally:
        call.cancel()
        await channel.close()
    await asyncio.sleep(2)
    return before, peak, rss_kib(server.pid), sent // 1_000_000


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--streams", type=int, default=500)
    parser.add_argument("--flood-mb", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300, help="overall budget in seconds")
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    with tempfile.TemporaryDirectory(prefix="egress-xds-churn-") as tmp:
        server = Server(Path(tmp))
        try:
            await server.ready()
            address = f"127.0.0.1:{server.port}"
            await asyncio.sleep(0.5)
            print(f"server pid {server.pid}: idle RSS {rss_kib(server.pid) / 1024:.1f} MiB, fds {open_fds(server.pid)}")
            print(f"{'round':>5} {'seconds':>8} {'RSS MiB':>8} {'fds':>5}")
            figures: list[tuple[int, int]] = []
            for round_index in range(args.rounds):
                if time.monotonic() > deadline:
                    print("time budget spent; stopping")
                    break
                seconds = await churn_round(address, round_index, args.streams)
                await asyncio.sleep(0.5)
                rss, fds = rss_kib(server.pid), open_fds(server.pid)
                figures.append((rss, fds))
                print(f"{round_index + 1:>5} {seconds:>8.2f} {rss / 1024:>8.1f} {fds:>5}")
            if figures:
                (rss_first, fds_first), (rss_last, fds_last) = figures[0], figures[-1]
                print(f"last / first: RSS {rss_last / rss_first:.3f}, fds {fds_last / fds_first:.3f}")
                if len(figures) >= 10:  # single rounds are noisy (allocator, gRPC core); a trend is a leak
                    first5 = statistics.median(rss for rss, _ in figures[:5])
                    last5 = statistics.median(rss for rss, _ in figures[-5:])
                    print(f"median RSS, last 5 rounds / first 5: {last5 / first5:.3f}")
                await asyncio.sleep(SETTLE_SECONDS)
                print(
                    f"{SETTLE_SECONDS:.0f} s after the last round: RSS {rss_kib(server.pid) / 1024:.1f} MiB, "
                    f"fds {open_fds(server.pid)}"
                )
            if args.flood_mb and time.monotonic() < deadline:
                before, peak, after, sent_mb = await flood(address, server, args.flood_mb)
                print(
                    f"flood: {sent_mb} MB accepted of {args.flood_mb} MB offered; RSS before {before / 1024:.1f} MiB, "
                    f"peak {peak / 1024:.1f} MiB, after the stream ended {after / 1024:.1f} MiB"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())

"""The scenarios: for one (server, protocol, N), start fresh processes, drive them, fill a `Result`, stop them.

- **change** (`ChangeRun`): all N streams connect at once and converge (initial convergence); idle, the server's RSS
  per stream; a change by the operator's trigger (SIGHUP or the admin Reload, no debounce) until every stream holds
  and ACKed the new versions; then, egress-xds only, a change through the file watch (includes its debounce).
- **per-envoy**: the same connect and idle RSS with one HTTP/2 connection per stream, as Envoys connect.
- **fleet-move** (`FleetMoveRun`): N streams on replica A; SIGTERM to A, as a rollout does; every stream is retried
  with Envoy's backoff on B; until all received LDS+CDS from B, with B's peak RSS and CPU.

Every run has a deadline (`--timeout`): when it passes, the run reports what it has (the `converged` column).
Every child (client processes, servers) is stopped by PID at the end of the run, also on error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TypeVar

from bench.fanout.client import client_main
from bench.fanout.messages import (
    AskCpu,
    AskProgress,
    AskTimes,
    ClientSpec,
    Connect,
    Connecting,
    Cpu,
    Goal,
    Loaded,
    Progress,
    Reply,
    Request,
    Stop,
    Times,
)
from bench.fanout.policy import versions
from bench.fanout.report import Latencies, Result
from bench.fanout.servers import ServerProcess

POLL_SECONDS = 0.05  # how often the coordinator asks the clients for progress (does not limit the resolution)
IDLE_SECONDS = 1.0  # quiet time before the idle RSS reading and before a trigger
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
SCENARIOS = ("change", "per-envoy", "fleet-move")

ReplyT = TypeVar("ReplyT", bound=Reply)


class Timeout(Exception):
    """A phase ran out of its time budget."""


@dataclass(frozen=True)
class Options:
    clients: int  # 0: auto_clients(n)
    per_channel: int
    connecting: int
    transport: str
    timeout: float
    verbose: bool
    pin: bool
    trigger: str  # "sighup" | "reload"
    file_watch: bool
    serve_args: tuple[str, ...] = ()


def auto_clients(n: int) -> int:
    """Enough client processes that one event loop never carries more than ~2,500 streams."""
    return max(1, min(4, math.ceil(n / 2500)))


@dataclass
class Client:
    name: str
    process: BaseProcess
    conn: Connection

    def send(self, request: Request) -> None:
        self.conn.send(request)

    def receive(self, expected: type[ReplyT], deadline: float) -> ReplyT:
        """The next `expected` reply; late replies to requests that timed out earlier are skipped."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.conn.poll(remaining):
                raise Timeout(f"{self.name}: no {expected.__name__} reply in time")
            reply = self.conn.recv()
            if isinstance(reply, expected):
                return reply

    def ask(self, request: Request, expected: type[ReplyT], deadline: float) -> ReplyT:
        self.send(request)
        return self.receive(expected, deadline)


class Run:
    """What every scenario does: processes started and stopped, clients connected and polled."""

    scenario = ""

    def __init__(self, server: str, protocol: str, n: int, options: Options, per_channel: int | None = None) -> None:
        self.server_kind = server
        self.protocol = protocol
        self.n = n
        self.options = options
        self.per_channel = per_channel or options.per_channel
        self.clients_wanted = max(1, min(options.clients or auto_clients(n), n))
        self.in_flight = math.ceil(options.connecting / self.clients_wanted) if options.connecting > 0 else 0
        # --pin: the servers alone on the first CPU, the clients on the others (no CPU stolen in either direction).
        available = sorted(os.sched_getaffinity(0))
        pin = options.pin and len(available) > 1
        self.server_cpus: tuple[int, ...] = tuple(available[:1]) if pin else ()
        self.client_cpus: tuple[int, ...] = tuple(available[1:]) if pin else ()
        clients = self.clients_wanted
        self.split = [n // clients + (index < n % clients) for index in range(clients)]
        channels = sum(math.ceil(count / self.per_channel) for count in self.split)
        self.result = Result(self.scenario, server, protocol, n, self.clients_wanted, channels)
        self.context = multiprocessing.get_context("spawn")
        self.clients: list[Client] = []
        self.servers: list[ServerProcess] = []
        self._directory = tempfile.TemporaryDirectory(prefix="bench-fanout-")

    def log(self, message: str) -> None:
        if self.options.verbose:
            label = f"{self.scenario} {self.server_kind} {self.protocol} N={self.n}"
            print(f"  [{label}] {message}", file=sys.stderr, flush=True)

    def execute(self) -> Result:
        started = time.monotonic()
        deadline = started + self.options.timeout
        try:
            self.measure(deadline)
        except Timeout as error:
            self.result.note = f"timeout: {error}"
        except Exception as error:
            self.result.note = f"error: {error!r}"
        finally:
            self.stop()
            self.result.wall = time.monotonic() - started
        return self.result

    def measure(self, deadline: float) -> None:
        raise NotImplementedError

    # -- processes

    def start_server(self, name: str) -> ServerProcess:
        server = ServerProcess(
            self.server_kind, Path(self._directory.name) / name, self.options.serve_args, self.server_cpus
        )
        self.servers.append(server)
        server.wait_ready(time.monotonic() + START_TIMEOUT)
        label = "server" if name == "server" else f"server {name}"  # one server, or "server a" and "server b"
        self.log(f"{label}: {self.server_kind} pid {server.pid} port {server.port}")
        return server

    def start_clients(self, ports: tuple[int, ...]) -> None:
        first = 0
        for index, count in enumerate(self.split):
            spec = ClientSpec(
                ports, self.protocol, self.options.transport, first, count, self.per_channel, self.in_flight
            )
            parent, child = self.context.Pipe()
            process = self.context.Process(
                target=client_main, args=(child, self.client_cpus, spec), name=f"client-{index}", daemon=True
            )
            process.start()
            child.close()
            self.clients.append(Client(f"client-{index}", process, parent))
            first += count
        for client in self.clients:
            client.receive(Loaded, time.monotonic() + START_TIMEOUT)

    def stop(self) -> None:
        """Stop every child: clients politely, then SIGTERM, then SIGKILL; servers SIGTERM then SIGKILL; by PID."""
        for client in self.clients:
            with contextlib.suppress(OSError, ValueError):
                client.send(Stop())
        deadline = time.monotonic() + STOP_TIMEOUT
        for client in self.clients:
            client.process.join(max(0.1, deadline - time.monotonic()))
        for client in self.clients:
            if client.process.is_alive():
                self.log(f"{client.name} (pid {client.process.pid}) did not stop: SIGTERM")
                client.process.terminate()
                client.process.join(2.0)
            if client.process.is_alive():
                client.process.kill()
                client.process.join(2.0)
            client.conn.close()
        self.clients.clear()
        for server in self.servers:
            server.stop()
        self.servers.clear()
        self._directory.cleanup()

    # -- polling the clients

    def connect(self, deadline: float) -> float:
        """Open all N streams; returns when (monotonic) they were asked to connect."""
        connect_at = time.monotonic()
        for client in self.clients:
            client.ask(Connect(), Connecting, deadline)
        return connect_at

    def wait_all(self, goal: Goal, deadline: float, watch: ServerProcess | None = None) -> tuple[int, int]:
        """Poll until every stream reached `goal` (or gave up, or the deadline passed); `watch` is a server whose
        exit time is noted meanwhile. Returns (streams that reached it, stream attempts failed so far)."""
        done = failures = 0
        while time.monotonic() < deadline:
            if watch is not None:
                watch.exited()
            done = gave_up = failures = 0
            for client in self.clients:
                progress = client.ask(AskProgress(goal), Progress, deadline)
                done += progress.done
                gave_up += progress.gave_up
                failures += progress.failures
            if done + gave_up >= self.n:
                break
            time.sleep(POLL_SECONDS)
        return done, failures

    def latencies(self, goal: Goal, since: float) -> Latencies:
        end = time.monotonic() + STOP_TIMEOUT  # report what there is, also late
        seconds: list[float] = []
        for client in self.clients:
            times = client.ask(AskTimes(goal), Times, end)
            seconds.extend(at - since for at in times.times if at is not None)
            if times.first_error is not None and len(self.result.errors) < 4:
                self.result.errors.append(f"{client.name}: {times.first_error}")
        return Latencies.of(len(seconds), seconds)

    def client_cpu(self, deadline: float) -> float:
        return sum(client.ask(AskCpu(), Cpu, deadline).seconds for client in self.clients)

    def converge_initial(self, deadline: float) -> None:
        result = self.result
        connect_at = self.connect(deadline)
        done, result.failures = self.wait_all(Goal(), deadline)
        result.initial = self.latencies(Goal(), connect_at)
        self.log(f"initial: {done}/{self.n}, p99 {result.initial.p99}")
        if done < self.n:
            raise Timeout(f"only {done}/{self.n} streams got the initial config")


class ChangeRun(Run):
    scenario = "change"

    def measure(self, deadline: float) -> None:
        result = self.result
        server = self.start_server("server")
        result.rss_before_kb = server.stats().rss_kb
        self.start_clients((server.port,))
        self.converge_initial(deadline)
        time.sleep(min(IDLE_SECONDS, max(0.0, deadline - time.monotonic())))
        result.rss_after_kb = server.stats().rss_kb
        self.log(f"server RSS {result.rss_before_kb} -> {result.rss_after_kb} KB")
        if self.scenario != "change":
            return

        goal = Goal(targets=versions(1))
        client_before, server_before = self.client_cpu(deadline), server.stats().cpu
        trigger_at = time.monotonic()
        server.trigger(self.options.trigger, 1)
        try:
            done, failures = self.wait_all(goal, deadline)
        finally:
            end = time.monotonic() + STOP_TIMEOUT
            result.server_cpu = server.stats().cpu - server_before
            result.client_cpu = self.client_cpu(end) - client_before
            result.change = self.latencies(goal, trigger_at)
            result.failures = failures
        self.log(f"change ({self.options.trigger}): {done}/{self.n}, p99 {result.change.p99}")
        if done < self.n:
            raise Timeout(f"only {done}/{self.n} streams got the new config")

        if self.options.file_watch and self.server_kind == "egress":
            time.sleep(min(IDLE_SECONDS, max(0.0, deadline - time.monotonic())))
            goal = Goal(targets=versions(2))
            trigger_at = time.monotonic()
            server.trigger("file", 2)
            done, result.failures = self.wait_all(goal, deadline)
            result.file_watch = self.latencies(goal, trigger_at)
            self.log(f"file watch: {done}/{self.n}, p99 {result.file_watch.p99}")


class PerEnvoyRun(ChangeRun):
    """Connect and idle RSS only, with one connection per stream."""

    scenario = "per-envoy"

    def __init__(self, server: str, protocol: str, n: int, options: Options) -> None:
        super().__init__(server, protocol, n, options, per_channel=1)


class FleetMoveRun(Run):
    scenario = "fleet-move"

    def measure(self, deadline: float) -> None:
        result = self.result
        old, new = self.start_server("a"), self.start_server("b")
        self.start_clients((old.port, new.port))
        self.converge_initial(deadline)
        time.sleep(min(IDLE_SECONDS, max(0.0, deadline - time.monotonic())))
        goal = Goal(port=new.port)
        for client in self.clients:  # tells the clients which replica B is (no stream there yet)
            client.ask(AskProgress(goal), Progress, deadline)
        client_before, new_before = self.client_cpu(deadline), new.stats()
        old.terminate()
        moved_from = old.terminated_at or time.monotonic()
        try:
            done, result.failures = self.wait_all(goal, deadline, watch=old)
        finally:
            end = time.monotonic() + STOP_TIMEOUT
            after = new.stats()
            result.rss_before_kb, result.rss_after_kb = new_before.rss_kb, after.rss_kb
            result.peak_rss_kb = after.peak_rss_kb
            result.server_cpu = after.cpu - new_before.cpu
            result.client_cpu = self.client_cpu(end) - client_before
            result.moved = self.latencies(goal, moved_from)
        while not old.exited() and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if old.exited_at is not None:
            result.old_exit_seconds = old.exited_at - moved_from
        self.log(f"moved: {done}/{self.n}, all in {result.moved.max}, A exited after {result.old_exit_seconds}")
        if done < self.n:
            raise Timeout(f"only {done}/{self.n} streams moved to B")


RUNS: dict[str, type[Run]] = {"change": ChangeRun, "per-envoy": PerEnvoyRun, "fleet-move": FleetMoveRun}


def run(scenario: str, server: str, protocol: str, n: int, options: Options) -> Result:
    return RUNS[scenario](server, protocol, n, options).execute()

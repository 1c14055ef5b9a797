"""The results of the scenarios and the tables they are printed as: each server's figures, then egress-xds as a
multiple of the floor measured in the same run with the same client (on a shared machine absolute times are noise,
the ratio is the figure)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted `values`."""
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


@dataclass
class Latencies:
    """p50 / p99 / max (seconds) over the streams that got there, and how many did."""

    done: int = 0
    p50: float | None = None
    p99: float | None = None
    max: float | None = None

    @classmethod
    def of(cls, done: int, seconds: Sequence[float]) -> Latencies:
        ordered = sorted(seconds)
        if not ordered:
            return cls(done)
        return cls(done, percentile(ordered, 0.50), percentile(ordered, 0.99), ordered[-1])


@dataclass
class Result:
    """One run of one scenario for one (server, protocol, N)."""

    scenario: str  # "change" | "per-envoy" | "fleet-move"
    server: str  # "egress" | "floor"
    protocol: str
    n: int
    clients: int
    channels: int
    initial: Latencies = field(default_factory=Latencies)  # from "connect" to holding LDS + CDS
    change: Latencies = field(default_factory=Latencies)  # from the trigger (SIGHUP / Reload) to holding the new
    file_watch: Latencies = field(default_factory=Latencies)  # from the file swap (includes the debounce)
    moved: Latencies = field(default_factory=Latencies)  # fleet move: from SIGTERM to A until converged on B
    rss_before_kb: int | None = None
    rss_after_kb: int | None = None
    server_cpu: float | None = None  # in the change window (fleet move: B's, in the move window)
    client_cpu: float | None = None
    peak_rss_kb: int | None = None  # fleet move: B's peak
    old_exit_seconds: float | None = None  # fleet move: SIGTERM until A exited
    failures: int = 0  # stream attempts refused or ended (retried with Envoy's backoff)
    wall: float = 0.0
    note: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def kb_per_stream(self) -> float | None:
        if self.rss_before_kb is None or self.rss_after_kb is None or not self.n:
            return None
        return (self.rss_after_kb - self.rss_before_kb) / self.n

    @property
    def key_figure(self) -> float:
        """What --repeat takes the median of."""
        value = {"change": self.change.p99, "per-envoy": self.kb_per_stream, "fleet-move": self.moved.max}
        figure = value.get(self.scenario)
        return math.inf if figure is None else figure


def median_run(attempts: Sequence[Result]) -> Result:
    """The attempt with the median key figure (unfinished ones count as slowest): one coherent row, not a mix."""
    ordered = sorted(attempts, key=lambda result: result.key_figure)
    return ordered[(len(ordered) - 1) // 2]


def _fixed(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ratio(ours: float | None, floor: float | None) -> str:
    return "-" if ours is None or floor is None or floor <= 0 else f"{ours / floor:.2f}x"


def _rows(titles: Sequence[tuple[str, int]], rows: Sequence[Sequence[str]]) -> Iterator[str]:
    yield " | ".join(title.rjust(width) for title, width in titles)
    yield "-+-".join("-" * width for _, width in titles)
    for cells in rows:
        yield " | ".join(cell.rjust(width) for cell, (_, width) in zip(cells, titles, strict=True))


def _name(server: str) -> str:
    return "egress-xds" if server == "egress" else "floor"


def _converged(result: Result, latencies: Latencies) -> str:
    return f"{latencies.done}/{result.n}"


def _notes(results: Sequence[Result]) -> Iterator[str]:
    for result in results:
        if result.note or result.errors:
            detail = "; ".join([result.note, *result.errors[:2]]).strip("; ")
            yield f"  {result.server} N={result.n}: {detail}"


CHANGE_TITLES = (
    ("N", 6),
    ("initial p50", 11),
    ("initial p99", 11),
    ("change p50", 10),
    ("change p99", 10),
    ("max", 6),
    ("file-watch p50", 14),
    ("file-watch p99", 14),
    ("RSS/stream KB", 13),
    ("server CPU s", 12),
    ("client CPU s", 12),
    ("converged", 11),
    ("retried", 7),
    ("K/conns", 7),
)


def change_table(server: str, protocol: str, results: Sequence[Result]) -> Iterator[str]:
    yield f"{protocol.upper()} change and initial convergence, {_name(server)}"
    rows = [
        (
            str(r.n),
            _fixed(r.initial.p50, 2),
            _fixed(r.initial.p99, 2),
            _fixed(r.change.p50),
            _fixed(r.change.p99),
            _fixed(r.change.max, 2),
            _fixed(r.file_watch.p50),
            _fixed(r.file_watch.p99),
            _fixed(r.kb_per_stream, 1),
            _fixed(r.server_cpu, 2),
            _fixed(r.client_cpu, 2),
            _converged(r, r.change) if r.initial.done >= r.n else f"init {r.initial.done}",
            str(r.failures),
            f"{r.clients}/{r.channels}",
        )
        for r in results
    ]
    yield from _rows(CHANGE_TITLES, rows)
    yield from _notes(results)


def per_envoy_table(server: str, protocol: str, results: Sequence[Result]) -> Iterator[str]:
    yield f"{protocol.upper()} memory per Envoy (one connection per stream), {_name(server)}"
    titles = (
        ("N", 6),
        ("initial p99", 11),
        ("RSS before MB", 13),
        ("RSS idle MB", 11),
        ("RSS/Envoy KB", 12),
        ("converged", 11),
    )
    rows = [
        (
            str(r.n),
            _fixed(r.initial.p99, 2),
            _fixed(None if r.rss_before_kb is None else r.rss_before_kb / 1024, 1),
            _fixed(None if r.rss_after_kb is None else r.rss_after_kb / 1024, 1),
            _fixed(r.kb_per_stream, 1),
            _converged(r, r.initial),
        )
        for r in results
    ]
    yield from _rows(titles, rows)
    yield from _notes(results)


def fleet_table(server: str, protocol: str, results: Sequence[Result]) -> Iterator[str]:
    yield f"{protocol.upper()} fleet move A -> B (SIGTERM to A), {_name(server)}"
    titles = (
        ("N", 6),
        ("moved p50", 9),
        ("moved p99", 9),
        ("all moved", 9),
        ("A exit s", 8),
        ("B RSS peak MB", 13),
        ("B CPU s", 7),
        ("client CPU s", 12),
        ("moved", 11),
        ("retried", 7),
    )
    rows = [
        (
            str(r.n),
            _fixed(r.moved.p50, 2),
            _fixed(r.moved.p99, 2),
            _fixed(r.moved.max, 2),
            _fixed(r.old_exit_seconds, 2),
            _fixed(None if r.peak_rss_kb is None else r.peak_rss_kb / 1024, 1),
            _fixed(r.server_cpu, 2),
            _fixed(r.client_cpu, 2),
            _converged(r, r.moved),
            str(r.failures),
        )
        for r in results
    ]
    yield from _rows(titles, rows)
    yield from _notes(results)


def ratio_table(protocol: str, ours: Sequence[Result], floors: Sequence[Result]) -> Iterator[str]:
    """egress-xds as a multiple of the floor, per N, for every scenario measured on both."""
    yield f"{protocol.upper()}: egress-xds / floor (same run, same client)"
    titles = (
        ("N", 6),
        ("change p50", 10),
        ("change p99", 10),
        ("initial p50", 11),
        ("initial p99", 11),
        ("RSS/stream", 10),
        ("+KB", 5),
        ("RSS/Envoy", 9),
        ("+KB", 5),
        ("moved p99", 9),
        ("all moved", 9),
        ("B peak RSS", 10),
        ("B CPU", 5),
    )
    floor_of = {(r.scenario, r.n): r for r in floors}
    ours_of = {(r.scenario, r.n): r for r in ours}
    rows = []
    for n in sorted({r.n for r in ours}):
        change, floor_change = ours_of.get(("change", n)), floor_of.get(("change", n))
        envoy, floor_envoy = ours_of.get(("per-envoy", n)), floor_of.get(("per-envoy", n))
        move, floor_move = ours_of.get(("fleet-move", n)), floor_of.get(("fleet-move", n))

        def pick(result: Result | None, attribute: str) -> float | None:
            if result is None:
                return None
            value: object = result
            for part in attribute.split("."):
                value = getattr(value, part)
            return value if isinstance(value, float | int) else None

        def both(a: Result | None, b: Result | None, attribute: str) -> str:
            return _ratio(pick(a, attribute), pick(b, attribute))

        def extra(a: Result | None, b: Result | None) -> str:
            ka, kb = pick(a, "kb_per_stream"), pick(b, "kb_per_stream")
            return "-" if ka is None or kb is None else f"{ka - kb:+.1f}"

        rows.append(
            (
                str(n),
                both(change, floor_change, "change.p50"),
                both(change, floor_change, "change.p99"),
                both(change, floor_change, "initial.p50"),
                both(change, floor_change, "initial.p99"),
                both(change, floor_change, "kb_per_stream"),
                extra(change, floor_change),
                both(envoy, floor_envoy, "kb_per_stream"),
                extra(envoy, floor_envoy),
                both(move, floor_move, "moved.p99"),
                both(move, floor_move, "moved.max"),
                both(move, floor_move, "peak_rss_kb"),
                both(move, floor_move, "server_cpu"),
            )
        )
    yield from _rows(titles, rows)


LEGEND = """\
initial p50/p99: all N streams connect at once (a fleet after a restart) until each holds LDS+CDS; change
p50/p99/max: from the trigger (SIGHUP, or the admin Reload with --trigger reload; no debounce) until each stream
holds and ACKed the new LDS+CDS; file-watch: the same after the policy file's symlink was swapped (includes the
watch's debounce; egress-xds only); RSS/stream: (server RSS with N idle streams - before any stream) / N, 50 streams
per connection; RSS/Envoy: the same with one connection per stream, as Envoys connect; server/client CPU: user+sys
of the server / all client processes in the change window; fleet move: N streams on replica A, SIGTERM to A, each
stream reconnects with Envoy's backoff to B; moved: SIGTERM until the stream received LDS+CDS from B; A exit: SIGTERM
until A exited; B RSS peak: B's VmHWM; B CPU: B's user+sys in the move window; retried: stream attempts refused or
ended; K/conns: client processes / HTTP/2 connections."""

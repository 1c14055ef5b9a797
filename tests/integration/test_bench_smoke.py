"""The benchmarks still run: each at a tiny size, in seconds, so a change to the server cannot break them unseen.
(They print figures; this checks only that they run to the end, that every stream converged, and that the tables
hold figures.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[2]


def run_bench(*argv: str, timeout: float = 120) -> str:
    result = subprocess.run(
        [sys.executable, *argv], cwd=REPOSITORY, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


def table_rows(output: str, title: str) -> list[str]:
    """The data rows of the table printed under the line `title` (up to the next blank line)."""
    lines = output.splitlines()
    assert title in lines, output
    rows = []
    for line in lines[lines.index(title) + 3 :]:
        if not line.strip() or not line.lstrip()[0].isdigit():
            break
        rows.append(line)
    return rows


def cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.split("|")]


def test_fan_out_package_measures_change_and_memory_against_the_floor() -> None:
    output = run_bench(
        "-m",
        "bench.fanout",
        "--sizes",
        "10",
        "--protocol",
        "sotw",
        "--scenarios",
        "change,per-envoy",
        "--timeout",
        "40",
        "--quiet",
    )
    for server in ("egress-xds", "floor"):
        (change,) = table_rows(output, f"SOTW change and initial convergence, {server}")
        n, initial_p50, initial_p99, p50, p99, _, file_p50, file_p99, per_stream, *_, converged, _, _ = cells(change)
        assert (n, converged) == ("10", "10/10"), change
        assert 0 < float(initial_p50) <= float(initial_p99) and 0 < float(p50) <= float(p99), change
        assert float(per_stream) > 0, change
        if server == "egress-xds":  # the file-watch path, measured separately (egress-xds only)
            assert 0 < float(file_p50) <= float(file_p99), change
        (memory,) = table_rows(output, f"SOTW memory per Envoy (one connection per stream), {server}")
        assert cells(memory)[0] == "10" and cells(memory)[-1] == "10/10" and float(cells(memory)[-2]) > 0, memory
    (ratios,) = table_rows(output, "SOTW: egress-xds / floor (same run, same client)")
    assert all(cell.endswith("x") for cell in cells(ratios)[1:6]), ratios


def test_fan_out_entry_point_moves_a_fleet_between_replicas() -> None:
    output = run_bench(
        "bench/ads_fanout.py",
        "--sizes",
        "10",
        "--protocol",
        "delta",
        "--scenarios",
        "fleet-move",
        "--timeout",
        "40",
        "--quiet",
    )
    for server in ("egress-xds", "floor"):
        (row,) = table_rows(output, f"DELTA fleet move A -> B (SIGTERM to A), {server}")
        n, p50, p99, all_moved, exit_seconds, peak_mb, _, _, moved, retried = cells(row)
        assert (n, moved) == ("10", "10/10"), row
        assert 0 < float(p50) <= float(p99) <= float(all_moved) and float(peak_mb) > 0, row
        assert float(exit_seconds) > 0 and int(retried) >= 10, row  # every stream lost A and was retried on B


def test_churn_bench_runs_its_rounds() -> None:
    output = run_bench("bench/churn.py", "--rounds", "2", "--streams", "10", "--flood-mb", "1", "--timeout", "60")
    assert re.search(r"^\s+2\s+\d", output, re.MULTILINE), output
    assert "flood: 1 MB accepted" in output, output


def test_listener_size_bench_prints_every_size() -> None:
    output = run_bench("bench/listener_size.py", "--sizes", "10,100", "--repeat", "1")
    assert re.search(r"^\s+100\s+[\d.]+\s+[\d.]+\s+[\d.]+", output, re.MULTILINE), output

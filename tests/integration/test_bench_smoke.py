"""The benchmarks still run: each at a tiny size, in seconds, so a change to the server cannot break them unseen.
(They print figures; this checks only that they run to the end and that every stream converged.)"""

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


def test_fan_out_bench_converges_every_stream() -> None:
    output = run_bench("bench/ads_fanout.py", "--sizes", "10", "--protocol", "both", "--repeat", "1", "--timeout", "60")
    rows = [line for line in output.splitlines() if re.match(r"\s+10 \|", line) and "/10 " in line]
    assert len(rows) == 4, output  # SotW and Delta, egress-xds and the floor
    assert all("10/10" in row for row in rows), output
    assert output.count("egress-xds / floor") == 2, output


def test_churn_bench_runs_its_rounds() -> None:
    output = run_bench("bench/churn.py", "--rounds", "2", "--streams", "10", "--flood-mb", "1", "--timeout", "60")
    assert re.search(r"^\s+2\s+\d", output, re.MULTILINE), output
    assert "flood: 1 MB accepted" in output, output


def test_listener_size_bench_prints_every_size() -> None:
    output = run_bench("bench/listener_size.py", "--sizes", "10,100", "--repeat", "1")
    assert re.search(r"^\s+100\s+[\d.]+\s+[\d.]+\s+[\d.]+", output, re.MULTILINE), output

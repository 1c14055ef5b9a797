"""The data-plane bench still runs: `bench/dataplane.py --quick` builds its namespaces, measures every figure through
a real Envoy and a real squid, checks that the traffic took the paths it measured, and removes what it created.
(It prints figures; this asserts only that they are all there, not how fast anything was.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.envoy import envoy_binary
from tests.support.proxies import install_hint
from tests.support.requirements import need_binary, need_lab_tools

pytestmark = [pytest.mark.integration, pytest.mark.netns]

REPOSITORY = Path(__file__).resolve().parents[2]
FIGURES = (
    "bulk throughput median (MB/s)",
    "new connection + echo median (ms)",
    "new connection + echo p99 (ms)",
    "HTTPS keep-alive median (req/s)",
    "HTTPS new connection median (req/s)",
    "HTTPS new connection request p99 (ms)",
    "cold start (ms) median",
)
NUMBER = r"\d+(?:\.\d+)?"


def bench_namespaces() -> set[str]:
    """The bench's namespaces (prefix `exdbn`; other tests running beside this one use their own prefixes)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10, check=True).stdout
    return {line.split()[0] for line in listed.splitlines() if line.startswith("exdbn")}


def test_quick_bench_measures_every_figure_through_envoy_and_squid() -> None:
    need_lab_tools()
    need_binary("squid", install_hint(), "/usr/sbin/squid")
    need_binary("iptables", "apt-get install -y iptables", "/usr/sbin/iptables")
    envoy_binary()
    before = bench_namespaces()
    result = subprocess.run(
        [sys.executable, "bench/dataplane.py", "--quick"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for figure in FIGURES:
        row = re.search(rf"^{re.escape(figure)}\s+({NUMBER})?\s*({NUMBER})", result.stdout, re.MULTILINE)
        assert row is not None, f"no figure {figure!r} in:\n{result.stdout}"
    ratio = re.search(rf"^bulk throughput median \(MB/s\)\s+{NUMBER}\s+{NUMBER}\s+({NUMBER})x", result.stdout, re.M)
    assert ratio is not None and float(ratio.group(1)) > 0, result.stdout
    # What the real peers saw: squid logged the tunnels of both paths, Envoy's tunnel chains carried the captured ones.
    checked = re.search(
        r"squid logged (\d+) CONNECT tunnels .* handled (\d+) connections; the client opened (\d+) "
        r"to squid and (\d+) through the capture",
        result.stdout,
    )
    assert checked is not None, result.stdout
    squid_tunnels, envoy_tunnels, direct, captured = map(int, checked.groups())
    assert captured > 0 and direct > 0
    assert envoy_tunnels >= captured and squid_tunnels >= direct + captured, result.stdout
    assert "Basic " not in output and "Proxy-Authorization" not in output  # the proxy credentials
    assert bench_namespaces() == before, "the bench left network namespaces behind"

"""`egress-xds demo` as a new user runs it from the README: no root, loopback only, real proxy.py and Envoy."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_demo_succeeds_shows_the_proxy_log_and_leaves_nothing_running() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "egress_xds.cli", "demo"], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("[ok]") == 3, output
    assert "proxy.py logged: 127.0.0.1:" in output and "CONNECT localhost:" in output
    assert "proxy.py #2 logged:" in output, "the live switch reached the second proxy"
    assert "Proxy-Authorization" not in output and "Basic " not in output
    leftovers = subprocess.run(["pgrep", "-f", "egress-xds-demo-"], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", f"processes left running: {leftovers.stdout}"

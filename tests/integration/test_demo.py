"""`egress-xds demo` as a new user runs it from the README: no root, loopback only, real proxy.py and Envoy.

The command is the Quick start's last step (`.venv/bin/egress-xds demo`), run with the console script of the
interpreter running the tests (that venv's `bin`) and a PATH without it: the venv is not activated.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.readme import quick_start
from tests.support.requirements import interpreter_bin

pytestmark = pytest.mark.integration
# A PATH with no Python environment on it (the shell of a fresh machine, where pyenv shims or an activated venv
# are not given).
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def readme_demo_command() -> list[str]:
    install_and_demo, _ = quick_start()
    demo = install_and_demo[-1]
    assert demo == [".venv/bin/egress-xds", "demo"], f"the Quick start's last step changed: {demo}"
    return [str(interpreter_bin() / "egress-xds"), *demo[1:]]


def test_demo_succeeds_shows_the_proxy_log_and_leaves_nothing_running() -> None:
    env = {**os.environ, "PATH": SYSTEM_PATH}
    result = subprocess.run(readme_demo_command(), capture_output=True, text=True, timeout=120, check=False, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert output.count("[ok]") == 3, output
    assert "proxy.py logged: 127.0.0.1:" in output and "CONNECT localhost:" in output
    assert "proxy.py #2 logged:" in output, "the live switch reached the second proxy"
    assert "Proxy-Authorization" not in output and "Basic " not in output
    leftovers = subprocess.run(["pgrep", "-f", "egress-xds-demo-"], capture_output=True, text=True, check=False)
    assert leftovers.stdout == "", f"processes left running: {leftovers.stdout}"

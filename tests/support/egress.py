"""Run egress-xds itself the way a user would: the real CLI, as a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import yaml

CLI_TIMEOUT = 30


def egress_xds(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`egress-xds ARGS` (via `python -m egress_xds.cli`, so the test uses this checkout)."""
    result = subprocess.run(
        [sys.executable, "-m", "egress_xds.cli", *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"egress-xds {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
    return result


def write_policy(directory: Path, text: str, name: str = "policy.yaml") -> Path:
    """Write a policy file (dedented) readable by every uid, and return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip())
    path.chmod(0o644)
    return path


def render_static(policy_path: Path, *, node_id: str = "test-node", mode: str = "sidecar") -> dict[str, Any]:
    """`egress-xds render --static --show-secrets`: the complete bootstrap a user would hand to Envoy."""
    result = egress_xds(
        "render", "--config", str(policy_path), "--node-id", node_id, "--mode", mode, "--static", "--show-secrets"
    )
    bootstrap: dict[str, Any] = yaml.safe_load(result.stdout)
    return bootstrap

"""Run egress-xds itself the way a user would: the real CLI, as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.support.netns import Lab

CLI_TIMEOUT = 30
REPO_ROOT = Path(__file__).resolve().parents[2]


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


def replace_file(path: Path, text: str) -> None:
    """Replace a file atomically, as editors and Kubernetes ConfigMap volumes do."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(textwrap.dedent(text).lstrip())
    temporary.chmod(0o644)
    os.replace(temporary, path)


def bootstrap(node_id: str, xds_address: str, *, delta: bool, mode: str = "sidecar") -> dict[str, Any]:
    """`egress-xds bootstrap`: an Envoy bootstrap that takes its listeners and clusters from the server."""
    args = ["bootstrap", "--node-id", node_id, "--xds-address", xds_address, "--mode", mode]
    result = egress_xds(*args, *(["--delta"] if delta else []))
    data: dict[str, Any] = yaml.safe_load(result.stdout)
    return data


@dataclass
class ServeProcess:
    """`egress-xds serve --config POLICY` running in a lab namespace, its log in a file."""

    lab: Lab
    ns: str
    policy: Path
    log_path: Path
    listen: str = "127.0.0.1:18000"
    proc: subprocess.Popen[bytes] | None = None
    args: Sequence[str] = ()  # more `serve` flags

    def start(self) -> ServeProcess:
        argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--config", str(self.policy), "--listen", self.listen]
        argv += self.args
        with self.log_path.open("ab") as log:
            self.proc = self.lab.popen(self.ns, argv, stdout=log, env={"PYTHONPATH": str(REPO_ROOT)})
        self.lab.wait_listening(self.ns, int(self.listen.rsplit(":", 1)[1]), timeout=20, proc=self.proc)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.lab.stop(self.proc)
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self) -> str:
        return "--- egress-xds serve ---\n" + self.log()[-4000:]

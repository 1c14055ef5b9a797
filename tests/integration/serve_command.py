"""`egress-xds serve` as a user runs it (the real command, a subprocess on loopback), with typed clients of its
admin API and a metrics scrape. Ports are picked by the server (port 0) and read back from its log."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc

from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc
from tests.support.egress import REPO_ROOT
from tests.support.processes import kill_group, wait_until

_LISTENING = re.compile(r"ADS server listening on \S+ \(port (\d+)\)")
_METRICS = re.compile(r"metrics on http://(\S+)/metrics")
RPC_TIMEOUT = 10.0


class ServeCommand:
    """`egress-xds serve [SOURCE ARGS] --listen 127.0.0.1:0 --metrics-address 127.0.0.1:0 [EXTRA]`."""

    def __init__(
        self,
        source_args: Sequence[str],
        log_path: Path,
        *,
        extra: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        ready: str = "ADS server listening",
    ) -> None:
        self.log_path = log_path
        argv = [sys.executable, "-m", "egress_xds.cli", "serve", *source_args]
        argv += ["--listen", "127.0.0.1:0", "--metrics-address", "127.0.0.1:0", *extra]
        environment = {**(env if env is not None else os.environ), "PYTHONPATH": str(REPO_ROOT)}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
                start_new_session=True,
            )
        wait_until(
            lambda: ready in self.log() and _METRICS.search(self.log()),
            timeout=20,
            what="egress-xds serve to start",
            abort=self._exited,
            describe=self.describe,
        )
        port = _LISTENING.search(self.log())
        metrics = _METRICS.search(self.log())
        assert port is not None and metrics is not None, self.describe()
        self.address = f"127.0.0.1:{port.group(1)}"
        self.metrics_address = metrics.group(1)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self) -> str:
        return f"--- egress-xds serve ({self.log_path}) ---\n{self.log()[-6000:]}"

    def signal(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def admin(self, channel: grpc.Channel) -> admin_pb2_grpc.AdminStub:
        return admin_pb2_grpc.AdminStub(channel)

    def get_policy(self) -> admin_pb2.GetPolicyResponse:
        with grpc.insecure_channel(self.address) as channel:
            answer: admin_pb2.GetPolicyResponse = self.admin(channel).GetPolicy(
                admin_pb2.GetPolicyRequest(), timeout=RPC_TIMEOUT
            )
        return answer

    def reload_errors(self) -> admin_pb2.GetReloadErrorsResponse:
        with grpc.insecure_channel(self.address) as channel:
            answer: admin_pb2.GetReloadErrorsResponse = self.admin(channel).GetReloadErrors(
                admin_pb2.GetReloadErrorsRequest(), timeout=RPC_TIMEOUT
            )
        return answer

    def reload(self) -> admin_pb2.ReloadResponse:
        with grpc.insecure_channel(self.address) as channel:
            answer: admin_pb2.ReloadResponse = self.admin(channel).Reload(
                admin_pb2.ReloadRequest(), timeout=RPC_TIMEOUT
            )
        return answer

    def proxy_urls(self) -> list[str]:
        """The proxy URLs of every policy being served (GetPolicy)."""
        return [proxy.url for policy in self.get_policy().policies for proxy in policy.proxies]

    def metric(self, name: str, labels: str) -> float:
        with urllib.request.urlopen(f"http://{self.metrics_address}/metrics", timeout=5) as response:
            body = response.read().decode()
        match = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", body, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        return kill_group(self.proc)

    def _exited(self) -> str | None:
        if self.proc.poll() is not None:
            return f"egress-xds serve exited with {self.proc.returncode}"
        return None

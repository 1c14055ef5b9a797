"""Start the lab's "outside world" (:mod:`tests.support.upstream_server`) in the inet namespace.

Reached from the pod directly at 10.250.2.2 / 10.250.2.3 (peer seen: 10.250.2.1) and from the proxy in corp at
10.250.3.2 (peer seen: 10.250.3.1), so each response says which path the traffic took.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.netns import CORP_INET_IP, INET_CORP_IP, POD_INET_IP, UPSTREAM_IP, UPSTREAM_IP_2, Lab
from tests.support.processes import tail, wait_for_line
from tests.support.tls import CertFiles

REPO_ROOT = Path(__file__).resolve().parents[2]
CERT_IDENTITIES = ("api.example.test", "*.example.test", UPSTREAM_IP, UPSTREAM_IP_2, INET_CORP_IP)
BANNER_LINE = "BANNER egress-lab"

# What an upstream response's ``peer=`` says about the path the traffic took.
PEER_VIA_PROXY = CORP_INET_IP
PEER_DIRECT = POD_INET_IP


@dataclass(repr=False)
class Upstreams:
    """The running upstream servers; ``ca_pem`` verifies their certificate (``curl --cacert``)."""

    lab: Lab
    proc: subprocess.Popen[bytes]
    ca_pem: Path
    cert: CertFiles
    log_path: Path
    https_port: int = 443
    http_port: int = 80
    banner_port: int = 2222

    def log(self) -> str:
        """The servers' log: one line per HTTP(S) request / TCP connection."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = 10) -> str:
        """Wait until a log line matches regex ``pattern``; return it."""
        return wait_for_line(
            lambda: self.log().splitlines(),
            pattern,
            timeout=timeout,
            what="an upstream log line",
            describe=self.describe,
        )

    def running(self) -> bool:
        """True while the server process has not exited."""
        return self.proc.poll() is None

    def describe(self) -> str:
        """State and log tail, for error messages."""
        state = "running" if self.running() else f"exited with {self.proc.returncode}"
        return f"--- upstreams in {self.lab.inet} ({state}) ---\n{tail(self.log_path)}"

    def stop(self) -> None:
        """Stop the servers (idempotent)."""
        self.lab.stop(self.proc, grace=3.0)

    def __enter__(self) -> Upstreams:
        """Return self; the servers are already running."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the servers."""
        self.stop()

    def __repr__(self) -> str:
        """Ports and namespace."""
        return (
            f"Upstreams(https={self.https_port}, http={self.http_port}, banner={self.banner_port} in {self.lab.inet})"
        )


def start_upstreams(
    lab: Lab,
    *,
    https_port: int = 443,
    http_port: int = 80,
    banner_port: int = 2222,
    timeout: float = 20,
) -> Upstreams:
    """Start HTTPS (``https_port``), HTTP (``http_port``) and banner/echo (``banner_port``) servers on 0.0.0.0 in the
    inet namespace, with a lab-CA certificate for api.example.test, ``*.example.test``, 10.250.2.2, 10.250.2.3 and
    10.250.3.2; wait until all ports accept connections."""
    cert = lab.issue_cert(*CERT_IDENTITIES, name=f"upstream-{https_port}")
    log_path = lab.workdir / f"upstreams-{https_port}.log"
    argv = [
        sys.executable,
        "-m",
        "tests.support.upstream_server",
        "--cert",
        str(cert.cert),
        "--key",
        str(cert.key),
        "--https-port",
        str(https_port),
        "--http-port",
        str(http_port),
        "--banner-port",
        str(banner_port),
    ]
    with open(log_path, "wb") as log:
        proc = lab.popen(
            "inet",
            argv,
            stdout=log,
            stderr=log,
            cwd=REPO_ROOT,
            env={"PYTHONPATH": str(REPO_ROOT), "PYTHONUNBUFFERED": "1"},
        )
    upstreams = Upstreams(lab, proc, lab.ca_pem, cert, log_path, https_port, http_port, banner_port)
    try:
        for port in (https_port, http_port, banner_port):
            lab.wait_listening("inet", port, timeout=timeout, proc=proc, describe=upstreams.describe)
    except BaseException:
        upstreams.stop()
        raise
    return upstreams

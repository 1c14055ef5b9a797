"""The servers under test as processes of their own, started, triggered and stopped the way an operator does it.

- **egress-xds**: the real ``egress-xds serve --config FILE --listen 127.0.0.1:PORT --log-level warning`` plus the
  pass-through flags (``--serve-arg``), so the benchmark measures whatever the server does (drain window, max
  stream age, ...).
- **the floor**: ``python -m bench.fanout.floor --config FILE --listen 127.0.0.1:PORT`` (`bench.fanout.floor`).

Both read the same policy file. The file the server is given (`watched/policy.yaml`) is a symlink to
`versions/<name>.yaml`: a trigger by **SIGHUP** or by the admin **Reload** RPC (egress-xds only) rewrites the
target in place, a change the file watch does not see (it watches `watched/`), so only the trigger reloads, with
no debounce. The **file** trigger (egress-xds only) swaps the symlink as a Kubernetes ConfigMap update does, and
the watch picks it up after its debounce. Each process runs in a session of its own and is stopped by PID (SIGTERM,
then SIGKILL). CPU and memory are read from /proc the same way for both.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.fanout.policy import policy_text
from bench.fanout.procfs import cpu_seconds, peak_rss_kb, rss_kb
from egress_xds.demo.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
KINDS = ("egress", "floor")
TRIGGERS = ("sighup", "reload", "file")
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class ServerStats:
    rss_kb: int
    peak_rss_kb: int
    cpu: float  # user + system seconds so far


class ServerProcess:
    """One server replica (`kind` "egress" or "floor") in `directory`."""

    def __init__(self, kind: str, directory: Path, serve_args: Sequence[str] = (), cpus: Sequence[int] = ()) -> None:
        if kind not in KINDS:
            raise ValueError(f"server kind {kind!r}: expected one of {KINDS}")
        self.kind = kind
        self.directory = directory
        self.port = free_port()
        watched, versions = directory / "watched", directory / "versions"
        watched.mkdir(parents=True)
        versions.mkdir()
        self.config = watched / "policy.yaml"
        self._write(versions / "policy-0.yaml", policy_text(0))
        self.config.symlink_to(Path("..") / "versions" / "policy-0.yaml")
        self._files = 0
        listen = f"127.0.0.1:{self.port}"
        if kind == "egress":
            argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--config", str(self.config), "--listen", listen]
            argv += ["--log-level", "warning", *serve_args]
        else:
            argv = [sys.executable, "-m", "bench.fanout.floor", "--config", str(self.config), "--listen", listen]
        self.argv = argv
        self._log = (directory / "server.log").open("wb")
        path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        self.process = subprocess.Popen(
            argv,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
        )
        self.terminated_at: float | None = None
        self.exited_at: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @staticmethod
    def _write(path: Path, text: str) -> None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(text)
        os.replace(temporary, path)

    def wait_ready(self, deadline: float) -> None:
        """Until the server accepts connections (it publishes the first snapshot before it listens)."""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} server exited with {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} server did not listen on port {self.port}")

    def log_tail(self) -> str:
        self._log.flush()
        return (self.directory / "server.log").read_text(errors="replace")[-600:]

    def stats(self) -> ServerStats:
        return ServerStats(rss_kb(self.pid), peak_rss_kb(self.pid), cpu_seconds(self.pid))

    def trigger(self, how: str, step: int) -> None:
        """Make the server reload `policy_text(step)`: by SIGHUP, the admin Reload RPC or a file swap.

        The file watch compares the content with what it saw last (step 0, as SIGHUP changes go unseen by it):
        a file trigger must bring a step it has not seen."""
        text = policy_text(step)
        if how == "file":
            if self.kind != "egress":
                raise ValueError("the floor does not watch its file")
            self._files += 1
            target = f"policy-{self._files}.yaml"
            self._write(self.directory / "versions" / target, text)
            link = self.config.with_name("policy.yaml.new")
            link.symlink_to(Path("..") / "versions" / target)
            os.replace(link, self.config)  # atomic, as a ConfigMap update swaps its symlink
            return
        self._write(self.config.resolve(), text)  # in place: unseen by the watch of `watched/`
        if how == "sighup":
            os.kill(self.pid, signal.SIGHUP)
        elif how == "reload":
            if self.kind != "egress":
                raise ValueError("the floor has no admin API: trigger it by SIGHUP")
            _admin_reload(self.port)
        else:
            raise ValueError(f"trigger {how!r}: expected one of {TRIGGERS}")

    def terminate(self) -> None:
        """SIGTERM, as a rollout sends it; does not wait (`exited` says when it is gone)."""
        self.terminated_at = time.monotonic()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)

    def exited(self) -> bool:
        if self.exited_at is None and self.process.poll() is not None:
            self.exited_at = time.monotonic()
        return self.exited_at is not None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT, always by PID."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(timeout=STOP_TIMEOUT)
        self._log.close()


def _admin_reload(port: int) -> None:
    """egress-xds's admin `Reload`, over loopback (allowed without a client certificate), as `grpcurl` would call it."""
    import grpc

    from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        admin_pb2_grpc.AdminStub(channel).Reload(admin_pb2.ReloadRequest(), timeout=30)

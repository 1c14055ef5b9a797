"""A three-namespace network lab: a "pod" with no route to the world, a "corp" network with the forward proxy, and an
"inet" namespace standing in for the outside world.

::

    pod  10.250.1.1/24 <--veth--> 10.250.1.2/24  corp   (the proxy listens on 10.250.1.2)
    pod  10.250.2.1/24 <--veth--> 10.250.2.2/24  inet   (+ 10.250.2.3/24 on the same interface)
    corp 10.250.3.1/24 <--veth--> 10.250.3.2/24  inet   (corp: 10.250.2.0/24 via 10.250.3.2)

Upstreams therefore see ``peer=10.250.3.1`` when the traffic went through the proxy and ``peer=10.250.2.1`` when it
went direct from the pod. Names resolve per namespace from ``/etc/netns/NAME/hosts`` (``ip netns exec`` bind-mounts
it over ``/etc/hosts``) and ``resolv.conf`` points at the namespace's own loopback, so no lookup ever leaves it.
The pod has no default route. Every address is assigned here, inside namespaces created here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from tests.support.processes import User, child_env, kill_group, kill_pid, run_bounded, wait_until, wrap_argv
from tests.support.requirements import need

if TYPE_CHECKING:  # trustme is imported only when a certificate is needed
    from tests.support.tls import CertFiles, LabCA

# Addresses (fixed: tests rely on them).
POD_CORP_IP = "10.250.1.1"  # the pod's address on the pod<->corp link
PROXY_IP = "10.250.1.2"  # corp's address on the pod<->corp link: where the proxies listen
POD_INET_IP = "10.250.2.1"  # the pod's address on the pod<->inet link (peer seen by upstreams for direct traffic)
UPSTREAM_IP = "10.250.2.2"  # inet's address on the pod<->inet link: where the lab names point in the pod
UPSTREAM_IP_2 = "10.250.2.3"  # a second inet address on the same interface
CORP_INET_IP = "10.250.3.1"  # corp's address on the corp<->inet link (peer seen by upstreams for proxied traffic)
INET_CORP_IP = "10.250.3.2"  # inet's address on the corp<->inet link: where the lab names point in corp

PROXY_NAME = "proxy.corp.test"
UPSTREAM_NAMES = ("api.example.test", "other.example.test", "direct.example.test", "www.example.test")
ROLES = ("pod", "corp", "inet")
CAPTURE_CHAIN = "EXD_OUTPUT"
PROXY_ENV_VARS = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ftp_proxy")

_LINKS: tuple[tuple[str, str, str, str, str, str], ...] = (
    # (namespace A, interface in A, address in A, namespace B, interface in B, address in B)
    ("pod", "to-corp", f"{POD_CORP_IP}/24", "corp", "to-pod", f"{PROXY_IP}/24"),
    ("pod", "to-inet", f"{POD_INET_IP}/24", "inet", "to-pod", f"{UPSTREAM_IP}/24"),
    ("corp", "to-inet", f"{CORP_INET_IP}/24", "inet", "to-corp", f"{INET_CORP_IP}/24"),
)


@dataclass(frozen=True)
class CurlResult:
    """What a curl run produced: exit code and decoded output."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when curl exited 0."""
        return self.returncode == 0

    def __str__(self) -> str:
        """A compact description for assertion messages."""
        return f"curl exit={self.returncode}\n--- stdout ---\n{self.stdout}\n--- stderr ---\n{self.stderr}"


class Lab:
    """Three network namespaces (pod, corp, inet) and the processes started in them; see the module docstring.

    Create it with :func:`lab`. Namespace arguments accept a role (``"pod"``, ``"corp"``, ``"inet"``) or the full
    namespace name (``lab.pod``).
    """

    def __init__(self, base: str) -> None:
        """Prepare names only; :func:`lab` builds and tears down the namespaces."""
        self.base = base
        self.pod = f"{base}pod"
        self.corp = f"{base}corp"
        self.inet = f"{base}inet"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{base}-", dir="/tmp"))
        self.workdir.chmod(0o755)
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []
        self._captured: set[str] = set()
        self._ca: LabCA | None = None

    # -- names -------------------------------------------------------------------------------------------------

    @property
    def namespaces(self) -> tuple[str, str, str]:
        """The full namespace names (pod, corp, inet)."""
        return (self.pod, self.corp, self.inet)

    def ns(self, ns: str) -> str:
        """Resolve a role (``"pod"``) or a full namespace name of this lab to the full name."""
        if ns in ROLES:
            return f"{self.base}{ns}"
        if ns in self.namespaces:
            return ns
        raise ValueError(f"{ns!r} is neither a role {ROLES} nor a namespace of this lab {self.namespaces}")

    # -- TLS ---------------------------------------------------------------------------------------------------

    @property
    def ca(self) -> LabCA:
        """The lab's certificate authority (created on first use, files under ``workdir/tls``)."""
        if self._ca is None:
            from tests.support.tls import LabCA

            self._ca = LabCA(self.workdir / "tls")
        return self._ca

    @property
    def ca_pem(self) -> Path:
        """PEM file of the lab CA, for ``curl --cacert`` and Envoy validation contexts."""
        return self.ca.ca_pem

    def issue_cert(self, *identities: str, name: str | None = None) -> CertFiles:
        """Issue a certificate signed by the lab CA for the given DNS names / IPs (files readable by everyone)."""
        return self.ca.issue(*identities, name=name)

    # -- running things ----------------------------------------------------------------------------------------

    def run(
        self,
        ns: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        user: User | None = None,
        timeout: float = 20,
        env: Mapping[str, str] | None = None,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside namespace ``ns`` (as ``user`` via setpriv when given) and wait at most ``timeout`` s.

        The child gets the current environment updated with ``env``. Raises ``subprocess.TimeoutExpired`` (after
        killing the process group) on timeout, ``CalledProcessError`` when ``check`` and the exit code is non-zero.
        """
        return run_bounded(
            wrap_argv(argv, netns=self.ns(ns), user=user), timeout=timeout, env=child_env(env), check=check
        )

    def popen(
        self,
        ns: str,
        argv: Sequence[str | os.PathLike[str]],
        *,
        user: User | None = None,
        stdout: int | IO[Any] | None = subprocess.DEVNULL,
        stderr: int | IO[Any] | None = subprocess.STDOUT,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` in namespace ``ns`` in its own process group; the lab stops it (by PID) on exit.

        The child gets the current environment updated with ``env``. Stop it earlier with :meth:`stop`.
        """
        proc = subprocess.Popen(
            wrap_argv(argv, netns=self.ns(ns), user=user),
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[Any], *, grace: float = 5.0) -> int | None:
        """Stop a process started with :meth:`popen` (SIGTERM to its group, SIGKILL after ``grace``)."""
        code = kill_group(proc, grace=grace)
        if proc in self._procs:
            self._procs.remove(proc)
        return code

    def curl(
        self,
        ns: str,
        args: Sequence[str | os.PathLike[str]],
        *,
        timeout: float = 10,
        env: Mapping[str, str] | None = None,
        user: User | None = None,
    ) -> CurlResult:
        """Run the real curl in ``ns`` with ``-sS --max-time timeout`` followed by ``args``.

        Inherited proxy variables (http_proxy, https_proxy, no_proxy, all_proxy in either case) are removed; only
        what ``env`` sets reaches curl. ``-q`` keeps a ``~/.curlrc`` out of the way.
        """
        argv: list[str | os.PathLike[str]] = ["curl", "-q", "-sS", "--max-time", f"{timeout:g}", *args]
        proc = run_bounded(
            wrap_argv(argv, netns=self.ns(ns), user=user),
            timeout=timeout + 10,
            env=child_env(env, drop=PROXY_ENV_VARS),
        )
        return CurlResult(proc.returncode, proc.stdout, proc.stderr)

    def listening(self, ns: str, port: int, host: str | None = None) -> bool:
        """True when a TCP socket listens on ``port`` in ``ns`` (on ``host``, or on a wildcard address)."""
        out = self.run(ns, ["ss", "-Hltn"], timeout=10).stdout
        wildcard = {"0.0.0.0", "*", "[::]", "::"}
        for line in out.splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            addr, _, lport = fields[3].rpartition(":")
            addr = addr.split("%", 1)[0]
            if lport == str(port) and (host is None or addr == host or addr in wildcard):
                return True
        return False

    def wait_listening(
        self,
        ns: str,
        port: int,
        host: str | None = None,
        *,
        timeout: float = 15,
        proc: subprocess.Popen[Any] | None = None,
        describe: Any = None,
    ) -> None:
        """Wait (bounded) until something listens on ``host:port`` in ``ns``.

        When ``proc`` is given and exits first, fail at once. ``describe`` is a callable returning logs for the
        error message.
        """

        def exited() -> str | None:
            if proc is not None and proc.poll() is not None:
                return f"process exited with code {proc.returncode}"
            return None

        wait_until(
            lambda: self.listening(ns, port, host),
            timeout=timeout,
            interval=0.1,
            what=f"a listener on {host or '*'}:{port} in {self.ns(ns)}",
            abort=exited,
            describe=describe,
        )

    # -- transparent capture -----------------------------------------------------------------------------------

    def capture(
        self,
        ns: str = "pod",
        port: int = 15001,
        exclude_uid: int = 1337,
        *,
        exclude_cidrs: Sequence[str] = (),
        exclude_ports: Sequence[int] = (),
    ) -> None:
        """Redirect outbound TCP in ``ns`` to ``port`` like istio-iptables, in a custom ``nat OUTPUT`` chain.

        RETURN (not captured): traffic of uid ``exclude_uid`` (Envoy itself), 127.0.0.0/8, ``exclude_cidrs`` and
        destination ports ``exclude_ports``; everything else TCP is REDIRECTed to ``port``. The rules vanish with the
        namespace; :meth:`uncapture` removes them earlier.
        """
        need(shutil.which("iptables") is not None, "the `iptables` executable", "apt-get install -y iptables")
        name = self.ns(ns)
        if name in self._captured:
            self.uncapture(name)
        rules: list[list[str]] = [["-N", CAPTURE_CHAIN]]
        rules.append(["-A", CAPTURE_CHAIN, "-m", "owner", "--uid-owner", str(exclude_uid), "-j", "RETURN"])
        rules.append(["-A", CAPTURE_CHAIN, "-d", "127.0.0.0/8", "-j", "RETURN"])
        rules += [["-A", CAPTURE_CHAIN, "-d", cidr, "-j", "RETURN"] for cidr in exclude_cidrs]
        rules += [["-A", CAPTURE_CHAIN, "-p", "tcp", "--dport", str(p), "-j", "RETURN"] for p in exclude_ports]
        rules.append(["-A", CAPTURE_CHAIN, "-p", "tcp", "-j", "REDIRECT", "--to-ports", str(port)])
        rules.append(["-A", "OUTPUT", "-p", "tcp", "-j", CAPTURE_CHAIN])
        for rule in rules:
            self._iptables(name, rule)
        self._captured.add(name)

    def uncapture(self, ns: str = "pod") -> None:
        """Remove the rules installed by :meth:`capture` from ``ns``."""
        name = self.ns(ns)
        for rule in (["-D", "OUTPUT", "-p", "tcp", "-j", CAPTURE_CHAIN], ["-F", CAPTURE_CHAIN], ["-X", CAPTURE_CHAIN]):
            self._iptables(name, rule, check=False)
        self._captured.discard(name)

    def iptables_rules(self, ns: str = "pod") -> str:
        """``iptables -t nat -S`` in ``ns`` (for error messages)."""
        return self.run(ns, ["iptables", "-w", "5", "-t", "nat", "-S"], timeout=15).stdout

    def _iptables(self, ns: str, rule: list[str], *, check: bool = True) -> None:
        result = self.run(ns, ["iptables", "-w", "5", "-t", "nat", *rule], timeout=15)
        if check and result.returncode != 0:
            raise RuntimeError(f"iptables -t nat {' '.join(rule)} in {ns} failed: {result.stderr.strip()}")

    # -- building and tearing down -----------------------------------------------------------------------------

    def _ip(self, *args: str) -> None:
        result = run_bounded(["ip", *args], timeout=15)
        if result.returncode != 0:
            raise RuntimeError(f"`ip {' '.join(args)}` failed ({result.returncode}): {result.stderr.strip()}")

    def _build(self) -> None:
        for role in ROLES:
            name = self.ns(role)
            self._write_etc(role, name)
            self._ip("netns", "add", name)
            self._created.append(name)
            self._ip("-n", name, "link", "set", "lo", "up")
        for ns_a, if_a, addr_a, ns_b, if_b, addr_b in _LINKS:
            a, b = self.ns(ns_a), self.ns(ns_b)
            self._ip("link", "add", if_a, "netns", a, "type", "veth", "peer", "name", if_b, "netns", b)
            self._ip("-n", a, "addr", "add", addr_a, "dev", if_a)
            self._ip("-n", b, "addr", "add", addr_b, "dev", if_b)
            self._ip("-n", a, "link", "set", if_a, "up")
            self._ip("-n", b, "link", "set", if_b, "up")
        self._ip("-n", self.inet, "addr", "add", f"{UPSTREAM_IP_2}/24", "dev", "to-pod")
        self._ip("-n", self.corp, "route", "add", "10.250.2.0/24", "via", INET_CORP_IP)
        self._ip("-n", self.inet, "route", "add", "10.250.1.0/24", "via", CORP_INET_IP)

    def _write_etc(self, role: str, name: str) -> None:
        hosts = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        if role == "pod":
            hosts += [f"{UPSTREAM_IP} {n}" for n in UPSTREAM_NAMES] + [f"{PROXY_IP} {PROXY_NAME}"]
        elif role == "corp":
            hosts += [f"{INET_CORP_IP} {n}" for n in UPSTREAM_NAMES] + [f"{PROXY_IP} {PROXY_NAME}"]
        etc = Path("/etc/netns") / name
        etc.mkdir(parents=True, exist_ok=True)
        etc.chmod(0o755)
        (etc / "hosts").write_text("\n".join(hosts) + "\n")
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        for f in ("hosts", "resolv.conf"):
            (etc / f).chmod(0o644)

    def close(self) -> None:
        """Stop every process started in the lab (tracked ones by process group, then any PID left inside the
        namespaces), delete the namespaces, their ``/etc/netns`` directories and the work directory."""
        problems: list[str] = []
        for proc in reversed(self._procs):
            try:
                kill_group(proc, grace=3.0)
            except Exception as exc:  # keep tearing down
                problems.append(f"stopping pid {proc.pid}: {exc}")
        self._procs.clear()
        for name in reversed(self._created):
            pids = run_bounded(["ip", "netns", "pids", name], timeout=10).stdout.split()
            for pid in pids:
                if pid.isdigit():
                    kill_pid(int(pid))
            result = run_bounded(["ip", "netns", "del", name], timeout=15)
            if result.returncode != 0:
                problems.append(f"ip netns del {name}: {result.stderr.strip()}")
        self._created.clear()
        for name in self.namespaces:
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        shutil.rmtree(self.workdir, ignore_errors=True)
        if problems:
            warnings.warn("lab teardown: " + "; ".join(problems), stacklevel=2)


def _existing_namespaces() -> set[str]:
    out = run_bounded(["ip", "netns", "list"], timeout=10).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


@contextlib.contextmanager
def lab(prefix: str = "exd") -> Iterator[Lab]:
    """Build the three-namespace lab (``<prefix><pid>pod``/``corp``/``inet``) and tear it down on exit, also when
    the body raises. A second lab in the same process gets a letter suffix so names never clash."""
    existing = _existing_namespaces()
    base = f"{prefix}{os.getpid()}"
    for suffix in ("", *"abcdefghijklmnopqrstuvwxyz"):
        if not any(f"{base}{suffix}{role}" in existing for role in ROLES):
            base = f"{base}{suffix}"
            break
    else:
        raise RuntimeError(f"too many labs named {base}* exist")
    the_lab = Lab(base)
    try:
        the_lab._build()
        yield the_lab
    finally:
        the_lab.close()

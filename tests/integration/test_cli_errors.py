"""Every error branch of the command line, one table: the exit code (README "Exit codes"), one line that says what
is wrong, never a traceback, never a password. The real CLI as a subprocess; ports held by sockets of the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from tests.kubernetes.resources import kubeconfig_text
from tests.support.egress import CLI_TIMEOUT, REPO_ROOT, write_policy

pytestmark = pytest.mark.integration

PASSWORD = "S3cretPw-cli-canary"
GOOD = "httpsProxy: http://10.0.0.1:3128\n"
FIFO_CREDENTIALS = "proxies: {corp: {url: 'http://10.0.0.1:3128', credentialsFile: fifo}}\nrules: []\n"
HUGE_CA = "proxies: {corp: {url: 'https://10.0.0.1:3128', caFile: huge.pem}}\nrules: []\n"
INJECT_BUG = (
    "import sys, egress_xds.cli as cli\n"
    "def broken(args):\n"
    "    raise KeyError('a bug in a handler')\n"
    "cli._check = broken\n"
    "sys.exit(cli.main(sys.argv[1:]))\n"
)


@dataclass(frozen=True)
class Case:
    argv: tuple[str, ...]
    code: int
    says: str  # in stderr (or stdout for help)
    env: dict[str, str] = field(default_factory=dict)
    bug: bool = False  # run with a handler that raises (the only way to reach the internal-error branch)
    traceback: bool = False
    alone: bool = False  # stderr is that one line and nothing else (no log line before it)


CASES = {
    "no command": Case((), 2, "usage: egress-xds"),
    "unknown command": Case(("frobnicate",), 2, "invalid choice: 'frobnicate'"),
    "check without a source": Case(("check",), 2, "one of the arguments --config --from-env is required"),
    "check with two sources": Case(("check", "--config", "{good}", "--from-env"), 2, "not allowed with"),
    "check a missing file": Case(("check", "--config", "{dir}/nope.yaml"), 1, "nope.yaml: cannot read"),
    "check an invalid file": Case(("check", "--config", "{invalid}"), 1, "invalid.yaml:1: rawTcp: "),
    "check a password without scheme": Case(("check", "--config", "{secret}"), 1, "secret.yaml:1: httpsProxy: "),
    "check a directory": Case(("check", "--config", "{dir}"), 1, "cannot read: is a directory, not a regular file"),
    "check a FIFO no one writes to": Case(("check", "--config", "{fifo}"), 1, "is a FIFO (named pipe) no one wrote"),
    "check a device": Case(("check", "--config", "/dev/zero"), 1, "/dev/zero: cannot read: is a character device"),
    "check credentials in a FIFO": Case(
        ("check", "--config", "{fifo_credentials}"), 1, "credentialsFile: cannot read {dir}/fifo: is a FIFO"
    ),
    "check a huge caFile": Case(("check", "--config", "{huge_ca}"), 1, "caFile: {dir}/huge.pem: larger than 1024 KiB"),
    "check an empty environment": Case(("check", "--from-env"), 1, "environment: neither HTTP_PROXY"),
    "check -o yaml": Case(("check", "--config", "{good}", "-o", "yaml"), 2, "invalid choice: 'yaml'"),
    "render for no policy": Case(
        ("render", "--config", "{selective}", "--node-id", "other"), 1, "no policy applies to node 'other'"
    ),
    "render with bad metadata": Case(
        ("render", "--config", "{good}", "--node-id", "n", "--node-meta", "novalue"), 2, "expected KEY=VALUE"
    ),
    "render an unknown mode": Case(
        ("render", "--config", "{good}", "--node-id", "n", "--node-meta", "mode=bogus"),
        2,
        "--node-meta unknown mode 'bogus': expected 'sidecar' or 'standalone' (exact, lowercase)",
    ),
    "explain a capitalised mode": Case(
        ("explain", "--config", "{good}", "--node-id", "n", "--node-meta", "mode=Standalone", "x.example:443"),
        2,
        "unknown mode 'Standalone': expected 'sidecar' or 'standalone'",
    ),
    "bootstrap an unknown mode": Case(
        ("bootstrap", "--node-id", "n", "--xds-address", "127.0.0.1:1", "--node-meta", "mode=bogus"),
        2,
        "unknown mode 'bogus'",
    ),
    "bootstrap a contradicting mode": Case(
        (
            "bootstrap",
            "--node-id",
            "n",
            "--xds-address",
            "127.0.0.1:1",
            "--mode",
            "sidecar",
            "--node-meta",
            "mode=standalone",
        ),
        2,
        "--mode sidecar and --node-meta mode=standalone contradict each other",
    ),
    "bootstrap an empty node id": Case(
        ("bootstrap", "--node-id", "", "--xds-address", "127.0.0.1:1"), 2, "--node-id: empty"
    ),
    "bootstrap a blank node id": Case(
        ("bootstrap", "--node-id", " \t", "--xds-address", "127.0.0.1:1"), 2, "--node-id: empty"
    ),
    "explain a name over tcp": Case(
        ("explain", "--config", "{good}", "--node-id", "n", "--protocol", "tcp", "api.example.com:443"),
        2,
        "pass --address IP",
    ),
    "explain a bad destination": Case(("explain", "--config", "{good}", "--node-id", "n", "ftp://x"), 2, "'ftp'"),
    "bootstrap a bad address": Case(("bootstrap", "--node-id", "n", "--xds-address", "x"), 2, "port is required"),
    "serve without a source": Case(("serve",), 2, "serve needs --config FILE, --from-env or --kubernetes"),
    "serve a bad --listen": Case(("serve", "--config", "{good}", "--listen", "nowhere"), 2, "--listen 'nowhere'"),
    "serve a bad --metrics-address": Case(
        ("serve", "--config", "{good}", "--metrics-address", "a:b:c:x"), 2, "--metrics-address 'a:b:c:x'"
    ),
    "serve a negative --debounce-ms": Case(
        ("serve", "--config", "{good}", "--debounce-ms", "-5"), 2, "argument --debounce-ms: '-5': expected 0 to 60000"
    ),
    "serve an absurd --debounce-ms": Case(
        ("serve", "--config", "{good}", "--debounce-ms", "60001"), 2, "argument --debounce-ms: '60001': expected 0"
    ),
    # gRPC core logged its own `add_port.cc ... Failed to add port` line first, after the policy was loaded and
    # logged (a new-user trial): the port is now checked before anything runs.
    "serve on a busy port": Case(
        ("serve", "--config", "{good}", "--listen", "{busy}"),
        1,
        "error: cannot listen on {busy}: address already in use",
        alone=True,
    ),
    "serve metrics on a busy port": Case(
        ("serve", "--config", "{good}", "--listen", "127.0.0.1:0", "--metrics-address", "{busy}"),
        1,
        "cannot listen on {busy} (metrics): address already in use",
    ),
    "serve an invalid policy": Case(("serve", "--config", "{invalid}", "--listen", "127.0.0.1:0"), 1, "rawTcp"),
    "capture a bad exclusion": Case(
        ("capture", "--dry-run", "--exclude-cidr", "10.0.0.300"), 2, "--exclude-cidr: '10.0.0.300' is not an IP"
    ),
    "capture a prefix too long": Case(("capture", "--dry-run", "--exclude-cidr", "fd00::/129"), 2, "--exclude-cidr: "),
    "capture a bracketed network": Case(
        ("capture", "--dry-run", "--exclude-cidr", "[fd00::]/8"), 2, "--exclude-cidr: "
    ),
    "capture port 0": Case(("capture", "--dry-run", "--port", "0"), 2, "--port 0: out of range (expected 1-65535)"),
    "capture a bad excluded port": Case(
        ("capture", "--dry-run", "--exclude-port", "70000"), 2, "--exclude-port 70000: out of range"
    ),
    "capture a negative uid": Case(("capture", "--dry-run", "--envoy-uid", "-5"), 2, "--envoy-uid -5: expected 1-"),
    "capture a comma-separated exclusion": Case(
        ("capture", "--dry-run", "--exclude-cidr", "10.0.0.0/8,fd00::/8"),
        2,
        "one CIDR per flag (repeat --exclude-cidr)",
    ),
    "capture root's uid": Case(
        ("capture", "--dry-run", "--envoy-uid", "0"), 2, "uid 0 would exempt every root process"
    ),
    "capture a bad --ipv6": Case(("capture", "--dry-run", "--ipv6", "drop"), 2, "invalid choice: 'drop'"),
    "status of no server": Case(("status", "--server", "{closed}"), 1, "cannot ask egress-xds at {closed}"),
    "status with a negative limit": Case(("status", "--fail-nack-after", "-1"), 2, "expected 0 or more seconds"),
    "status of no replica": Case(
        ("status", "--server", "{closed}", "--server", "127.0.0.1:1"), 1, "at {closed}: UNAVAILABLE: "
    ),
    "status of a bad service": Case(("status", "--service", "egress-xds"), 2, "--service 'egress-xds': expected"),
    "status through an unreachable API server": Case(
        ("status", "--kubernetes", "--kubeconfig", "{unreachable-kubeconfig}"),
        1,
        "cannot reach the Kubernetes API server at http://{closed}: ",
    ),
    "status of servers and a service": Case(
        ("status", "--server", "{closed}", "--kubernetes"), 2, "--server and --kubernetes/--service exclude"
    ),
    "an internal error": Case(
        ("check", "--config", "{good}"), 70, "internal error (KeyError): this is a bug", bug=True
    ),
    "an internal error with --debug": Case(
        ("check", "--config", "{good}", "--debug"), 70, "KeyError: 'a bug in a handler'", bug=True, traceback=True
    ),
    "an internal error with EGRESS_XDS_DEBUG": Case(
        ("check", "--config", "{good}"),
        70,
        "KeyError: 'a bug in a handler'",
        env={"EGRESS_XDS_DEBUG": "1"},
        bug=True,
        traceback=True,
    ),
}


@pytest.fixture(scope="module")
def places(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    directory = tmp_path_factory.mktemp("cli-errors")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    closed = socket.socket()  # bound, never listening: connections are refused
    closed.bind(("127.0.0.1", 0))
    fifo = directory / "fifo"
    os.mkfifo(fifo)  # no writer: opening it for reading the ordinary way would wait forever
    (directory / "huge.pem").write_bytes(b"#" * (1024 * 1024 + 1))
    try:
        yield {
            "dir": str(directory),
            "good": str(write_policy(directory, GOOD, "good.yaml")),
            "invalid": str(write_policy(directory, "rawTcp: maybe\n", "invalid.yaml")),
            "secret": str(write_policy(directory, f"httpsProxy: alice:{PASSWORD}@proxy:3128\n", "secret.yaml")),
            "selective": str(write_policy(directory, GOOD + "nodes: {id: 'team-a-*'}\n", "selective.yaml")),
            "fifo": str(fifo),
            "fifo_credentials": str(write_policy(directory, FIFO_CREDENTIALS, "fifo-credentials.yaml")),
            "huge_ca": str(write_policy(directory, HUGE_CA, "huge-ca.yaml")),
            "busy": f"127.0.0.1:{busy.getsockname()[1]}",
            "closed": f"127.0.0.1:{closed.getsockname()[1]}",
            "unreachable-kubeconfig": str(
                write_policy(directory, kubeconfig_text(f"http://127.0.0.1:{closed.getsockname()[1]}", "t"), "kc")
            ),
        }
    finally:
        busy.close()
        closed.close()


@pytest.mark.parametrize("name", CASES)
def test_cli_error(name: str, places: dict[str, str]) -> None:
    case = CASES[name]
    argv = [item.format(**places) for item in case.argv]
    command = [sys.executable, "-c", INJECT_BUG] if case.bug else [sys.executable, "-m", "egress_xds.cli"]
    inherited = {key: value for key, value in os.environ.items() if not key.lower().endswith("_proxy")}
    inherited.pop("EGRESS_XDS_DEBUG", None)
    env = {**inherited, "PYTHONPATH": str(REPO_ROOT), **case.env}
    result = subprocess.run(
        [*command, *argv], capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == case.code, f"exit {result.returncode}, expected {case.code}:\n{output}"
    assert case.says.format(**places) in output, output
    assert ("Traceback" in result.stderr) == case.traceback, result.stderr
    assert PASSWORD not in output
    if case.code in (1, 70) and not case.traceback:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert errors, result.stderr
    if case.alone:
        assert result.stderr.strip().splitlines() == [case.says.format(**places)], result.stderr

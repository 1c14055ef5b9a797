"""The canary secret (tests/support/canary.py) in every credential position, valid and malformed, and every output
searched for any piece of it.

Three tables, so that a new command, argument or RPC is one row:

- `INPUTS` x `COMMANDS`: every policy input (URL userinfo of http and https proxies, default and named, endpoint
  lists, `credentialsFile` basic and Bearer, the environment, and malformed inputs: scheme-less URLs, URLs cut
  short, an invalid port made of the password, passwords holding `://`, `@`, quotes, spaces and YAML indicators,
  truncated files) through every command that reads a policy (`check`, `check -o json`, `render` in each form,
  `explain` text and JSON). In-process (`cli.main`), stdout and stderr captured.
- `ARGUMENTS`: the canary in command-line arguments of every command (argparse's own errors included), and
  every subcommand's `--help`.
- `RPCS` and the serve scenario: the real `egress-xds serve` (plain and JSON logs) with a policy holding the canary
  in every position, an xDS client whose NACK quotes it, every admin RPC (ListNodes with and without resources,
  GetNodeConfig in each view, GetPolicy, Reload and GetReloadErrors with failing files, gRPC error details), CSDS
  with and without resource contents, the metrics page, `status` in every output form, and the whole log.
- The Kubernetes source as `serve --kubernetes` against the in-process API server: status patches (every write
  it sends) and the log, with the canary in valid and invalid Secrets.

`render --show-secrets` is the one output meant to show a credential; it is searched too, and must show it
(proof that the search can fail).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from egress_xds import cli
from tests.support.canary import (
    AWKWARD_PASSWORDS,
    BEARER,
    MARK,
    PASSWORD,
    USER,
    basic_token,
    find_canary,
    userinfo,
    where,
)

pytestmark = pytest.mark.integration

HOST = "proxy.corp.test"
UI = userinfo()


@dataclass(frozen=True)
class Run:
    code: int
    stdout: str
    stderr: str

    def leak(self) -> str | None:
        for name, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            piece = find_canary(text)
            if piece is not None:
                return f"{name} shows {piece!r}: ...{where(text, piece)}..."
        return None


def run_cli(argv: list[str], env: Mapping[str, str] | None = None) -> Run:
    """`egress-xds ARGV` in this process (fast: no interpreter start), with a clean proxy environment."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        os.environ.pop(name, None)
    os.environ.update(env or {})
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(argv)
            except SystemExit as exit_:  # argparse: usage errors and --help
                code = int(exit_.code or 0)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return Run(code, out.getvalue(), err.getvalue())


# --- INPUTS: the canary in every credential position of a policy --------------------------------------------------


@dataclass(frozen=True)
class Input:
    files: dict[str, str | bytes] = field(default_factory=dict)  # "policy.yaml" is the policy, if any
    env: dict[str, str] = field(default_factory=dict)  # used with --from-env when there is no policy file
    valid: bool | None = True  # None: accepted or refused, either is right (a password Go's parser also takes)

    def write(self, directory: Path) -> list[str]:
        """The files under `directory`; returns the source arguments."""
        for name, content in self.files.items():
            path = directory / name
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content)
        return ["--config", str(directory / "policy.yaml")] if "policy.yaml" in self.files else ["--from-env"]


def _policy(text: str, **files: str | bytes) -> Input:
    return Input({"policy.yaml": text, **files})


def _invalid(text: str | bytes, **files: str | bytes) -> Input:
    return Input({"policy.yaml": text, **files}, valid=False)


def _either(text: str) -> Input:
    return Input({"policy.yaml": text}, valid=None)


def _env(valid: bool | None = True, **env: str) -> Input:
    return Input(env=env, valid=valid)


NAMED = f"""
proxies:
  corp: {{url: "http://{UI}{HOST}:3128"}}
  partner: "https://{UI}partner.corp.test:443"
  failover:
    endpoints:
      - {{url: "http://{UI}10.0.0.1:3128", priority: 0}}
      - {{url: "http://{UI}10.0.0.2:3128", priority: 1}}
httpsProxy: corp
httpProxy: failover
rules:
  - {{name: partner, domains: [".partner.example"], action: {{proxy: partner}}}}
standalone:
  listeners:
    - {{name: api, listen: "127.0.0.1:10443", target: "api.example.com:443"}}
  forwardProxy: {{listen: "127.0.0.1:3129"}}
"""
FILE_CREDENTIALS = """
proxies:
  corp: {url: "http://proxy.corp.test:3128", credentialsFile: creds}
httpsProxy: corp
httpProxy: corp
"""
AWKWARD_URLS = "".join(
    f'  {name}: {{url: "http://{userinfo(password)}{HOST}:3128"}}\n' for name, password in AWKWARD_PASSWORDS.items()
)

INPUTS: dict[str, Input] = {
    # valid: every position a credential can take
    "url http default proxies": _policy(f"httpsProxy: http://{UI}{HOST}:3128\nhttpProxy: http://{UI}{HOST}:3128\n"),
    "url https default proxy": _policy(f"httpsProxy: https://{UI}{HOST}:443\n"),
    "url without a port": _policy(f"httpsProxy: http://{UI}{HOST}\n"),
    "url ipv6 proxy": _policy(f'httpsProxy: "http://{UI}[fd00::1]:3128"\n'),
    "named proxies, endpoints, standalone": _policy(NAMED),
    "awkward passwords url-quoted": _policy(f"proxies:\n{AWKWARD_URLS}httpsProxy: scheme-like\nhttpProxy: spaces\n"),
    "credentialsFile basic": _policy(FILE_CREDENTIALS, creds=f"{USER}:{PASSWORD}\n"),
    "credentialsFile awkward": _policy(FILE_CREDENTIALS, creds=f"{USER}:{AWKWARD_PASSWORDS['yaml-special']}\n"),
    "credentialsFile bearer": _policy(FILE_CREDENTIALS, creds=f"{BEARER}\n"),
    "several policies": _policy(
        f"""
policies:
  - name: payments
    nodes: {{metadata: {{namespace: payments}}}}
    httpsProxy: http://{UI}{HOST}:3128
  - name: default
    httpsProxy: https://{UI}{HOST}:443
"""
    ),
    "environment": _env(HTTPS_PROXY=f"http://{UI}{HOST}:3128", HTTP_PROXY=f"http://{UI}{HOST}:3128", NO_PROXY=".svc"),
    "environment lower case https": _env(https_proxy=f"https://{UI}{HOST}:443"),
    "environment without a scheme": _env(HTTPS_PROXY=f"{UI}{HOST}:3128"),
    # malformed: the password where a parser gives up
    "scheme-less userinfo": _invalid(f"httpsProxy: {USER}:{PASSWORD}@{HOST}:3128\n"),
    "url cut short": _invalid(f"httpsProxy: http://{USER}:{PASSWORD}\n"),
    "url cut short, no scheme": _invalid(f"httpsProxy: {USER}:{PASSWORD}\n"),
    "url cut after @": _invalid(f"httpsProxy: http://{USER}:{PASSWORD}@\n"),
    "port made of the password": _invalid(f"httpsProxy: http://{HOST}:{PASSWORD}\n"),
    "port made of the password, with user": _invalid(f"httpsProxy: http://{UI}{HOST}:{PASSWORD}\n"),
    "unknown scheme": _invalid(f"httpsProxy: ftp://{UI}{HOST}:21\n"),
    "password with ://": _invalid(f"httpsProxy: http://{USER}:{AWKWARD_PASSWORDS['scheme-like']}@{HOST}:3128\n"),
    "password with @": _either(f"httpsProxy: http://{USER}:{AWKWARD_PASSWORDS['at-sign']}@{HOST}:3128\n"),
    "password with quotes": _either(f"httpsProxy: 'http://{USER}:{MARK}''\"q@{HOST}:3128'\n"),
    "password with spaces": _either(f'httpsProxy: "http://{USER}:{AWKWARD_PASSWORDS["spaces"]}@{HOST}:3128"\n'),
    "password breaking yaml": _invalid(f"httpsProxy: http://{USER}:{MARK}: #&*!|>%{{x@{HOST}:3128\n"),
    "password in an unclosed quote": _invalid(f'httpsProxy: "http://{USER}:{PASSWORD}@{HOST}:3128\n'),
    "password in a flow mapping cut short": _invalid(f"proxies: {{corp: {{url: http://{UI}{HOST}:3128\n"),
    "url as a mapping key": _invalid(f"http://{UI}{HOST}:3128: x\n"),
    "url where a list belongs": _invalid(f"httpsProxy: http://{UI}{HOST}:3128\nnoProxy: {{http://{UI}x: 1}}\n"),
    "url in a rule": _invalid(
        f"httpsProxy: http://{HOST}:3128\nrules:\n"
        f"  - {{name: r, domains: ['http://{UI}api.example'], action: direct}}\n"
    ),
    "url as the action": _invalid(
        f"httpsProxy: http://{HOST}:3128\nrules:\n  - {{name: r, action: {{proxy: 'http://{UI}x:1'}}}}\n"
    ),
    "truncated json": _invalid(f'{{"httpsProxy": "http://{USER}:{PASSWORD}'),
    "truncated yaml in the password": _invalid(f"httpsProxy: http://{USER}:{PASSWORD[:6]}"),
    "not utf-8": _invalid(f"httpsProxy: http://{UI}{HOST}:3128\n".encode() + b"\xff\xfe\n"),
    "credentialsFile without a colon": _invalid(FILE_CREDENTIALS, creds=f"{PASSWORD}\n"),
    "credentialsFile truncated": _invalid(FILE_CREDENTIALS, creds=f"{USER}:{PASSWORD}\r\nX-Injected: {MARK}"),
    "credentialsFile two lines": _invalid(FILE_CREDENTIALS, creds=f"{USER}:{PASSWORD}\n{USER}:{PASSWORD}\n"),
    "credentialsFile not utf-8": _invalid(FILE_CREDENTIALS, creds=f"{USER}:{PASSWORD}".encode() + b"\xff"),
    "credentialsFile and url userinfo": _invalid(
        f"proxies:\n  corp: {{url: 'http://{UI}{HOST}:3128', credentialsFile: creds}}\nhttpsProxy: corp\n",
        creds=f"{USER}:{PASSWORD}\n",
    ),
    "environment cut short": _env(False, HTTPS_PROXY=f"http://{USER}:{PASSWORD}"),
    "environment port made of the password": _env(False, HTTPS_PROXY=f"http://{HOST}:{PASSWORD}"),
    "environment scheme-less cut short": _env(False, HTTPS_PROXY=f"{USER}:{PASSWORD}"),
    "environment password with spaces": _env(None, HTTPS_PROXY=f"http://{USER}:{AWKWARD_PASSWORDS['spaces']}@{HOST}"),
    "environment unknown scheme": _env(False, HTTPS_PROXY=f"ftp://{UI}{HOST}:21"),
}

NODE = ["--node-id", "canary-node"]
COMMANDS: dict[str, list[str]] = {
    "check": ["check"],
    "check json": ["check", "-o", "json"],
    "render": ["render", *NODE],
    "render json": ["render", *NODE, "--format", "json"],
    "render static": ["render", *NODE, "--static"],
    "render standalone": ["render", *NODE, "--mode", "standalone"],
    "render standalone static json": ["render", *NODE, "--mode", "standalone", "--static", "--format", "json"],
    "explain": ["explain", *NODE, "api.example.com:443", "http://www.partner.example/", "10.9.9.9:5432"],
    "explain json": ["explain", *NODE, "-o", "json", "api.example.com:443", "http://www.partner.example/"],
}


def _with_source(command: list[str], source: list[str]) -> list[str]:
    return [command[0], *source, *command[1:]]


@pytest.mark.parametrize("input_name", sorted(INPUTS))
def test_policy_inputs_through_every_command(input_name: str, tmp_path: Path) -> None:
    given = INPUTS[input_name]
    source = given.write(tmp_path)
    leaks = []
    for name, command in COMMANDS.items():
        result = run_cli(_with_source(command, source), given.env)
        if given.valid and command[0] == "check":
            assert result.code == 0, f"{name}: {result.stderr}"
        if given.valid is False:
            assert result.code == 1, f"{name}: exit {result.code}, {result.stderr}"
        assert "Traceback" not in result.stderr, result.stderr
        leak = result.leak()
        if leak:
            leaks.append(f"{name}: {leak}")
    assert not leaks, "\n".join(leaks)


def test_show_secrets_shows_the_canary(tmp_path: Path) -> None:
    """The one output meant to hold a credential: proof that the search finds one."""
    source = INPUTS["url http default proxies"].write(tmp_path)
    result = run_cli(_with_source(["render", *NODE, "--show-secrets"], source))
    assert result.code == 0 and find_canary(result.stdout) is not None
    assert basic_token() in result.stdout


# --- ARGUMENTS: the canary in command-line arguments --------------------------------------------------------------

URL = f"http://{USER}:{PASSWORD}@{HOST}:3128"
BARE = f"{USER}:{PASSWORD}@{HOST}:3128"
CUT = f"http://{USER}:{PASSWORD}"
SPACED = f"http://{USER}:{AWKWARD_PASSWORDS['spaces']}@{HOST}:3128"
QUOTED = f"http://{USER}:{AWKWARD_PASSWORDS['quotes']}@{HOST}:3128"
GOOD = "httpsProxy: http://10.0.0.1:3128\n"
# Each value a user may paste into an argument by mistake: a proxy URL, with and without a scheme, cut short, and
# with a password that holds spaces or quotes (one shell word each).
VALUES = {"url": URL, "bare": BARE, "cut": CUT, "spaced": SPACED, "quoted": QUOTED}


@dataclass(frozen=True)
class Arguments:
    argv: tuple[str, ...]  # {good}: a valid policy file; {value}: the canary value
    codes: tuple[int, ...] = (1, 2)  # a usage error or a configuration error; never 70
    values: tuple[str, ...] = tuple(VALUES)


ARGUMENTS: dict[str, Arguments] = {
    "unknown command": Arguments(("{value}",)),
    "unknown flag": Arguments(("check", "--config", "{good}", "--{value}")),
    "invalid choice": Arguments(("check", "--config", "{good}", "-o", "{value}")),
    "invalid int": Arguments(("serve", "--config", "{good}", "--debounce-ms", "{value}")),
    "--config as a url": Arguments(("check", "--config", "{value}")),
    "--config as a url, json": Arguments(("check", "--config", "{value}", "-o", "json")),
    "render --config as a url": Arguments(("render", "--config", "{value}", *NODE)),
    "render --node-meta": Arguments(("render", "--config", "{good}", *NODE, "--node-meta", "{value}")),
    "render --mode": Arguments(("render", "--config", "{good}", *NODE, "--mode", "{value}")),
    "render --admin-address": Arguments(
        ("render", "--config", "{good}", *NODE, "--static", "--admin-address", "{value}")
    ),
    "explain destination": Arguments(("explain", "--config", "{good}", *NODE, "{value}"), codes=(0, 2)),
    "explain destination json": Arguments(
        ("explain", "--config", "{good}", *NODE, "-o", "json", "{value}"), codes=(0, 2)
    ),
    "explain url destination": Arguments(
        ("explain", "--config", "{good}", *NODE, "-o", "json", f"https://{USER}:{PASSWORD}@api.example.com/"),
        codes=(0, 1, 2),
        values=("url",),
    ),
    "explain --address": Arguments(("explain", "--config", "{good}", *NODE, "--address", "{value}", "x.example:443")),
    "explain --protocol": Arguments(("explain", "--config", "{good}", *NODE, "--protocol", "{value}", "x.example")),
    "bootstrap --xds-address": Arguments(("bootstrap", *NODE, "--xds-address", "{value}")),
    "bootstrap --admin-address": Arguments(
        ("bootstrap", *NODE, "--xds-address", "127.0.0.1:1", "--admin-address", "{value}")
    ),
    "bootstrap --node-meta": Arguments(("bootstrap", *NODE, "--xds-address", "127.0.0.1:1", "--node-meta", "{value}")),
    "bootstrap --pod-label": Arguments(("bootstrap", *NODE, "--xds-address", "127.0.0.1:1", "--pod-label", "{value}")),
    "bootstrap --pod-labels-file": Arguments(
        ("bootstrap", *NODE, "--xds-address", "127.0.0.1:1", "--pod-labels-file", "{value}")
    ),
    "capture --exclude-cidr": Arguments(("capture", "--dry-run", "--exclude-cidr", "{value}")),
    "capture --exclude-port": Arguments(("capture", "--dry-run", "--exclude-port", "{value}")),
    "capture --port": Arguments(("capture", "--dry-run", "--port", "{value}")),
    "serve --listen": Arguments(("serve", "--config", "{good}", "--listen", "{value}")),
    "serve --metrics-address": Arguments(("serve", "--config", "{good}", "--metrics-address", "{value}")),
    "serve --config as a url": Arguments(("serve", "--config", "{value}", "--listen", "127.0.0.1:0")),
    "serve --log-level": Arguments(("serve", "--config", "{good}", "--log-level", "{value}")),
    "status --server": Arguments(("status", "--server", "{value}")),
    "status --fail-nack-after": Arguments(("status", "--fail-nack-after", "{value}")),
    "status --fail-stale-after": Arguments(("status", "--fail-stale-after", "{value}")),
    "status -o": Arguments(("status", "-o", "{value}")),
}


def _arguments(case: Arguments, value: str, good: Path) -> list[str]:
    return [part.replace("{good}", str(good)).replace("{value}", value) for part in case.argv]


@pytest.mark.parametrize("case_name", sorted(ARGUMENTS))
def test_arguments_never_echo_the_canary(case_name: str, tmp_path: Path) -> None:
    case = ARGUMENTS[case_name]
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    leaks = []
    for value_name in case.values:
        argv = _arguments(case, VALUES[value_name], good)
        result = run_cli(argv)
        assert result.code in case.codes, f"{value_name}: exit {result.code}: {result.stderr}"
        leak = result.leak()
        if leak:
            leaks.append(f"{value_name}: {leak}")
    assert not leaks, "\n".join(leaks)


HELP = [[], *([command, "--help"] for command in ("check", "render", "bootstrap", "explain", "demo", "capture",
                                                    "serve", "status"))]  # fmt: skip


def test_every_command_has_a_help_row() -> None:
    """A new subcommand must be added to HELP (and to the tables above where it takes input)."""
    subcommands = next(action for action in cli._parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert set(subcommands.choices) == {argv[0] for argv in HELP if argv}


@pytest.mark.parametrize("argv", HELP, ids=lambda argv: " ".join(argv) or "no command")
def test_help_is_clean(argv: list[str]) -> None:
    result = run_cli(argv or ["--help"])
    assert result.code == 0 and result.leak() is None

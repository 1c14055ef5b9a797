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
import asyncio
import contextlib
import io
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

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
    handlers = list(logging.root.handlers)
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
        logging.root.handlers[:] = handlers  # serve configures logging on this run's stderr
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
    "url in noProxy": _invalid(f"httpsProxy: http://{HOST}:3128\nnoProxy: 'localhost,http://{USER}:{PASSWORD}@x'\n"),
    "url as sni": _invalid(f"proxies:\n  p: {{url: 'https://{HOST}:443', sni: 'http://{UI}x'}}\nhttpsProxy: p\n"),
    "url as a standalone target": _invalid(
        f"httpsProxy: http://{HOST}:3128\nstandalone:\n"
        f"  listeners: [{{name: a, listen: '127.0.0.1:1', target: 'http://{USER}:{PASSWORD}@x:443'}}]\n"
    ),
    "url as a node selector": _invalid(f"httpsProxy: http://{HOST}:3128\nnodes: 'http://{UI}x'\n"),
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
VALUES = {
    "url": URL,
    "bare": BARE,
    "cut": CUT,
    "spaced": SPACED,
    "quoted": QUOTED,
    "fragment": f"http://{USER}:{MARK}#x@{HOST}:3128",  # a URL parser stops at '#': gRPC quoted what precedes it
    "cut with a slash": f"{CUT}/",  # a file path drops the final '/'
}


@dataclass(frozen=True)
class Arguments:
    argv: tuple[str, ...]  # {good}: a valid policy file; {value}: the canary value
    codes: tuple[int, ...] = (1, 2)  # a usage error or a configuration error; never 70
    values: tuple[str, ...] = tuple(VALUES)
    data: bool = False  # a value that parses (KEY=VALUE) is the user's own data in the output, not a leak


ARGUMENTS: dict[str, Arguments] = {
    "unknown command": Arguments(("{value}",)),
    "unknown flag": Arguments(("check", "--config", "{good}", "--{value}")),
    "invalid choice": Arguments(("check", "--config", "{good}", "-o", "{value}")),
    "invalid int": Arguments(("serve", "--config", "{good}", "--debounce-ms", "{value}")),
    "--config as a url": Arguments(("check", "--config", "{value}")),
    "--config as a url, json": Arguments(("check", "--config", "{value}", "-o", "json")),
    "render --config as a url": Arguments(("render", "--config", "{value}", *NODE)),
    "render --node-meta": Arguments(("render", "--config", "{good}", *NODE, "--node-meta", "{value}"), data=True),
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
    "bootstrap --node-meta": Arguments(
        ("bootstrap", *NODE, "--xds-address", "127.0.0.1:1", "--node-meta", "{value}"), data=True
    ),
    "bootstrap --pod-label": Arguments(
        ("bootstrap", *NODE, "--xds-address", "127.0.0.1:1", "--pod-label", "{value}"), data=True
    ),
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
    "traffic --server": Arguments(("traffic", "--server", "{value}")),
    "traffic --namespace": Arguments(("traffic", "--server", "127.0.0.1:1", "--namespace", "{value}")),
    "traffic --outcome": Arguments(("traffic", "--outcome", "{value}")),
    "inject -f": Arguments(("inject", "-f", "{value}")),
    "inject --config": Arguments(("inject", "-f", "{good}", "--config", "{value}")),
    "inject --xds-address": Arguments(("inject", "-f", "{good}", "--xds-address", "{value}")),
    "inject --image": Arguments(("inject", "-f", "{good}", "--image", "{value}")),
    "inject --exclude-cidr": Arguments(("inject", "-f", "{good}", "--exclude-cidr", "{value}")),
    "inject --exclude-port": Arguments(("inject", "-f", "{good}", "--exclude-port", "{value}")),
    "inject --envoy-uid": Arguments(("inject", "-f", "{good}", "--envoy-uid", "{value}")),
    "inject --trust-domain": Arguments(("inject", "-f", "{good}", "--trust-domain", "{value}")),
    "webhook --listen": Arguments(("webhook", "--tls-cert", "{good}", "--tls-key", "{good}", "--listen", "{value}")),
    "webhook --tls-cert": Arguments(
        ("webhook", "--listen", "127.0.0.1:0", "--tls-cert", "{value}", "--tls-key", "{good}")
    ),
    "webhook --tls-key": Arguments(
        ("webhook", "--listen", "127.0.0.1:0", "--tls-cert", "{good}", "--tls-key", "{value}")
    ),
    "webhook --config": Arguments(("webhook", "--tls-cert", "{good}", "--tls-key", "{good}", "--config", "{value}")),
    "webhook --read-timeout": Arguments(
        ("webhook", "--tls-cert", "{good}", "--tls-key", "{good}", "--read-timeout", "{value}")
    ),
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
                                                    "serve", "status", "traffic", "inject", "webhook"))]  # fmt: skip


def test_every_command_has_a_help_row() -> None:
    """A new subcommand must be added to HELP (and to the tables above where it takes input)."""
    subcommands = next(action for action in cli._parser()._actions if isinstance(action, argparse._SubParsersAction))
    assert set(subcommands.choices) == {argv[0] for argv in HELP if argv}


@pytest.mark.parametrize("argv", HELP, ids=lambda argv: " ".join(argv) or "no command")
def test_help_is_clean(argv: list[str]) -> None:
    result = run_cli(argv or ["--help"])
    assert result.code == 0 and result.leak() is None


# --- serve: the log, every admin RPC, CSDS, metrics, status ---------------------------------------------------------

SERVE_POLICY = f"""
proxies:
  corp: {{url: "http://{UI}{HOST}:3128"}}
  partner: "https://{UI}partner.corp.test:443"
  failover:
    endpoints:
      - {{url: "http://{userinfo(AWKWARD_PASSWORDS["spaces"])}10.0.0.1:3128", priority: 0}}
      - {{url: "http://{userinfo(AWKWARD_PASSWORDS["spaces"])}10.0.0.2:3128", priority: 1}}
  filebasic: {{url: "http://{HOST}:3128", credentialsFile: creds}}
  filebearer: {{url: "https://{HOST}:443", credentialsFile: bearer}}
policies:
  - name: sidecars
    nodes: {{id: "sotw-*"}}
    httpsProxy: corp
    httpProxy: failover
    rules:
      - {{name: partner, domains: [".partner.example"], action: {{proxy: partner}}}}
  - name: standalone
    httpsProxy: filebasic
    httpProxy: filebearer
    standalone:
      listeners:
        - {{name: api, listen: "127.0.0.1:10443", target: "api.example.com:443"}}
      forwardProxy: {{listen: "127.0.0.1:3129"}}
"""
# What Envoy may quote back in a NACK: the configuration it rejects, headers included.
NACK = (
    f'Proto constraint validation failed: header {{ key: "Proxy-Authorization" value: "Basic {basic_token()}" }}; '
    f'value: "{BEARER}"; password "{PASSWORD}"; {USER}:{PASSWORD}@{HOST}; url http://{UI}{HOST}:3128; '
    f'password "{AWKWARD_PASSWORDS["spaces"]}"; header "Basic {basic_token(AWKWARD_PASSWORDS["spaces"])}"'
)
# Reloads that fail, each with the canary where a parser gives up.
FAILING_RELOADS = (
    "password breaking yaml",
    "url cut short",
    "port made of the password, with user",
    "password in an unclosed quote",
    "credentialsFile without a colon",
    "not utf-8",
)
BAD_NODE = f"http://{USER}:{PASSWORD}@{HOST}"
STATUS = {
    "status": ["status"],
    "status json": ["status", "-o", "json"],
    "status node": ["status", "sotw-node"],
    "status node json": ["status", "sotw-node", "-o", "json"],
    "status delta node": ["status", "delta-node"],
    "status delta nack node json": ["status", "delta-nack-node", "-o", "json"],
    "status failing": ["status", "--fail-nack-after", "0"],
    "status unknown url node": ["status", BAD_NODE],
}

Rpc = Callable[[Any], Any]  # an AdminStub or a CSDS stub -> a response awaitable


def _rpcs() -> dict[str, tuple[str, Rpc]]:
    """Every admin RPC in every form: (stub kind, call). A new RPC is one row."""
    from envoy.service.status.v3.csds_pb2 import ClientStatusRequest

    from egress_xds.admin.v1 import admin_pb2 as a

    rows: dict[str, tuple[str, Rpc]] = {
        "ListNodes": ("admin", lambda s: s.ListNodes(a.ListNodesRequest())),
        "ListNodes with resources": ("admin", lambda s: s.ListNodes(a.ListNodesRequest(include_resources=True))),
        "ListNodes by url prefix": ("admin", lambda s: s.ListNodes(a.ListNodesRequest(node_id_prefix=BAD_NODE))),
        "GetPolicy": ("admin", lambda s: s.GetPolicy(a.GetPolicyRequest())),
        "GetReloadErrors": ("admin", lambda s: s.GetReloadErrors(a.GetReloadErrorsRequest())),
        "GetTraffic by url node": ("admin", lambda s: s.GetTraffic(a.GetTrafficRequest(node_id=BAD_NODE))),
        "GetNodeConfig unknown url node": (
            "admin",
            lambda s: s.GetNodeConfig(a.GetNodeConfigRequest(node_id=BAD_NODE)),
        ),
        "CSDS": ("csds", lambda s: s.FetchClientStatus(ClientStatusRequest())),
        "CSDS without contents": (
            "csds",
            lambda s: s.FetchClientStatus(ClientStatusRequest(exclude_resource_contents=True)),
        ),
    }
    for node in ("sotw-node", "delta-node", "delta-nack-node"):
        for view_name, view in a.ConfigView.items():
            request = a.GetNodeConfigRequest(node_id=node, view=view)
            rows[f"GetNodeConfig {node} {view_name}"] = ("admin", lambda s, r=request: s.GetNodeConfig(r))
    return rows


async def _answer(stub: Any, call: Rpc) -> str:
    """The response as text and JSON, or the gRPC error: code, details, debug string and trailing metadata."""
    from google.protobuf import json_format, text_format

    try:
        response = await call(stub)
    except grpc.aio.AioRpcError as error:
        return f"{error.code()} {error.details()} {error.debug_error_string()} {error.trailing_metadata()}"
    raw = response.SerializeToString().decode("utf-8", errors="replace")
    return f"{text_format.MessageToString(response)}\n{json_format.MessageToJson(response)}\n{raw}"


@dataclass
class Outputs:
    """Every output collected, by where it came from."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, where_: str, text: str | bytes) -> None:
        self.texts[where_] = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text

    def add_run(self, where_: str, run: Run) -> None:
        self.add(f"{where_} (exit {run.code}) stdout", run.stdout)
        self.add(f"{where_} (exit {run.code}) stderr", run.stderr)

    def leaks(self) -> list[str]:
        found = []
        for name, text in self.texts.items():
            piece = find_canary(text)
            if piece is not None:
                found.append(f"{name} shows {piece!r}: ...{where(text, piece)}...")
        return found


async def _ads_clients(address: str) -> tuple[grpc.aio.Channel, list[Any]]:
    """A SotW node that NACKs its listeners quoting the canary, and a Delta node that ACKs everything."""
    from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL
    from tests.xds.client import DeltaClient, SotwClient, make_node

    channel = grpc.aio.insecure_channel(address)
    sotw = SotwClient(channel, make_node("sotw-node"))
    await sotw.send(CLUSTER_TYPE_URL, [])
    await sotw.ack(await sotw.recv())
    await sotw.send(LISTENER_TYPE_URL, [])
    await sotw.nack(await sotw.recv(), NACK)
    delta = DeltaClient(channel, make_node("delta-node", {"egress.egress-xds.dev/mode": "standalone"}))
    await delta.send(CLUSTER_TYPE_URL)
    await delta.ack(await delta.recv())
    await delta.send(LISTENER_TYPE_URL)
    await delta.ack(await delta.recv())
    delta_nack = DeltaClient(channel, make_node("delta-nack-node", {"egress.egress-xds.dev/mode": "standalone"}))
    await delta_nack.send(CLUSTER_TYPE_URL)
    await delta_nack.nack(await delta_nack.recv(), NACK)
    return channel, [sotw, delta, delta_nack]


async def _collect_serve(server: Any, outputs: Outputs, policy_dir: Path) -> None:
    from envoy.service.status.v3 import csds_pb2_grpc

    from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

    channel, clients = await _ads_clients(server.address)
    try:
        stubs = {
            "admin": admin_pb2_grpc.AdminStub(channel),
            "csds": csds_pb2_grpc.ClientStatusDiscoveryServiceStub(channel),
        }
        rpcs = _rpcs()
        await asyncio.sleep(0.3)  # the NACK is recorded
        for name, (kind, call) in rpcs.items():
            outputs.add(name, await _answer(stubs[kind], call))
        for name, argv in STATUS.items():
            outputs.add_run(name, run_cli([*argv[:1], "--server", server.address, *argv[1:]]))
        with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=5) as response:
            outputs.add("metrics", response.read())
        for failing in FAILING_RELOADS:
            for name, content in INPUTS[failing].files.items():
                path = policy_dir / name
                path.write_bytes(content if isinstance(content, bytes) else content.encode())
            reload = await _answer(stubs["admin"], lambda s: s.Reload(admin_pb2.ReloadRequest()))
            outputs.add(f"Reload {failing}", reload)
            for name in ("GetReloadErrors", "GetPolicy"):
                outputs.add(f"{name} after {failing}", await _answer(stubs["admin"], rpcs[name][1]))
            outputs.add_run(f"status after {failing}", run_cli(["status", "--server", server.address, "-o", "json"]))
            outputs.add_run(f"status text after {failing}", run_cli(["status", "--server", server.address]))
        server.signal(signal.SIGHUP)  # one more failing reload, by signal
        await asyncio.sleep(0.5)
        with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=5) as response:
            outputs.add("metrics after reloads", response.read())
    finally:
        for client in clients:
            await client.close()
        await channel.close()


@pytest.mark.parametrize("log_format", ["plain", "json"])
async def test_serve_outputs(log_format: str, tmp_path: Path) -> None:
    from tests.integration.serve_command import ServeCommand

    (tmp_path / "policy.yaml").write_text(SERVE_POLICY)
    (tmp_path / "creds").write_text(f"{USER}:{PASSWORD}\n")
    (tmp_path / "bearer").write_text(f"{BEARER}\n")
    extra = ["--log-format", log_format, "--log-level", "debug", "--debounce-ms", "50"]
    server = ServeCommand(["--config", str(tmp_path / "policy.yaml")], tmp_path / "serve.log", extra=extra)
    outputs = Outputs()
    try:
        await _collect_serve(server, outputs, tmp_path)
    finally:
        server.stop()
    log = server.log()
    outputs.add("serve log", log)
    if log_format == "json":
        for line in log.splitlines():
            json.loads(line)  # every line is one JSON object
    if os.environ.get("CANARY_DUMP"):
        Path(os.environ["CANARY_DUMP"]).write_text("\n\n".join(f"=== {k}\n{v}" for k, v in outputs.texts.items()))
    # the scenario ran: the NACK was recorded, every reload failed, the nodes and their configs were seen
    assert "SYNC_STATUS_NACKED" in outputs.texts["ListNodes"], outputs.texts["ListNodes"]
    assert "<redacted>" in outputs.texts["ListNodes"], "the NACK message is shown, scrubbed"
    for failing in FAILING_RELOADS:
        assert "failing: true" in outputs.texts[f"GetReloadErrors after {failing}"], failing
    assert "config_json" in outputs.texts["GetNodeConfig delta-node CONFIG_VIEW_ACKED"]
    assert find_canary(NACK) is not None, "the NACK holds the canary"
    leaks = outputs.leaks()
    assert not leaks, "\n".join(leaks)


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@pytest.mark.parametrize("input_name", ["environment", "environment without a scheme", "environment lower case https"])
async def test_serve_from_the_environment(input_name: str, tmp_path: Path) -> None:
    """`serve --from-env`: the log (JSON, debug), the policy the admin API shows, the metrics page."""
    from tests.integration.serve_command import ServeCommand
    from tests.support.processes import child_env

    env = child_env(INPUTS[input_name].env, drop=PROXY_VARIABLES)
    extra = ["--log-format", "json", "--log-level", "debug"]
    server = ServeCommand(["--from-env"], tmp_path / "serve.log", extra=extra, env=env)
    outputs = Outputs()
    try:
        outputs.add("GetPolicy", str(server.get_policy()))
        outputs.add("GetReloadErrors", str(server.reload_errors()))
        with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=5) as response:
            outputs.add("metrics", response.read())
        outputs.add_run("status json", run_cli(["status", "--server", server.address, "-o", "json"]))
    finally:
        server.stop()
    outputs.add("serve log", server.log())
    assert HOST in outputs.texts["GetPolicy"], "the policy is the environment's"
    leaks = outputs.leaks()
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize(
    "input_name", ["password breaking yaml", "url cut short", "credentialsFile truncated", "environment cut short"]
)
@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_serve_refusing_to_start(input_name: str, log_format: str, tmp_path: Path) -> None:
    """The real process, so that what reaches the terminal before the log is configured is searched too."""
    from tests.support.egress import REPO_ROOT
    from tests.support.processes import child_env, run_bounded

    given = INPUTS[input_name]
    source = given.write(tmp_path)
    argv = [sys.executable, "-m", "egress_xds.cli", "serve", *source, "--listen", "127.0.0.1:0"]
    env = child_env({**given.env, "PYTHONPATH": str(REPO_ROOT)}, drop=PROXY_VARIABLES)
    result = run_bounded([*argv, "--log-format", log_format], timeout=30, env=env)
    assert result.returncode == 1, result.stderr
    run = Run(result.returncode, result.stdout, result.stderr)
    assert run.leak() is None, run.leak()


# --- Kubernetes: status patches and the log of `serve --kubernetes` ----------------------------------------------

# Secrets of every shape the source reads, valid and not, each holding the canary; one EgressProxy names each.
SECRETS: dict[str, dict[str, str]] = {
    "basic": {"username": USER, "password": PASSWORD},
    "basic-newline": {"username": USER, "password": f"{PASSWORD}\n"},
    "header": {"proxyAuthorization": BEARER},
    "awkward": {"username": USER, "password": AWKWARD_PASSWORDS["yaml-special"]},
    "line-break": {"username": USER, "password": f"{PASSWORD}\r\nX-Injected: {MARK}"},
    "colon-in-user": {"username": f"{USER}:{PASSWORD}", "password": PASSWORD},
    "both": {"proxyAuthorization": BEARER, "username": USER, "password": PASSWORD},
    "no-password": {"username": f"{USER}{MARK}"},
    "header-line-break": {"proxyAuthorization": f"{BEARER}\nX: {MARK}"},
}


def test_kubernetes_status_patches_and_log(tmp_path: Path) -> None:
    from tests.integration.serve_command import ServeCommand
    from tests.kubernetes.apiserver import FakeApiServer
    from tests.kubernetes.resources import cluster_egress_proxy, egress_proxy, kubeconfig_text, secret
    from tests.support.processes import wait_until

    token = f"{MARK}-kube-token"  # the API credential is a secret too
    outputs = Outputs()
    with FakeApiServer(token=token) as api:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(kubeconfig_text(api.url, token))
        for name, values in SECRETS.items():
            api.apply(secret(name, "shop", **values))
            api.apply(
                egress_proxy(
                    name,
                    "shop",
                    httpsProxy=f"http://{HOST}:3128",
                    credentialsSecretRef={"name": name},
                    workloadSelector={"matchLabels": {"app": name}},
                )
            )
        # Credential-shaped values where the spec holds no credential: the conversion's errors quote them.
        for name, spec in {
            "url-in-no-proxy": {"noProxy": [f"http://{USER}:{PASSWORD}@x"]},
            "url-as-a-domain": {"rules": [{"name": "r", "domains": [f"{USER}:{PASSWORD}@x"], "action": "direct"}]},
        }.items():
            api.apply(
                egress_proxy(
                    name,
                    "shop",
                    httpsProxy=f"http://{HOST}:3128",
                    workloadSelector={"matchLabels": {"app": name}},
                    **spec,
                )
            )
        api.apply(
            cluster_egress_proxy(
                "cluster-default",
                httpsProxy=f"http://{HOST}:3128",
                credentialsSecretRef={"name": "basic", "namespace": "shop"},
            )
        )
        # A reference to a Secret that does not exist (the API server refuses Secret data that is not base64).
        missing = egress_proxy(
            "missing", "shop", httpsProxy=f"http://{HOST}:3128", credentialsSecretRef={"name": "gone"}
        )
        api.apply(missing)
        # API errors whose messages quote a credential (an admission webhook may echo the object it refuses).
        quoting = f'refused: password "{PASSWORD}", header "{BEARER}", url http://{UI}{HOST}'
        api.inject("list", "/egressproxies", 403, message=quoting)
        api.inject("watch", "/secrets", 500, message=quoting)
        api.inject("patch", "/status", 409, times=2, message=quoting)  # retried; a 422 would not be
        extra = ["--kubernetes", "--kubeconfig", str(kubeconfig), "--log-format", "json", "--log-level", "debug"]
        server = ServeCommand([], tmp_path / "serve.log", extra=extra)
        try:
            names = [*SECRETS, "missing", "url-in-no-proxy", "url-as-a-domain"]

            def every_status_written() -> bool:
                return all((api.get("egressproxies", name, "shop") or {}).get("status") for name in names)

            wait_until(every_status_written, timeout=20, what="a status on every EgressProxy")
            # Rotation to another canary form, then the Secret goes away: the resources that use it are refused.
            api.apply(secret("basic", "shop", username=USER, password=AWKWARD_PASSWORDS["quotes"]))
            api.delete("secrets", "basic", "shop")
            wait_until(
                lambda: "False" in json.dumps(api.get("egressproxies", "basic", "shop")),
                timeout=20,
                what="the resource whose Secret is gone to be refused",
            )
            with urllib.request.urlopen(f"http://{server.metrics_address}/metrics", timeout=5) as response:
                outputs.add("metrics", response.read())
            outputs.add("GetPolicy", str(server.get_policy()))
            outputs.add_run("status json", run_cli(["status", "--server", server.address, "-o", "json"]))
        finally:
            server.stop()
        for request in api.requests:
            if request.method != "GET":
                outputs.add(f"{request.method} {request.path}", json.dumps(request.body))
        for name in names:
            outputs.add(f"stored status of {name}", json.dumps(api.get("egressproxies", name, "shop")["status"]))
    outputs.add("serve log", server.log())
    verdicts = {
        key: json.loads(text)["conditions"][0]["status"]
        for key, text in outputs.texts.items()
        if key.startswith("stored status")
    }
    refused = sorted(key.removeprefix("stored status of ") for key, verdict in verdicts.items() if verdict == "False")
    assert refused == sorted(
        [
            "basic",  # its Secret is gone
            "line-break",
            "colon-in-user",
            "both",
            "no-password",
            "header-line-break",
            "missing",
            "url-in-no-proxy",
            "url-as-a-domain",
        ]
    )
    assert any(key.startswith("PATCH") for key in outputs.texts), "the source wrote status patches"
    leaks = outputs.leaks()
    assert not leaks, "\n".join(leaks)


@pytest.mark.parametrize("value_name", sorted(VALUES))
def test_an_internal_error_traceback_is_clean(value_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug whose exception quotes an argument: the one-line report and the --debug traceback."""

    def broken(args: argparse.Namespace) -> int:
        raise KeyError(f"a bug holding {args.config!r}")

    monkeypatch.setattr(cli, "_check", broken)
    for debug in ([], ["--debug"]):
        result = run_cli([*debug, "check", "--config", VALUES[value_name]])
        assert result.code == cli.EXIT_INTERNAL_ERROR, result.stderr
        assert ("Traceback" in result.stderr) == bool(debug)
        assert result.leak() is None, result.leak()


@pytest.mark.fuzz
@given(
    case_name=st.sampled_from(sorted(ARGUMENTS)),
    shape=st.sampled_from(["http://{u}:{p}@h.example:1", "{u}:{p}@h.example:1", "http://{u}:{p}", "x://{u}:{p}@h"]),
    tail=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
)
def test_any_password_in_any_argument(case_name: str, shape: str, tail: str) -> None:
    """Any printable password (after the mark) in any argument of the table: never echoed, never a crash."""
    good = Path(tempfile.gettempdir()) / "egress-xds-canary-good.yaml"
    good.write_text(GOOD)
    value = shape.format(u=USER, p=MARK + tail)
    result = run_cli(_arguments(ARGUMENTS[case_name], value, good))
    assert result.code != cli.EXIT_INTERNAL_ERROR, result.stderr
    if not (ARGUMENTS[case_name].data and result.code == 0):
        assert result.leak() is None, result.leak()


@pytest.mark.fuzz
@given(
    shape=st.sampled_from(
        [
            "http://{u}:{p}@h.example:3128",
            "{u}:{p}@h.example:3128",
            "http://{u}:{p}",
            "http://h.example:{p}",
            "https://{u}:{p}@[fd00::1]:443",
        ]
    ),
    tail=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=10),
    form=st.sampled_from(["raw", "json", "env", "credentials file"]),
    command=st.sampled_from(sorted(COMMANDS)),
)
def test_any_password_in_a_policy(shape: str, tail: str, form: str, command: str) -> None:
    """Any printable password (after the mark) in a proxy URL: raw in YAML (which it may break), JSON-quoted, in
    the environment, or in a credentialsFile; through every command. Never echoed, never a crash."""
    directory = Path(tempfile.mkdtemp(prefix="egress-xds-canary-"))
    try:
        password = MARK + tail
        url = shape.format(u=USER, p=password)
        given = {
            "raw": Input({"policy.yaml": f"httpsProxy: {url}\n"}),
            "json": Input({"policy.yaml": f"httpsProxy: {json.dumps(url)}\n"}),
            "env": Input(env={"HTTPS_PROXY": url}),
            "credentials file": Input({"policy.yaml": FILE_CREDENTIALS, "creds": f"{USER}:{password}\n"}),
        }[form]
        source = given.write(directory)
        result = run_cli(_with_source(COMMANDS[command], source), given.env)
        assert result.code in (0, 1), result.stderr
        assert result.leak() is None, result.leak()
    finally:
        shutil.rmtree(directory, ignore_errors=True)

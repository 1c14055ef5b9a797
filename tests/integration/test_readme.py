"""The README is executed, so that it cannot drift from the code.

Marking convention: an HTML comment on its own line right before a fenced block (GitHub renders neither),

    <!-- readme-test: quick-start -->   the Quick start. Its demo step is run by test_demo.py (exactly as written,
                                         venv not activated); here: its test command is what `.ci/run` runs (after
                                         the linters), and the install script makes the `.venv` the commands use.
    <!-- readme-test: transcript -->    `$ COMMAND` lines, each followed by the output shown for it. COMMAND must
                                         be `egress-xds ...` (or `.venv/bin/egress-xds ...`); it runs from the
                                         repository root with this checkout's code, and its output must be exactly
                                         what the README shows.
    <!-- readme-test: grpcurl -->       a shell block of grpcurl commands. Each runs against a real `egress-xds
                                         serve` on loopback (the README's 127.0.0.1:18000 is replaced by its
                                         address) with a real Envoy connected as node `pod-a1`; each must succeed.

An unmarked block is documentation only (it needs a cluster, the Internet, or a long-running process). Every run
is bounded in time and talks to loopback only.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.admin.serving import Serve
from tests.support.egress import CLI_TIMEOUT, REPO_ROOT, bootstrap, write_policy
from tests.support.envoy import start_envoy
from tests.support.processes import run_bounded, wait_until
from tests.support.readme import Block, marked_blocks, quick_start
from tests.support.requirements import PIP_INSTALL, need_binary

pytestmark = pytest.mark.integration

README_SERVER = "127.0.0.1:18000"
NODE = "pod-a1"  # the node the README's grpcurl examples ask about
EGRESS_XDS = {"egress-xds", ".venv/bin/egress-xds"}


def block_id(block: Block) -> str:
    return f"README.md:{block.line}"


def test_every_mark_is_a_known_kind() -> None:
    kinds = [block.kind for block in marked_blocks()]
    assert set(kinds) <= {"quick-start", "transcript", "grpcurl"}, kinds
    assert kinds.count("quick-start") == 1 and "transcript" in kinds and "grpcurl" in kinds


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` = install, lint, then exactly the Quick start's test command (whose first step is the install)."""
    _, tests = quick_start()
    ci = [line.split() for line in (REPO_ROOT / ".ci" / "run").read_text().splitlines()]
    ci = [words for words in ci if words and not words[0].startswith("#") and words[0] not in {"set", "cd"}]
    linters = [
        [".venv/bin/python", "-m", "ruff", "check", "."],
        [".venv/bin/python", "-m", "ruff", "format", "--check", "."],
        [".venv/bin/python", "-m", "mypy"],
    ]
    assert ci == [tests[0], *linters, *tests[1:]], ci


def test_the_quick_start_uses_the_venv_the_install_script_makes() -> None:
    install_and_demo, tests = quick_start()
    assert install_and_demo[0] == ["python3", "-m", "venv", ".venv"]
    assert all(step[0].startswith(".venv/bin/") for step in install_and_demo[1:] + tests[1:])
    script = (REPO_ROOT / "scripts" / "install-test-deps.sh").read_text()
    assert 'VENV="${VENV:-.venv}"' in script and '"$PYTHON" -m venv "$VENV"' in script
    assert """"$VENV/bin/python" -m pip install""" in script


def run_cli(argv: list[str]) -> subprocess.CompletedProcess[str]:
    assert argv[0] in EGRESS_XDS, f"a transcript may only run egress-xds, not {argv[0]}"
    return subprocess.run(
        [sys.executable, "-m", "egress_xds.cli", *argv[1:]],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


@pytest.mark.parametrize("block", marked_blocks("transcript"), ids=block_id)
def test_transcript_shows_the_real_output(block: Block) -> None:
    for argv, shown in block.transcript():
        result = run_cli(argv)
        assert result.returncode == 0, (
            f"{block_id(block)}: {' '.join(argv)} exited {result.returncode}\n{result.stderr}"
        )
        assert result.stdout == shown, f"{block_id(block)}: {' '.join(argv)} prints something else"


POLICY = """
httpsProxy: http://127.0.0.1:9
rules:
  - {name: nothing direct, domains: [direct.example], action: direct}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serve]:
    """`egress-xds serve` on loopback, with a real Envoy connected as node pod-a1 (standalone: no listeners)."""
    directory = tmp_path_factory.mktemp("readme")
    serve = Serve(write_policy(directory, POLICY), directory / "serve.log").start()
    try:
        config = bootstrap(NODE, serve.address, delta=True, mode="standalone")
        del config["admin"]  # start_envoy adds one on a free port
        with start_envoy(config, admin_port=0, ready_timeout=None) as envoy:
            wait_until(
                lambda: envoy.ready() and envoy.stats().get("cluster_manager.cds.update_success", 0) > 0,
                timeout=20,
                what="Envoy to take its clusters from the server",
                describe=lambda: envoy.describe() + serve.describe(),
            )
            yield serve
    finally:
        serve.stop()


@pytest.mark.parametrize("block", marked_blocks("grpcurl"), ids=block_id)
def test_grpcurl_examples_work_against_a_running_server(block: Block, server: Serve) -> None:
    grpcurl = need_binary("grpcurl", PIP_INSTALL)
    commands = block.commands()
    assert commands, f"{block_id(block)}: no commands"
    for argv in commands:
        assert argv[0] == "grpcurl" and README_SERVER in argv, f"{block_id(block)}: {argv}"
        real = [str(grpcurl), *(server.address if word == README_SERVER else word for word in argv[1:])]
        result = run_bounded(real, timeout=20)
        shown = " ".join(argv)
        assert result.returncode == 0, f"{shown}: exit {result.returncode}\n{result.stderr}\n{server.describe()}"
        if NODE in shown:
            assert NODE in result.stdout, f"{shown}: the answer does not mention {NODE}:\n{result.stdout}"


def test_readme_marks_are_found_in_a_sample(tmp_path: Path) -> None:
    """The parser itself: continuation lines, comments, transcripts (a README edit must not hide a block)."""
    sample = tmp_path / "README.md"
    sample.write_text(
        "<!-- readme-test: grpcurl -->\n```sh\n"
        "grpcurl -plaintext -d '{\"a\": 1}' \\\n    127.0.0.1:18000 X/Y   # c\n```\n"
        "<!-- readme-test: transcript -->\n```\n$ egress-xds check --config f\nf: OK\n```\n"
    )
    grpc, transcript = marked_blocks(readme=sample)
    assert grpc.commands() == [["grpcurl", "-plaintext", "-d", '{"a": 1}', "127.0.0.1:18000", "X/Y"]]
    assert transcript.transcript() == [(["egress-xds", "check", "--config", "f"], "f: OK\n")]

"""The real `egress-xds serve` process under what users and operators do to it: SIGHUP, bad edits of every kind,
the policy's directory replaced, a large policy parsed while Envoys are served, and credentials in a file that
fails to load. Observed through its admin API (GetPolicy, GetReloadErrors, Reload), health, metrics and log."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from egress_xds.policy.yaml_tree import MAX_DOCUMENT_BYTES, MAX_VALUES
from tests.integration.serve_command import ServeCommand
from tests.support.egress import replace_file, write_policy
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration

WAIT = 15.0
INVALID = ("egress_xds_reloads_total", 'result="invalid"')


def policy_text(port: int) -> str:
    return f"httpsProxy: http://10.0.0.1:{port}\n"


def url(port: int) -> str:
    return f"http://10.0.0.1:{port}"


def wait_for_urls(serve: ServeCommand, port: int, what: str) -> None:
    wait_until(lambda: serve.proxy_urls() == [url(port)], timeout=WAIT, what=what, describe=serve.describe)


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[ServeCommand, Path]]:
    policy = write_policy(tmp_path / "etc", policy_text(3128))
    serve = ServeCommand(["--config", str(policy)], tmp_path / "serve.log", extra=["--debounce-ms", "50"])
    try:
        yield serve, policy
    finally:
        serve.stop()


def test_sighup_reloads_an_edit_the_watcher_cannot_see(tmp_path: Path) -> None:
    # The policy is a symlink into another directory: an in-place edit of the target makes no event where the
    # watch is, so only SIGHUP can bring it in (as with a file managed by a tool that does not rename).
    target = write_policy(tmp_path / "real", policy_text(3128))
    (tmp_path / "etc").mkdir()
    link = tmp_path / "etc" / "policy.yaml"
    link.symlink_to(target)
    serve = ServeCommand(["--config", str(link)], tmp_path / "serve.log", extra=["--debounce-ms", "50"])
    try:
        assert serve.proxy_urls() == [url(3128)]
        target.write_text(policy_text(3129))
        time.sleep(0.5)
        assert serve.proxy_urls() == [url(3128)], "the watcher saw the edit: this test would prove nothing"

        serve.signal(signal.SIGHUP)
        wait_for_urls(serve, 3129, "the SIGHUP reload")
        last = serve.reload_errors().last_attempt
        assert last.trigger == "signal" and last.ok, last
        assert "received SIGHUP" in serve.log() and "reloaded 1 policies" in serve.log()

        target.write_text("httpsProxy: http://10.0.0.1:99999\n")
        serve.signal(signal.SIGHUP)
        wait_until(lambda: serve.reload_errors().failing, timeout=WAIT, what="the rejection", describe=serve.describe)
        assert serve.metric(*INVALID) == 1.0 and serve.running()
        assert serve.proxy_urls() == [url(3129)], "the last good policy keeps serving"
        assert f"{link}:1: httpsProxy: " in serve.log()
    finally:
        serve.stop()


def test_sighup_with_from_env_rereads_the_environment_and_keeps_serving(tmp_path: Path) -> None:
    env = {**os.environ, "HTTPS_PROXY": url(3128), "NO_PROXY": "<local>,.internal,10.*"}
    for name in ("HTTP_PROXY", "http_proxy", "https_proxy", "no_proxy"):
        env.pop(name, None)
    serve = ServeCommand(["--from-env"], tmp_path / "serve.log", env=env)
    try:
        (policy,) = serve.get_policy().policies
        assert list(policy.no_proxy) == [".internal"], "the valid NO_PROXY entries apply"
        # (the other warning at start is the plaintext SECURITY notice, once: tests/integration/test_serve_tls.py)
        warnings = [line for line in serve.log().splitlines() if "WARNING" in line and "SECURITY:" not in line]
        assert len(warnings) == 2 and "'<local>'" in warnings[0] and "'10.*'" in warnings[1], serve.log()

        serve.signal(signal.SIGHUP)
        wait_until(
            lambda: serve.reload_errors().last_attempt.trigger == "signal",
            timeout=WAIT,
            what="the SIGHUP reload",
            describe=serve.describe,
        )
        assert serve.reload_errors().last_attempt.ok and serve.running()
        time.sleep(0.3)
        assert serve.log().count("'<local>'") == 2, "each warning once per read: at startup and at the reload"
    finally:
        serve.stop()


BAD_EDITS = {
    "unknown tag": "httpsProxy: !foo http://10.0.0.1:3128\n",
    "bad !!int": "httpsProxy: !!int abc\n",
    "deep nesting": "httpsProxy: " + "[" * 3000 + "]" * 3000 + "\n",
    "alias bomb": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]\n" for i in range(7)),
}


def test_no_bad_edit_stops_later_reloads(watched: tuple[ServeCommand, Path]) -> None:
    serve, policy = watched
    for number, (name, text) in enumerate(BAD_EDITS.items(), start=1):
        replace_file(policy, text)
        wait_until(
            lambda rejected=number: serve.metric(*INVALID) == rejected,  # type: ignore[misc]
            timeout=WAIT,
            what=f"the rejection of the {name} edit",
            describe=serve.describe,
        )
        assert serve.log().count("reload rejected") == number, serve.describe()
        assert serve.reload_errors().failing
    replace_file(policy, policy_text(3130))
    wait_for_urls(serve, 3130, "the valid edit after the bad ones")
    assert serve.reload_errors().last_attempt.ok and not serve.reload_errors().failing


def test_the_policy_directory_replaced_is_watched_again(watched: tuple[ServeCommand, Path]) -> None:
    serve, policy = watched
    shutil.rmtree(policy.parent)
    time.sleep(0.3)
    write_policy(policy.parent, policy_text(3140))
    wait_for_urls(serve, 3140, "the policy in the recreated directory")
    assert "removed or replaced" in serve.log() or "watching again" in serve.log()
    replace_file(policy, policy_text(3141))
    wait_for_urls(serve, 3141, "a later edit")


@pytest.mark.parametrize("valid", [False, True], ids=["rejected", "translated"])
def test_a_large_policy_is_parsed_while_health_and_admin_answer(
    watched: tuple[ServeCommand, Path], valid: bool
) -> None:
    serve, policy = watched
    # Just under the size and value limits: tens of thousands of NO_PROXY names. With one invalid key after them it
    # is all parsed and then rejected (the last good policy stays); valid, it is parsed and translated too, both
    # in worker threads while the loop keeps answering.
    names: list[str] = []
    size = 0
    while size < MAX_DOCUMENT_BYTES - 200 and len(names) < MAX_VALUES - 100:
        names.append(f"  - h{len(names):05d}.io\n")
        size += len(names[-1])
    big = "httpsProxy: http://10.0.0.1:3128\nnoProxy:\n" + "".join(names) + ("" if valid else "bogus: 1\n")
    assert len(big.encode()) <= MAX_DOCUMENT_BYTES
    done = "reloaded" if valid else "reload rejected"
    with grpc.insecure_channel(serve.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        health.Check(health_pb2.HealthCheckRequest(), timeout=5)
        replace_file(policy, big)
        started = time.monotonic()
        latencies = []
        while done not in serve.log() and time.monotonic() < started + WAIT:
            sent = time.perf_counter()
            health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            latencies.append(time.perf_counter() - sent)
            time.sleep(0.01)
        parsed = time.monotonic() - started
    figures = f"{len(names)} entries read in ~{parsed:.2f}s, health checks meanwhile: {latencies}"
    assert len(latencies) >= 3, f"the reload was too quick to observe anything: {figures}"
    assert max(latencies) < 0.5, f"a health check waited {max(latencies):.2f}s behind the reload: {figures}"
    if valid:
        assert done in serve.log(), serve.describe()
        assert serve.proxy_urls() == ["http://10.0.0.1:3128"]
    else:
        assert "bogus: unknown key" in serve.log(), serve.describe()
        assert serve.metric(*INVALID) == 1
        assert serve.proxy_urls() == [url(3128)]


def test_credentials_in_a_file_that_fails_to_load_appear_nowhere(watched: tuple[ServeCommand, Path]) -> None:
    serve, policy = watched
    password = "S3cretPw-canary-8e1f"
    secrets = (password, base64.b64encode(f"alice:{password}".encode()).decode(), f"alice:{password}")
    replace_file(policy, f"httpsProxy: alice:{password}@proxy.example:3128\nrawTcp: maybe\n")
    wait_until(lambda: serve.reload_errors().failing, timeout=WAIT, what="the rejection", describe=serve.describe)
    answers = {"Reload": str(serve.reload()), "GetReloadErrors": str(serve.reload_errors())}
    assert "httpsProxy" in answers["Reload"] and "rawTcp" in answers["GetReloadErrors"]
    answers["serve log"] = serve.log()
    for where, text in answers.items():
        leaked = [secret for secret in secrets if secret in text]
        assert not leaked, f"{where} shows {leaked}:\n{text}"

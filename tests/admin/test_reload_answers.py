"""The admin API's `Reload` and `GetReloadErrors` over a real gRPC channel: answers never carry a credential,
a reload parses off the event loop (other RPCs are answered meanwhile), and whatever reading raises is a rejected
reload, not a failed RPC."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from egress_xds.admin.v1 import admin_pb2
from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import PolicySet
from egress_xds.sources.file import load_policy_file
from egress_xds.sources.reloader import ADMIN, PolicyReloader
from tests.admin.conftest import Debug

SERVED_PASSWORD = "Served-S3cret-canary"
UNSERVED_PASSWORD = "Unserved-S3cretPw"
SECRETS = (
    SERVED_PASSWORD,
    UNSERVED_PASSWORD,
    base64.b64encode(f"alice:{SERVED_PASSWORD}".encode()).decode(),
    base64.b64encode(f"alice:{UNSERVED_PASSWORD}".encode()).decode(),
)
PARSE_SECONDS = 1.0
PROMPT_SECONDS = 0.5


@pytest.fixture
def served(tmp_path: Path) -> PolicySet:
    """A policy with a password, as being served."""
    path = tmp_path / "served.yaml"
    path.write_text(f"httpsProxy: http://alice:{SERVED_PASSWORD}@10.0.0.1:3128\n")
    return load_policy_file(path)


def failing_read() -> PolicySet:
    """A reading error that quotes the file: a password the server served (in a field no URL pattern finds), and
    one it never served, in a URL without a scheme."""
    raise ConfigError(
        [
            ConfigIssue("policy.yaml", 3, "rules[0].name", f"name {SERVED_PASSWORD!r} is used twice"),
            ConfigIssue("policy.yaml", 4, "httpsProxy", f"'alice:{UNSERVED_PASSWORD}@proxy:3128' is neither a URL"),
        ]
    )


def reloader_for(debug: Debug, policies: list[PolicySet], read: object) -> PolicyReloader:
    def publish(new: PolicySet) -> None:
        policies[0] = new

    reloader = PolicyReloader(read, publish, lambda error: None, source="policy.yaml")  # type: ignore[arg-type]
    debug.state.reloader = reloader
    return reloader


async def test_reload_answers_carry_no_credential(debug: Debug, policies: list[PolicySet], served: PolicySet) -> None:
    policies[0] = served
    reloader_for(debug, policies, failing_read)
    admin = debug.admin()
    reload = await admin.Reload(admin_pb2.ReloadRequest())
    errors = await admin.GetReloadErrors(admin_pb2.GetReloadErrorsRequest())
    assert not reload.attempt.ok and errors.failing
    assert [issue.field for issue in errors.last_failure.errors] == ["rules[0].name", "httpsProxy"]
    for where, answer in (("Reload", reload), ("GetReloadErrors", errors)):
        text = str(answer)
        assert "<redacted>" in text, text
        leaked = [secret for secret in SECRETS if secret in text]
        assert not leaked, f"{where} shows {leaked}:\n{text}"


async def test_reload_parses_off_the_event_loop(debug: Debug, policies: list[PolicySet], served: PolicySet) -> None:
    def slow_read() -> PolicySet:
        time.sleep(PARSE_SECONDS)  # a large policy takes this long to parse (CPU, in the worker thread)
        return served

    reloader_for(debug, policies, slow_read)
    health = health_pb2_grpc.HealthStub(debug.channel)
    await health.Check(health_pb2.HealthCheckRequest())  # the channel is up
    reload = asyncio.ensure_future(debug.admin().Reload(admin_pb2.ReloadRequest()))
    await asyncio.sleep(0.1)  # the reload has started
    started = time.perf_counter()
    answer = await asyncio.wait_for(health.Check(health_pb2.HealthCheckRequest()), timeout=5)
    waited = time.perf_counter() - started
    assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert not reload.done(), "the slow reload was still parsing"
    assert waited < PROMPT_SECONDS, f"a health check waited {waited:.2f}s behind a parse"
    assert (await reload).attempt.ok and policies[0] is served


async def test_an_unexpected_exception_is_a_rejected_reload(debug: Debug, policies: list[PolicySet]) -> None:
    def broken_read() -> PolicySet:
        raise RecursionError("maximum recursion depth exceeded while parsing")

    reloader = reloader_for(debug, policies, broken_read)
    answer = await debug.admin().Reload(admin_pb2.ReloadRequest())
    (issue,) = answer.attempt.errors
    assert not answer.attempt.ok and answer.attempt.trigger == ADMIN
    assert issue.source == "policy.yaml" and "internal error" in issue.message and "RecursionError" in issue.message
    assert reloader.last_failure is not None and reloader.last is reloader.last_failure

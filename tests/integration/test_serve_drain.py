"""`egress-xds serve --drain-window` as a rollout stops it: SIGTERM turns health NOT_SERVING, then the streams of
real gRPC clients (one connection each, as Envoys have) end with UNAVAILABLE spread over the window, not at once,
and the process exits 0. A bad duration is a usage error that names the flag."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.integration.serve_command import ServeCommand
from tests.support.egress import REPO_ROOT, write_policy
from tests.support.processes import child_env, run_bounded
from tests.xds.fleet import Fleet, most_within, own_connection, spread_evenly

pytestmark = pytest.mark.integration

WINDOW_SECONDS = 1.5
STREAMS = 20
ENV = {"PYTHONPATH": str(REPO_ROOT)}


async def _drain(serve: ServeCommand) -> tuple[float, list[float], list[grpc.StatusCode]]:
    """SIGTERM; when health said NOT_SERVING and when each stream ended, both relative to the signal."""
    loop = asyncio.get_running_loop()
    fleet = Fleet(serve.address, STREAMS)
    async with own_connection(serve.address) as probe:
        try:
            await fleet.connect()
            watch = health_pb2_grpc.HealthStub(probe).Watch(health_pb2.HealthCheckRequest(service=""))
            assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
            signalled = loop.time()
            serve.signal(signal.SIGTERM)
            assert (await asyncio.wait_for(watch.read(), 5)).status == health_pb2.HealthCheckResponse.NOT_SERVING
            unhealthy = loop.time() - signalled
            ended = await fleet.all_ended(timeout=WINDOW_SECONDS + 10)
            return unhealthy, [time - signalled for time in ended], await fleet.codes()
        finally:
            await fleet.close()


def test_sigterm_turns_unhealthy_then_spreads_the_stream_closes_over_the_drain_window(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "httpsProxy: http://10.0.0.1:3128\n")
    serve = ServeCommand(["--config", str(policy)], tmp_path / "serve.log", extra=["--drain-window", "1500ms"])
    try:
        unhealthy, offsets, codes = asyncio.run(_drain(serve))
        assert serve.proc.wait(timeout=15) == 0, serve.describe()
    finally:
        serve.stop()
    context = f"health NOT_SERVING at {unhealthy:.3f}s, streams ended at {offsets}\n{serve.describe()}"
    assert unhealthy <= offsets[0], context
    assert codes == [grpc.StatusCode.UNAVAILABLE] * STREAMS, context
    assert offsets[-1] - offsets[0] >= 0.7 * WINDOW_SECONDS and offsets[-1] <= WINDOW_SECONDS + 1.0, context
    assert most_within(offsets, 0.1) <= 5 and spread_evenly(offsets, WINDOW_SECONDS, slack=3), context
    log = serve.log()
    assert "received SIGTERM" in log and f"closing {STREAMS} stream(s) over 1.5s" in log, context
    assert "Traceback" not in log


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--drain-window", "5", "'5' is not a duration: expected a number with a unit, like 500ms, 30s, 10h or 1h30m"),
        ("--drain-window", "2h", "'2h': at most 1h"),
        ("--max-connection-age", "ten hours", "'ten hours' is not a duration"),
        ("--max-connection-age", "-1h", "'-1h' is not a duration"),
        ("--max-connection-age", "600h", "'600h': at most 596h"),
    ],
)
def test_a_bad_duration_is_a_usage_error_naming_the_flag(tmp_path: Path, flag: str, value: str, message: str) -> None:
    policy = write_policy(tmp_path, "httpsProxy: http://10.0.0.1:3128\n")
    argv = [sys.executable, "-m", "egress_xds.cli", "serve", "--config", str(policy), f"{flag}={value}"]
    result: subprocess.CompletedProcess[str] = run_bounded(argv, timeout=30, env=child_env(ENV))
    assert result.returncode == 2, result.stderr
    assert f"argument {flag}: {message}" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""

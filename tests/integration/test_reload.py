"""Hot reload of `egress-xds serve --config`: changes reach a connected stream, bursts are coalesced, and an
invalid file is reported (file, line, field) and counted while the last good policy keeps being served.

The server is the real command on loopback; the client is a raw ADS stream (xds-protos stubs).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from egress_xds.type_urls import CLUSTER_TYPE_URL
from tests.integration.serve_command import ServeCommand
from tests.support.egress import replace_file, write_policy
from tests.support.processes import wait_until
from tests.xds.client import SotwClient, make_node, sotw_names

pytestmark = pytest.mark.integration

DEBOUNCE_MS = 300


def policy_text(proxy_port: int) -> str:
    return f"proxies:\n  corp: http://10.0.0.1:{proxy_port}\nhttpsProxy: corp\n"


@pytest.fixture()
def server(tmp_path: Path) -> Iterator[ServeCommand]:
    policy = write_policy(tmp_path, policy_text(3128))
    running = ServeCommand(["--config", str(policy)], tmp_path / "serve.log", extra=["--debounce-ms", str(DEBOUNCE_MS)])
    try:
        yield running
    finally:
        running.stop()


async def proxy_port_seen(client: SotwClient, expect_change: bool = True) -> int:
    """Receive the next CDS response, ACK it, and return the corp proxy cluster's port."""
    response = await client.recv(timeout=10)
    await client.ack(response)
    assert "egress-proxy-corp-connect" in sotw_names(response)
    from tests.xds.client import decode

    for packed in response.resources:
        cluster = decode(CLUSTER_TYPE_URL, packed)
        if cluster.name == "egress-proxy-corp-connect":
            endpoint = cluster.load_assignment.endpoints[0].lb_endpoints[0].endpoint
            return int(endpoint.address.socket_address.port_value)
    raise AssertionError("no corp cluster")


async def test_reload_reaches_streams_coalesces_bursts_and_survives_invalid_files(server: ServeCommand) -> None:
    policy = Path(server.log_path.parent / "policy.yaml")
    async with grpc.aio.insecure_channel(server.address) as channel:
        client = SotwClient(channel, make_node("reload-test"))
        await client.send(CLUSTER_TYPE_URL, [])
        assert await proxy_port_seen(client) == 3128

        reloads_before = server.log().count("reloaded 1 policies")
        for port in (3129, 3130, 3131, 3132, 3133):  # a burst, well inside one debounce window
            replace_file(policy, policy_text(port))
        assert await proxy_port_seen(client) == 3133
        await asyncio.sleep(DEBOUNCE_MS / 1000 * 2)
        assert server.log().count("reloaded 1 policies") == reloads_before + 1, server.log()

        replace_file(policy, "proxies:\n  corp: http://10.0.0.1:99999\nhttpsProxy: corp\nbogus: 1\n")
        wait_until(lambda: "reload rejected" in server.log(), timeout=10, what="the rejection", describe=server.log)
        time.sleep(0.2)
        log = server.log()
        assert f"{policy}:2: proxies.corp.url: port 99999 out of range" in log
        assert "neither a URL" not in log, "an invalid proxy is reported once, not again where it is used"
        assert f"{policy}:4: bogus: unknown key" in log
        assert server.metric("egress_xds_reloads_total", 'result="invalid"') == 1.0
        assert server.metric("egress_xds_reloads_total", 'result="ok"') == 2.0
        await client.expect_silence(0.5)  # nothing pushed: the last good policy stays

        replace_file(policy, policy_text(3200))
        assert await proxy_port_seen(client) == 3200
        await client.close()

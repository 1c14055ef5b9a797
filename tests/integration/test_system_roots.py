"""An https:// proxy without caFile is verified with the system trust store of Envoy's machine.

The proxy is a real squid on its https_port with a certificate of the lab CA. That CA is never passed as caFile:
it is the whole system trust store of the pod namespace (``tests.support.tls.netns_system_trust_store``: the
bundle at /etc/ssl/certs/ca-certificates.crt, seen only by programs started there afterwards). Envoy gets its
configuration both ways a user would give it: `render --static`, and `serve` over ADS. A control without the lab
CA in the store shows that the handshake really depends on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.egress import ServeProcess, bootstrap, render_static, write_policy
from tests.support.envoy import start_envoy
from tests.support.netns import PROXY_NAME, Lab
from tests.support.proxies import Squid, start_squid
from tests.support.tls import netns_system_trust_store
from tests.support.upstreams import PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
HTTPS_PORT = 3480
XDS_ADDRESS = "127.0.0.1:18480"
POLICY = f"""
proxies:
  corp: https://{PROXY_NAME}:{HTTPS_PORT}
httpsProxy: corp
standalone:
  listeners:
    - {{name: api, listen: 127.0.0.1:10443, target: api.example.test:443}}
"""
REQUEST = ["--resolve", "api.example.test:10443:127.0.0.1", "https://api.example.test:10443/system-roots"]


@pytest.fixture(scope="module")
def https_squid(lab: Lab) -> Iterator[Squid]:
    cert = lab.issue_cert(PROXY_NAME, name="squid-system-roots")
    with start_squid(lab, port=3181, https_port=HTTPS_PORT, tls_cert=cert.cert, tls_key=cert.key) as squid:
        yield squid


@pytest.mark.parametrize("delivery", ["static", "ads"])
def test_https_proxy_is_verified_with_the_system_trust_store(
    lab: Lab, upstreams: Upstreams, https_squid: Squid, tmp_path: Path, delivery: str
) -> None:
    policy = write_policy(tmp_path, POLICY)
    assert "caFile" not in policy.read_text()
    server = ServeProcess(lab, "pod", policy, tmp_path / "serve.log", XDS_ADDRESS)
    with netns_system_trust_store(lab.pod, lab.ca_pem):
        if delivery == "static":
            config = render_static(policy, mode="standalone")
        else:
            server.start()
            config = bootstrap("system-roots", XDS_ADDRESS, delta=False, mode="standalone")
        try:
            with start_envoy(config, netns=lab.pod, uid=ENVOY_UID) as envoy:
                since = len(https_squid.access_log())
                result = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), *REQUEST])
                context = f"{envoy.describe()}\n{https_squid.describe()}\n{server.describe()}"
                assert result.ok, f"{result}\n{context}"
                assert f"peer={PEER_VIA_PROXY} path=/system-roots" in result.stdout
                https_squid.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443", since=since)
                assert envoy.wait_for_stat("cluster.egress-proxy-corp-connect.ssl.handshake") >= 1
                if delivery == "ads":
                    dump = envoy.config_dump()
                    names = [
                        cluster["cluster"]["name"]
                        for config in dump["configs"]
                        for cluster in config.get("dynamic_active_clusters", [])
                    ]
                    assert "egress-proxy-corp-connect" in names, dump
        finally:
            server.stop()


def test_without_the_proxy_ca_in_the_system_store_the_handshake_fails(
    lab: Lab, upstreams: Upstreams, https_squid: Squid, tmp_path: Path
) -> None:
    """Control: a store without the lab CA (the host's real one) makes Envoy refuse squid's certificate."""
    config = render_static(write_policy(tmp_path, POLICY), mode="standalone")
    with start_envoy(config, netns=lab.pod, uid=ENVOY_UID) as envoy:
        since = len(https_squid.access_log())
        result = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), *REQUEST], timeout=5)
        assert not result.ok, result
        assert envoy.wait_for_stat("cluster.egress-proxy-corp-connect.ssl.fail_verify_error") >= 1
        assert not [line for line in https_squid.access_log()[since:] if "CONNECT api.example.test" in line]

"""Proxy authentication, TLS to the proxy, failover, and the standalone listeners, with real squid and Envoy.

These use a standalone node (explicit listeners inside the pod namespace, no capture): the behaviour under test
is between Envoy and the proxy, and names still resolve only inside the lab.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.egress import render_static, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, PROXY_NAME, Lab
from tests.support.proxies import ForwardProxy, start_squid, start_tinyproxy
from tests.support.upstreams import PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
USER, PASSWORD = "egress-user", "S3cret-Pa55"


def standalone_envoy(lab: Lab, directory: Path, policy: str) -> EnvoyProcess:
    bootstrap = render_static(write_policy(directory, policy), mode="standalone")
    return start_envoy(bootstrap, netns=lab.pod, uid=ENVOY_UID)


def context(*parts: EnvoyProcess | ForwardProxy | Upstreams) -> str:
    return "\n".join(part.describe() for part in parts)


def curl_ok(lab: Lab, upstreams: Upstreams, args: list[str], *parts: EnvoyProcess | ForwardProxy) -> str:
    result = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), *args])
    assert result.ok, f"{result}\n{context(*parts, upstreams)}"
    return result.stdout


@pytest.fixture(params=["squid", "tinyproxy"])
def authenticating_proxy(request: pytest.FixtureRequest, lab: Lab) -> Iterator[ForwardProxy]:
    auth = (USER, PASSWORD)
    if request.param == "squid":
        proxy: ForwardProxy = start_squid(lab, port=3150, auth=auth)
    else:
        proxy = start_tinyproxy(lab, port=8850, auth=auth)
    with proxy:
        yield proxy


def test_proxy_credentials_right_and_wrong(
    lab: Lab, upstreams: Upstreams, authenticating_proxy: ForwardProxy, tmp_path: Path
) -> None:
    """Right credentials tunnel; wrong ones fail and Envoy's access log says why (tunnel_response:407)."""
    proxy = f"{PROXY_IP}:{authenticating_proxy.port}"
    policy = f"""
    proxies:
      good: http://{USER}:{PASSWORD}@{proxy}
      bad: http://{USER}:wrong-password@{proxy}
    httpsProxy: good
    standalone:
      listeners:
        - {{name: good, listen: 127.0.0.1:10443, target: api.example.test:443, action: {{proxy: good}}}}
        - {{name: bad, listen: 127.0.0.1:10444, target: api.example.test:443, action: {{proxy: bad}}}}
    """
    with standalone_envoy(lab, tmp_path, policy) as envoy:
        resolve = ["--resolve", "api.example.test:10443:127.0.0.1", "--resolve", "api.example.test:10444:127.0.0.1"]
        body = curl_ok(lab, upstreams, [*resolve, "https://api.example.test:10443/auth"], envoy, authenticating_proxy)
        assert f"peer={PEER_VIA_PROXY} path=/auth" in body
        refused = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), *resolve, "https://api.example.test:10444/"])
        assert not refused.ok
        # squid answers a refused Proxy-Authorization with 407; tinyproxy 1.11 answers 401.
        status = "407" if authenticating_proxy.kind == "squid" else "401"
        line = envoy.wait_for_access_log(rf"chain=egress-listener-bad .*failure=tunnel_response:{status}")
        assert "flags=UF" in line, line
        if authenticating_proxy.kind == "squid":
            authenticating_proxy.wait_for_log(rf"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 {USER} ")
            authenticating_proxy.wait_for_log(r"TCP_DENIED/407 .*CONNECT api\.example\.test:443")
        everything_envoy_printed = envoy.log() + "\n".join(envoy.access_log())
        assert PASSWORD not in everything_envoy_printed and "wrong-password" not in everything_envoy_printed


def test_forward_proxy_listener_adds_the_credentials(lab: Lab, upstreams: Upstreams, tmp_path: Path) -> None:
    """Apps point HTTPS_PROXY at Envoy and hold no credentials; Envoy adds them towards the corporate proxy."""
    with start_squid(lab, port=3151, auth=(USER, PASSWORD)) as squid:
        policy = f"""
        httpProxy: http://{USER}:{PASSWORD}@{PROXY_IP}:3151
        httpsProxy: http://{USER}:{PASSWORD}@{PROXY_IP}:3151
        rules:
          - {{domains: [www.example.test], action: deny}}
        standalone:
          forwardProxy: {{listen: 127.0.0.1:3129}}
        """
        with standalone_envoy(lab, tmp_path, policy) as envoy:
            via = ["-x", "http://127.0.0.1:3129"]
            body = curl_ok(lab, upstreams, [*via, "https://api.example.test/fp-tls"], envoy, squid)
            assert f"peer={PEER_VIA_PROXY} path=/fp-tls tls=yes" in body
            squid.wait_for_log(rf"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 {USER} ")
            body = curl_ok(lab, upstreams, [*via, "http://api.example.test/fp-plain"], envoy, squid)
            assert f"peer={PEER_VIA_PROXY} path=/fp-plain tls=no" in body
            squid.wait_for_log(rf"TCP_MISS/200 .*GET http://api\.example\.test/fp-plain {USER} ")
            denied = lab.curl("pod", [*via, "--cacert", str(upstreams.ca_pem), "https://www.example.test/"])
            assert not denied.ok and "403" in denied.stderr, denied


def test_tls_to_the_proxy(lab: Lab, upstreams: Upstreams, tmp_path: Path) -> None:
    """An https:// proxy URL: Envoy speaks TLS to squid's https_port and verifies it against caFile and its name."""
    cert = lab.issue_cert(PROXY_NAME, name="squid-https")
    with start_squid(lab, port=3152, https_port=3453, tls_cert=cert.cert, tls_key=cert.key) as squid:
        policy = f"""
        proxies:
          corp: {{url: "https://{PROXY_NAME}:3453", caFile: "{lab.ca_pem}"}}
        httpsProxy: corp
        standalone:
          listeners:
            - {{name: api, listen: 127.0.0.1:10443, target: api.example.test:443}}
        """
        with standalone_envoy(lab, tmp_path, policy) as envoy:
            args = ["--resolve", "api.example.test:10443:127.0.0.1", "https://api.example.test:10443/over-tls"]
            body = curl_ok(lab, upstreams, args, envoy, squid)
            assert f"peer={PEER_VIA_PROXY} path=/over-tls" in body
            squid.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443")
            handshakes = envoy.wait_for_stat("cluster.egress-proxy-corp-connect.ssl.handshake")
            assert handshakes >= 1


def test_failover_to_the_second_proxy_when_the_first_dies(lab: Lab, upstreams: Upstreams, tmp_path: Path) -> None:
    """Two squids with priorities and an active health check: when the primary dies, tunnels use the backup."""
    primary = start_squid(lab, port=3160)
    with primary, start_tinyproxy(lab, port=8860) as backup:
        policy = f"""
        proxies:
          corp:
            endpoints:
              - {{url: "http://{PROXY_IP}:3160", priority: 0}}
              - {{url: "http://{PROXY_IP}:8860", priority: 1}}
            healthCheck: {{interval: 300ms, timeout: 200ms, unhealthyThreshold: 1, healthyThreshold: 1}}
        httpsProxy: corp
        standalone:
          listeners:
            - {{name: api, listen: 127.0.0.1:10443, target: api.example.test:443}}
        """
        with standalone_envoy(lab, tmp_path, policy) as envoy:
            args = ["--resolve", "api.example.test:10443:127.0.0.1"]
            curl_ok(lab, upstreams, [*args, "https://api.example.test:10443/first"], envoy, primary, backup)
            primary.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443")
            assert not [line for line in backup.access_log() if "CONNECT api.example.test" in line]
            primary.stop()
            envoy.wait_for_stat("cluster.egress-proxy-corp-connect.health_check.failure", timeout=10)
            body = curl_ok(lab, upstreams, [*args, "https://api.example.test:10443/second"], envoy, backup)
            assert f"peer={PEER_VIA_PROXY} path=/second" in body
            backup.wait_for_log(r"CONNECT api\.example\.test:443 HTTP/1\.1")

"""Smoke tests of the test lab itself, with HAND-WRITTEN static Envoy configs (not the project's translator).

They prove that the namespaces, the real proxies, the upstreams and Envoy fit together the way the traffic tests
expect: Envoy (uid 1337, in the pod) tunnels with HTTP CONNECT through squid / tinyproxy in corp to the upstreams in
inet, explicitly (a fixed tunnel hostname) and transparently (iptables capture + original_dst + tls_inspector).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.envoy import EnvoyProcess, start_envoy, validate_config
from tests.support.netns import PROXY_IP, UPSTREAM_IP, Lab
from tests.support.proxies import ForwardProxy, start_squid, start_tinyproxy
from tests.support.requirements import need
from tests.support.upstreams import BANNER_LINE, PEER_DIRECT, PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
ACCESS_LOG_FORMAT = (
    "tcp listener=%DOWNSTREAM_LOCAL_ADDRESS% sni=%REQUESTED_SERVER_NAME% upstream=%UPSTREAM_HOST% "
    "flags=%RESPONSE_FLAGS% reason=%UPSTREAM_TRANSPORT_FAILURE_REASON% sent=%BYTES_SENT% received=%BYTES_RECEIVED%\n"
)

BANNER_CLIENT = """
import socket
with socket.create_connection(("10.250.2.2", 2222), timeout=5) as s:
    f = s.makefile("rwb")
    print(f.readline().decode().strip())
    f.write(b"ping\\n")
    f.flush()
    print(f.readline().decode().strip())
"""


# -- hand-written Envoy configs ---------------------------------------------------------------------------------


def tunnel_tcp_proxy(hostname: str) -> dict[str, Any]:
    """A tcp_proxy network filter that CONNECT-tunnels to cluster ``proxy`` with ``hostname``, logging to stdout."""
    return {
        "name": "envoy.filters.network.tcp_proxy",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
            "stat_prefix": "egress",
            "cluster": "proxy",
            "tunneling_config": {"hostname": hostname},
            "access_log": [
                {
                    "name": "envoy.access_loggers.stdout",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.access_loggers.stream.v3.StdoutAccessLog",
                        "log_format": {"text_format_source": {"inline_string": ACCESS_LOG_FORMAT}},
                    },
                }
            ],
        },
    }


def proxy_cluster(proxy_port: int) -> dict[str, Any]:
    """A STATIC cluster with the forward proxy as its only endpoint (plain HTTP/1.1: CONNECT)."""
    return {
        "name": "proxy",
        "type": "STATIC",
        "connect_timeout": "5s",
        "load_assignment": {
            "cluster_name": "proxy",
            "endpoints": [
                {
                    "lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": PROXY_IP, "port_value": proxy_port}}}}
                    ]
                }
            ],
        },
    }


def explicit_tunnel_config(proxy_port: int) -> dict[str, Any]:
    """Listener 127.0.0.1:10443 whose every connection becomes ``CONNECT api.example.test:443`` via the proxy."""
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "explicit_tunnel",
                    "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10443}},
                    "filter_chains": [{"filters": [tunnel_tcp_proxy("api.example.test:443")]}],
                }
            ],
            "clusters": [proxy_cluster(proxy_port)],
        }
    }


def capture_config(proxy_port: int) -> dict[str, Any]:
    """Listener 0.0.0.0:15001 for iptables-redirected traffic: tunnel to SNI:original-port via the proxy."""
    return {
        "static_resources": {
            "listeners": [
                {
                    "name": "capture",
                    "address": {"socket_address": {"address": "0.0.0.0", "port_value": 15001}},
                    "listener_filters": [
                        {
                            "name": "envoy.filters.listener.original_dst",
                            "typed_config": {
                                "@type": "type.googleapis.com/"
                                "envoy.extensions.filters.listener.original_dst.v3.OriginalDst"
                            },
                        },
                        {
                            "name": "envoy.filters.listener.tls_inspector",
                            "typed_config": {
                                "@type": "type.googleapis.com/"
                                "envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"
                            },
                        },
                    ],
                    "filter_chains": [
                        {"filters": [tunnel_tcp_proxy("%REQUESTED_SERVER_NAME%:%DOWNSTREAM_LOCAL_PORT%")]}
                    ],
                }
            ],
            "clusters": [proxy_cluster(proxy_port)],
        }
    }


# -- helpers ------------------------------------------------------------------------------------------------------


@pytest.fixture(params=["squid", "tinyproxy"])
def forward_proxy(request: pytest.FixtureRequest, lab: Lab) -> Iterator[ForwardProxy]:
    """Each real forward proxy in corp, without auth."""
    proxy: ForwardProxy = start_squid(lab, port=3128) if request.param == "squid" else start_tinyproxy(lab, port=8888)
    with proxy:
        yield proxy


def context(*parts: EnvoyProcess | ForwardProxy | Upstreams) -> str:
    """Logs of the given parts, for assertion messages."""
    return "\n".join(part.describe() for part in parts)


def assert_connect_logged(proxy: ForwardProxy, target: str, *extra: EnvoyProcess | Upstreams) -> None:
    """The proxy logged a CONNECT to ``target`` (squid: with TCP_TUNNEL/200, written when the tunnel closes)."""
    pattern = rf"TCP_TUNNEL/200 .*CONNECT {target}" if proxy.kind == "squid" else rf"CONNECT {target} HTTP/1\.1"
    try:
        proxy.wait_for_log(pattern, timeout=15)
    except TimeoutError as exc:
        pytest.fail(f"{exc}\n{context(*extra)}")


# -- tests --------------------------------------------------------------------------------------------------------


def test_lab_network_layout(lab: Lab, upstreams: Upstreams) -> None:
    """Names resolve per namespace, the pod has no route to corp<->inet, upstreams answer on every path."""
    pod_hosts = lab.run("pod", ["getent", "hosts", "api.example.test"], check=True).stdout
    corp_hosts = lab.run("corp", ["getent", "hosts", "api.example.test"], check=True).stdout
    assert pod_hosts.split()[0] == UPSTREAM_IP
    assert corp_hosts.split()[0] == "10.250.3.2"
    assert lab.run("pod", ["ip", "route", "show", "default"]).stdout.strip() == ""

    unreachable = lab.curl("pod", ["http://10.250.3.2/"], timeout=3)
    assert unreachable.returncode == 7, unreachable  # ENETUNREACH: the pod has no route to the corp<->inet link

    direct = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), "https://www.example.test/x"])
    assert direct.ok, f"{direct}\n{upstreams.describe()}"
    assert direct.stdout.strip() == f"host=www.example.test peer={PEER_DIRECT} path=/x tls=yes"

    second = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), "https://10.250.2.3/"])
    assert second.ok and "tls=yes" in second.stdout, second

    from_corp = lab.curl("corp", ["http://api.example.test/"])
    assert from_corp.stdout.strip() == f"host=api.example.test peer={PEER_VIA_PROXY} path=/ tls=no", from_corp

    headers = lab.curl("pod", ["-H", "X-Probe: 1", "http://api.example.test/headers"])
    assert json.loads(headers.stdout)["X-Probe"] == "1", headers

    banner = lab.run("pod", [sys.executable, "-c", BANNER_CLIENT], timeout=15)
    assert banner.stdout.splitlines() == [BANNER_LINE, "ping"], banner


def test_proxies_accept_explicit_connect(lab: Lab, upstreams: Upstreams, forward_proxy: ForwardProxy) -> None:
    """curl -x through each proxy works from the pod and shows up in the proxy's log (no Envoy involved)."""
    result = lab.curl(
        "pod", ["-x", forward_proxy.url, "--cacert", str(upstreams.ca_pem), "https://api.example.test/direct-x"]
    )
    assert result.ok, f"{result}\n{context(forward_proxy)}"
    assert result.stdout.strip() == f"host=api.example.test peer={PEER_VIA_PROXY} path=/direct-x tls=yes"
    assert_connect_logged(forward_proxy, "api.example.test:443")


@pytest.mark.parametrize("kind", ["squid", "tinyproxy"])
def test_proxy_auth_is_enforced(lab: Lab, upstreams: Upstreams, kind: str) -> None:
    """With auth=(user, password) the proxy answers 407 without credentials and tunnels with them."""
    auth = ("lab-user", "lab-Pa55word")
    proxy: ForwardProxy
    proxy = start_squid(lab, port=3130, auth=auth) if kind == "squid" else start_tinyproxy(lab, port=8890, auth=auth)
    with proxy:
        args = ["--cacert", str(upstreams.ca_pem), "https://api.example.test/"]
        refused = lab.curl("pod", ["-x", proxy.url, *args])
        assert refused.returncode == 56 and "407" in refused.stderr, f"{refused}\n{context(proxy)}"
        accepted = lab.curl("pod", ["-x", proxy.url_with_auth(), *args])
        assert accepted.ok, f"curl exit {accepted.returncode}: {accepted.stderr}\n{context(proxy)}"
        assert f"peer={PEER_VIA_PROXY}" in accepted.stdout
        assert auth[1] not in proxy.describe() and auth[1] not in repr(proxy)


def test_squid_tls_to_proxy(lab: Lab, upstreams: Upstreams) -> None:
    """squid's https_port (TLS to the proxy) with a lab-CA certificate for proxy.corp.test."""
    cert = lab.issue_cert("proxy.corp.test", PROXY_IP, name="squid-proxy")
    with start_squid(lab, port=3131, https_port=3443, tls_cert=cert.cert, tls_key=cert.key) as squid:
        result = lab.curl(
            "pod",
            [
                "--proxy",
                "https://proxy.corp.test:3443",
                "--proxy-cacert",
                str(lab.ca_pem),
                "--cacert",
                str(upstreams.ca_pem),
                "https://api.example.test/over-tls",
            ],
        )
        assert result.ok, f"{result}\n{context(squid)}"
        assert f"peer={PEER_VIA_PROXY}" in result.stdout
        assert_connect_logged(squid, "api.example.test:443")


def test_envoy_explicit_tunnel(lab: Lab, upstreams: Upstreams, forward_proxy: ForwardProxy) -> None:
    """Envoy (uid 1337, pod) turns a local connection into CONNECT api.example.test:443 through the proxy."""
    config = explicit_tunnel_config(forward_proxy.port)
    validation = validate_config(config)
    assert validation.returncode == 0, validation.stdout + validation.stderr
    with start_envoy(config, netns=lab.pod, uid=ENVOY_UID) as envoy:
        result = lab.curl(
            "pod",
            [
                "--cacert",
                str(upstreams.ca_pem),
                "--resolve",
                "api.example.test:10443:127.0.0.1",
                "https://api.example.test:10443/explicit",
            ],
        )
        assert result.ok, f"{result}\n{context(envoy, forward_proxy, upstreams)}"
        assert "host=api.example.test" in result.stdout
        assert f"peer={PEER_VIA_PROXY}" in result.stdout
        assert_connect_logged(forward_proxy, "api.example.test:443", envoy, upstreams)
        line = envoy.wait_for_access_log(rf"upstream={PROXY_IP}:{forward_proxy.port} flags=- ")
        assert "listener=127.0.0.1:10443" in line
        envoy.wait_for_stat("cluster.proxy.upstream_cx_total", lambda v: v >= 1)


def test_envoy_transparent_capture(lab: Lab, upstreams: Upstreams) -> None:
    """iptables capture + original_dst + tls_inspector: an application with no proxy settings reaches the upstream
    through squid, which is asked for CONNECT api.example.test:443 (the SNI and the original port)."""
    with start_squid(lab, port=3132) as squid, start_envoy(capture_config(3132), netns=lab.pod, uid=ENVOY_UID) as envoy:
        lab.capture("pod", port=15001, exclude_uid=ENVOY_UID)
        try:
            result = lab.curl("pod", ["--cacert", str(upstreams.ca_pem), "https://api.example.test/captured"])
            assert result.ok, f"{result}\n{lab.iptables_rules()}\n{context(envoy, squid, upstreams)}"
            expected = f"host=api.example.test peer={PEER_VIA_PROXY} path=/captured tls=yes"
            assert result.stdout.strip() == expected, context(envoy, squid)
            assert_connect_logged(squid, "api.example.test:443", envoy, upstreams)
            line = envoy.wait_for_access_log(r"sni=api\.example\.test ")
            assert f"listener={UPSTREAM_IP}:443" in line, line
        finally:
            lab.uncapture("pod")


def test_need_skips_locally_and_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing prerequisite skips the test on a laptop and fails it when CI=true."""
    need(True, "nothing", "nothing to install")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"needs squid .*apt-get install -y squid"):
        need(False, "squid", "apt-get install -y squid")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"needs squid .*CI=true"):
        need(False, "squid", "apt-get install -y squid")

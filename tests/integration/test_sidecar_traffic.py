"""A sidecar Envoy with transparent capture (`egress-xds capture`) in the pod namespace, end to end.

The application (curl) sets no proxy variable. Every assertion is on what a real peer saw: the body the upstream
returned (it names the peer address it saw: 10.250.3.1 = through the proxy, 10.250.2.1 = direct), the proxy's
own access log, and Envoy's access log. The suite runs against squid and against tinyproxy (both requiring
credentials), with the configuration delivered three ways: `render --static`, and `bootstrap` + `serve` over
State-of-the-World and over Delta xDS.
"""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.egress import ServeProcess, bootstrap, egress_xds, render_static, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import PROXY_IP, UPSTREAM_IP, UPSTREAM_IP_2, Lab
from tests.support.proxies import ForwardProxy, start_squid, start_tinyproxy
from tests.support.upstreams import BANNER_LINE, PEER_DIRECT, PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
CAPTURE = [sys.executable, "-m", "egress_xds.cli", "capture"]
PROXY_PORTS = {"squid": 3128, "tinyproxy": 8888}
USER, PASSWORD = "pod-user", "Pr0xy-Secret"
XDS_ADDRESS = "127.0.0.1:18000"
POLICY = """
httpProxy: http://{credentials}@{proxy}
httpsProxy: http://{credentials}@{proxy}
noProxy: "direct.example.test,{direct_ip}"
rules:
  - name: no www
    domains: [www.example.test]
    action: deny
"""
BANNER_CLIENT = """
import socket, sys
with socket.create_connection((sys.argv[1], 2222), timeout=10) as s:
    f = s.makefile("rwb")
    print(f.readline().decode().strip())
    f.write(b"ping\\n")
    f.flush()
    print(f.readline().decode().strip())
"""


@dataclass
class Sidecar:
    lab: Lab
    proxy: ForwardProxy
    envoy: EnvoyProcess
    upstreams: Upstreams
    server: ServeProcess | None
    policy: Path

    def curl(self, *args: str, timeout: float = 10) -> tuple[int, str, str]:
        result = self.lab.curl("pod", ["--cacert", str(self.upstreams.ca_pem), *args], timeout=timeout)
        return result.returncode, result.stdout, result.stderr

    def context(self) -> str:
        parts = [part.describe() for part in (self.envoy, self.proxy, self.upstreams)]
        return "\n".join([*parts, self.server.describe() if self.server else ""])

    def proxy_logged(self, pattern: str) -> str:
        try:
            return self.proxy.wait_for_log(pattern, timeout=15)
        except TimeoutError as error:
            pytest.fail(f"{error}\n{self.context()}")

    def connect_pattern(self, target: str) -> str:
        if self.proxy.kind == "squid":
            return rf"TCP_TUNNEL/200 .*CONNECT {target} "
        return rf"CONNECT {target} HTTP/1\.1"


@pytest.fixture(
    scope="module",
    params=[(kind, delivery) for kind in ("squid", "tinyproxy") for delivery in ("static", "sotw", "delta")],
    ids=lambda param: "-".join(param),
)
def sidecar(
    request: pytest.FixtureRequest, lab: Lab, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sidecar]:
    kind, delivery = request.param
    port = PROXY_PORTS[kind]
    auth = (USER, PASSWORD)
    proxy = start_squid(lab, port=port, auth=auth) if kind == "squid" else start_tinyproxy(lab, port=port, auth=auth)
    directory = tmp_path_factory.mktemp(f"sidecar-{kind}-{delivery}")
    policy = write_policy(
        directory,
        POLICY.format(credentials=f"{USER}:{PASSWORD}", proxy=f"{PROXY_IP}:{port}", direct_ip=UPSTREAM_IP_2),
    )
    server = None
    if delivery == "static":
        config = render_static(policy)
    else:
        server = ServeProcess(lab, "pod", policy, directory / "serve.log", XDS_ADDRESS).start()
        config = bootstrap(f"pod-{kind}-{delivery}", XDS_ADDRESS, delta=delivery == "delta")
    try:
        with proxy, start_envoy(config, netns=lab.pod, uid=ENVOY_UID) as envoy:
            lab.run("pod", CAPTURE, check=True)  # what the sidecar's init container runs
            try:
                yield Sidecar(lab, proxy, envoy, upstreams, server, policy)
            finally:
                lab.run("pod", [*CAPTURE, "--clean"], check=True)
    finally:
        if server is not None:
            server.stop()


def test_https_by_name_is_tunnelled_with_connect(sidecar: Sidecar) -> None:
    code, body, error = sidecar.curl("https://api.example.test/tls")
    assert code == 0, f"{error}\n{sidecar.context()}"
    assert body.strip() == f"host=api.example.test peer={PEER_VIA_PROXY} path=/tls tls=yes"
    sidecar.proxy_logged(sidecar.connect_pattern("api.example.test:443"))
    line = sidecar.envoy.wait_for_access_log(r"chain=tunnel-[a-z-]+ .*sni=api\.example\.test")
    assert "connect=api.example.test:443" in line


def test_tls_without_sni_is_tunnelled_to_the_address(sidecar: Sidecar) -> None:
    code, body, error = sidecar.curl(f"https://{UPSTREAM_IP}/no-sni")
    assert code == 0, f"{error}\n{sidecar.context()}"
    assert f"peer={PEER_VIA_PROXY} path=/no-sni" in body
    sidecar.proxy_logged(sidecar.connect_pattern(f"{UPSTREAM_IP}:443"))


def test_plain_http_goes_in_absolute_form_without_envoy_headers(sidecar: Sidecar) -> None:
    code, body, error = sidecar.curl("http://api.example.test/plain?x=1")
    assert code == 0, f"{error}\n{sidecar.context()}"
    assert body.strip() == f"host=api.example.test peer={PEER_VIA_PROXY} path=/plain?x=1 tls=no"
    if sidecar.proxy.kind == "squid":
        sidecar.proxy_logged(r"TCP_MISS/200 .*GET http://api\.example\.test/plain\?")  # squid strips the query
    else:
        sidecar.proxy_logged(r"Request .*GET http://api\.example\.test/plain\?x=1 HTTP/1\.1")
    code, headers_body, error = sidecar.curl("http://api.example.test/headers")
    assert code == 0, f"{error}\n{sidecar.context()}"
    names = {name.lower() for name in json.loads(headers_body)}
    leaked = {name for name in names if name.startswith("x-envoy") or name in {"x-request-id", "x-forwarded-proto"}}
    assert not leaked, f"Envoy's own headers reached the upstream: {sorted(names)}"


def test_no_proxy_domain_goes_direct_for_tls_and_http(sidecar: Sidecar) -> None:
    before = len(sidecar.proxy.access_log())
    for url, tls in (("https://direct.example.test/d", "yes"), ("http://direct.example.test/d", "no")):
        code, body, error = sidecar.curl(url)
        assert code == 0, f"{url}: {error}\n{sidecar.context()}"
        assert body.strip() == f"host=direct.example.test peer={PEER_DIRECT} path=/d tls={tls}"
    assert not [line for line in sidecar.proxy.access_log()[before:] if "direct.example.test" in line]


def test_no_proxy_address_goes_direct(sidecar: Sidecar) -> None:
    code, body, error = sidecar.curl(f"https://{UPSTREAM_IP_2}/by-ip")
    assert code == 0, f"{error}\n{sidecar.context()}"
    assert f"peer={PEER_DIRECT} path=/by-ip" in body
    sidecar.envoy.wait_for_access_log(rf"chain=passthrough .*dst={UPSTREAM_IP_2}:443")


def test_app_that_uses_the_proxy_itself_still_works(sidecar: Sidecar) -> None:
    code, body, error = sidecar.curl("-x", sidecar.proxy.url_with_auth(), "https://api.example.test/explicit")
    assert code == 0, f"{error}\n{sidecar.context()}"
    assert f"peer={PEER_VIA_PROXY} path=/explicit" in body
    sidecar.envoy.wait_for_access_log(rf"chain=passthrough .*dst={PROXY_IP}:{sidecar.proxy.port}")
    sidecar.proxy_logged(sidecar.connect_pattern("api.example.test:443"))


def test_server_first_protocol_works_through_the_tunnel(sidecar: Sidecar) -> None:
    result = sidecar.lab.run("pod", [sys.executable, "-c", BANNER_CLIENT, UPSTREAM_IP], timeout=20)
    assert result.stdout.splitlines() == [BANNER_LINE, "ping"], f"{result}\n{sidecar.context()}"
    sidecar.proxy_logged(sidecar.connect_pattern(f"{UPSTREAM_IP}:2222"))


def test_deny_rule_closes_tls_and_refuses_http(sidecar: Sidecar) -> None:
    code, _, _ = sidecar.curl("https://www.example.test/denied")
    assert code != 0
    sidecar.envoy.wait_for_access_log(r"chain=deny .*sni=www\.example\.test .*flags=UH")
    code, body, _ = sidecar.curl("-w", "%{http_code}", "http://www.example.test/denied")
    assert code == 0 and body.endswith("403") and "denied by policy" in body
    assert "path=/denied" not in sidecar.upstreams.log()


def test_credentials_reach_the_proxy_but_never_the_app_or_the_logs(sidecar: Sidecar) -> None:
    code, body, error = sidecar.curl("http://api.example.test/headers")
    assert code == 0, f"{error}\n{sidecar.context()}"
    assert "proxy-authorization" not in {name.lower() for name in json.loads(body)}
    if sidecar.proxy.kind == "squid":  # squid logs the authenticated user of each tunnel
        sidecar.proxy_logged(rf"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 {USER} ")
    encoded = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    everything_logged = "\n".join(
        [sidecar.envoy.log(), *sidecar.envoy.access_log(), sidecar.server.log() if sidecar.server else ""]
    )
    assert PASSWORD not in everything_logged and encoded not in everything_logged


EXPLAINED = [  # (URL the app fetches, the address its name resolves to in the pod)
    ("https://api.example.test/explained", UPSTREAM_IP),
    ("https://direct.example.test/explained", UPSTREAM_IP),
    ("https://www.example.test/explained", UPSTREAM_IP),
    (f"https://{UPSTREAM_IP}/explained", UPSTREAM_IP),
    (f"https://{UPSTREAM_IP_2}/explained", UPSTREAM_IP_2),
    ("http://api.example.test/explained", UPSTREAM_IP),
    ("http://direct.example.test/explained", UPSTREAM_IP),
    ("http://www.example.test/explained", UPSTREAM_IP),
]


def explain_all(policy: Path) -> dict[str, tuple[str, str]]:
    """`egress-xds explain` for every EXPLAINED URL (one call per address): URL -> (chain, origin)."""
    answers: dict[str, tuple[str, str]] = {}
    for address in sorted({address for _, address in EXPLAINED}):
        urls = [url for url, url_address in EXPLAINED if url_address == address]
        output = egress_xds("explain", "--config", str(policy), "--node-id", "x", "--address", address, *urls).stdout
        verdicts = re.findall(r"^\S+ -> .+? by (.+)\n  envoy: chain (\S+),", output, re.MULTILINE)
        assert len(verdicts) == len(urls), output
        answers.update({url: (chain, origin) for url, (origin, chain) in zip(urls, verdicts, strict=True)})
    return answers


def test_explain_agrees_with_what_envoy_did(sidecar: Sidecar) -> None:
    """For each destination, `egress-xds explain` names the chain (and route) Envoy's access log shows."""
    answers = explain_all(sidecar.policy)
    for url, _ in EXPLAINED:
        before = len(sidecar.envoy.access_log())
        sidecar.curl(url)  # denied ones fail; what matters is Envoy's decision
        line = sidecar.envoy.wait_for_access_log(r"chain=", since=before)
        chain, origin = answers[url]
        assert f"chain={chain} " in line, f"{url}: explain said chain {chain}, Envoy logged {line!r}"
        if url.startswith("http://"):
            assert f"route={origin} " in line, f"{url}: explain said {origin!r}, Envoy logged {line!r}"

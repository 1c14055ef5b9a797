"""What the application in a sidecar pod can reach of its Envoy: nothing that holds the proxy credentials.

One pod as Kubernetes would run it: Envoy as uid 1337 from the real `egress-xds bootstrap --mode sidecar` output,
fed by a real `egress-xds serve`, behind `egress-xds capture`, tunnelling through a squid that requires the
credentials. The application is uid 1000 in the same network namespace. It enumerates every listening TCP port
(`ss -ltn`) and every unix socket (`ss -lx`) of the namespace and asks each for `/config_dump` and `/stats`; no
answer may hold the password or the base64 `user:password` of the Proxy-Authorization header. The admin socket
is mode 0600 and owned by Envoy (uid 1000 gets EACCES); the readiness port answers `/ready` and nothing else. The
capture port neither loops on itself nor relays for other hosts, and no request the app sends through it gets the
Proxy-Authorization header echoed back.
"""

from __future__ import annotations

import base64
import errno
import os
import re
import shutil
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.egress import ServeProcess, egress_xds, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import POD_CORP_IP, POD_INET_IP, PROXY_IP, Lab
from tests.support.processes import resolve_user
from tests.support.proxies import Squid, start_squid
from tests.support.upstreams import PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
APP_UID = 1000
CAPTURE = [sys.executable, "-m", "egress_xds.cli", "capture"]
USER, PASSWORD = "pod-user", "Adm1n-Leak-Canary"
SECRETS = (PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
XDS_ADDRESS = "127.0.0.1:18000"
CAPTURE_PORT = 15001
READINESS_PORT = 15021
POLICY = """
httpProxy: http://{credentials}@{proxy}
httpsProxy: http://{credentials}@{proxy}
rawTcp: tunnel
"""
# A stdlib-only client for the application's uid (the interpreter under /root may not be readable by it).
APP_PYTHON = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
CONNECT_UNIX = """
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
try:
    s.connect(sys.argv[1])
except OSError as error:
    print(f"errno={error.errno}")
else:
    print("connected")
"""
KNOCK = """
import socket, sys, time
for address in sys.argv[1:]:
    try:
        with socket.create_connection((address, 15001), timeout=3) as s:
            s.sendall(b"GET /config_dump HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            s.settimeout(3)
            try:
                print(address, repr(s.recv(65536)[:200]))
            except OSError as error:
                print(address, "recv", error)
    except OSError as error:
        print(address, "connect", error)
"""


@dataclass
class Pod:
    lab: Lab
    squid: Squid
    envoy: EnvoyProcess
    server: ServeProcess
    upstreams: Upstreams
    bootstrap: dict[str, object]
    admin_socket: Path

    def context(self) -> str:
        return "\n".join(part.describe() for part in (self.envoy, self.squid, self.upstreams, self.server))

    def as_app(self, argv: list[str], timeout: float = 20) -> str:
        result = self.lab.run("pod", argv, user=APP_UID, timeout=timeout)
        return result.stdout + result.stderr

    def app_curl(self, *args: str) -> tuple[int, str, str]:
        result = self.lab.curl("pod", list(args), timeout=5, user=APP_UID)
        return result.returncode, result.stdout, result.stderr


def assert_no_secret(text: str, what: str) -> None:
    if any(secret in text for secret in SECRETS):  # never `assert x not in y`: pytest would print the secret
        pytest.fail(f"{what} returned the proxy credentials", pytrace=False)


def capture_listener_connections(pod: Pod) -> int:
    return pod.envoy.stats().get(f"listener.127.0.0.1_{CAPTURE_PORT}.downstream_cx_total", 0)


@pytest.fixture(scope="module")
def pod(lab: Lab, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    directory = tmp_path_factory.mktemp("sidecar-admin")
    directory.chmod(0o755)
    policy = write_policy(directory, POLICY.format(credentials=f"{USER}:{PASSWORD}", proxy=f"{PROXY_IP}:3128"))
    # The pod's emptyDir for admin, as README and deploy/examples/app.yaml make it: 0700, owned by Envoy's uid.
    admin_directory = lab.workdir / "envoy-admin"  # pytest's tmp_path is root's alone: uid 1337 cannot enter
    admin_directory.mkdir(mode=0o700)
    os.chown(admin_directory, *resolve_user(ENVOY_UID))
    admin_socket = admin_directory / "admin.sock"
    args = ["bootstrap", "--node-id", "pod-admin", "--xds-address", XDS_ADDRESS, "--mode", "sidecar"]
    bootstrap = yaml.safe_load(egress_xds(*args, "--admin-socket", str(admin_socket)).stdout)
    server = ServeProcess(lab, "pod", policy, directory / "serve.log", XDS_ADDRESS)
    with start_squid(lab, port=3128, auth=(USER, PASSWORD)) as squid:
        server.start()
        try:
            with start_envoy(bootstrap, netns=lab.pod, uid=ENVOY_UID) as envoy:
                lab.wait_listening("pod", CAPTURE_PORT, timeout=20, describe=envoy.describe)
                lab.run("pod", CAPTURE, check=True)  # what the sidecar's init container runs
                try:
                    yield Pod(lab, squid, envoy, server, upstreams, bootstrap, admin_socket)
                finally:
                    lab.run("pod", [*CAPTURE, "--clean"], check=True)
        finally:
            server.stop()


def listening_tcp(lab: Lab) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket in the pod namespace; a wildcard becomes the pod's addresses
    and loopback, every way the application could reach it."""
    found: list[tuple[str, int]] = []
    for line in lab.run("pod", ["ss", "-Hltn"], check=True).stdout.splitlines():
        address, _, port = line.split()[3].rpartition(":")
        address = address.strip("[]").split("%", 1)[0]
        if address in {"0.0.0.0", "*", "::"}:
            found += [(each, int(port)) for each in ("127.0.0.1", POD_INET_IP, POD_CORP_IP)]
        else:
            found.append((address, int(port)))
    return sorted(set(found))


def listening_unix(lab: Lab) -> list[str]:
    """The path (or @name) of every listening unix socket in the pod namespace."""
    return sorted({line.split()[4] for line in lab.run("pod", ["ss", "-Hlx"], check=True).stdout.splitlines()})


def test_the_bootstrap_puts_admin_on_a_0600_socket_and_readiness_on_15021(pod: Pod) -> None:
    assert pod.bootstrap["admin"] == {"address": {"pipe": {"path": str(pod.admin_socket), "mode": 0o600}}}
    info = pod.admin_socket.stat()
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600, oct(info.st_mode)
    assert info.st_uid == ENVOY_UID
    assert pod.envoy.admin_address == str(pod.admin_socket)


def test_another_uid_in_the_pod_gets_eacces_on_the_admin_socket(pod: Pod) -> None:
    assert stat.S_ISSOCK(pod.admin_socket.stat().st_mode)
    assert pod.as_app([APP_PYTHON, "-c", CONNECT_UNIX, str(pod.admin_socket)]).strip() == f"errno={errno.EACCES}"
    # With the directory's 0700 alone (a socket file that somehow had mode 0666) it would be the same: EACCES.
    code, body, error = pod.app_curl("--unix-socket", str(pod.admin_socket), "http://x/config_dump")
    assert code != 0 and not body, error
    assert_no_secret(body + error, "the admin socket")


def test_no_listener_in_the_pod_returns_the_credentials(pod: Pod) -> None:
    # The search can fail: Envoy's own admin (root may enter) does hold them, in both forms.
    dump = pod.envoy.admin_get("/config_dump")
    if SECRETS[1] not in dump:
        pytest.fail("the tunnel's Proxy-Authorization header is not in config_dump: nothing to hide?", pytrace=False)
    tcp = listening_tcp(pod.lab)
    unix = listening_unix(pod.lab)
    asked = []
    for address, port in tcp:
        for path in ("/config_dump", "/stats", "/config_dump?include_eds", "/stats?format=json"):
            code, body, error = pod.app_curl("-i", f"http://{address}:{port}{path}")
            assert_no_secret(body + error, f"{address}:{port}{path}")
            asked.append(f"{address}:{port}{path} -> curl {code}")
    for name in unix:
        option = ["--abstract-unix-socket", name[1:]] if name.startswith("@") else ["--unix-socket", name]
        for path in ("/config_dump", "/stats"):
            code, body, error = pod.app_curl(*option, "-i", f"http://x{path}")
            assert_no_secret(body + error, f"{name}{path}")
            asked.append(f"{name}{path} -> curl {code}")
    ports = {port for _, port in tcp}
    assert {CAPTURE_PORT, READINESS_PORT} <= ports, tcp
    assert not ports & {9901, 15000}, f"a TCP admin port listens: {tcp}"
    assert str(pod.admin_socket) in unix, unix


def test_readiness_answers_ready_and_nothing_else(pod: Pod) -> None:
    for address in ("127.0.0.1", POD_INET_IP):
        code, body, error = pod.app_curl("-o", "/dev/null", "-w", "%{http_code}", f"http://{address}:15021/ready")
        assert (code, body) == (0, "200"), error
    # The kubelet probes the pod's address from outside the pod.
    probe = pod.lab.curl("corp", ["-o", "/dev/null", "-w", "%{http_code}", f"http://{POD_CORP_IP}:15021/ready"])
    assert probe.stdout == "200", probe
    for path in ("/config_dump", "/stats", "/ready/../config_dump", "/clusters", "/"):
        code, body, error = pod.app_curl("-i", "--path-as-is", f"http://127.0.0.1:15021{path}")
        assert code == 0, error
        assert re.match(r"HTTP/1\.1 404", body), body
        assert body.rstrip().endswith("content-length: 0"), body


def test_traffic_still_tunnels_through_squid_with_the_credentials(pod: Pod) -> None:
    code, body, error = pod.app_curl("--cacert", str(pod.upstreams.ca_pem), "https://api.example.test/admin-test")
    assert code == 0, f"{error}\n{pod.context()}"
    assert body.strip() == f"host=api.example.test peer={PEER_VIA_PROXY} path=/admin-test tls=yes"
    line = pod.squid.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 pod-user ")
    assert PASSWORD not in line


def test_a_connection_to_the_capture_port_itself_is_closed_not_looped(pod: Pod) -> None:
    """The application connecting to 127.0.0.1:15001 or to the pod's own address on 15001 reaches the capture
    listener without a redirect; forwarding it to its original destination (itself) would loop."""
    before = capture_listener_connections(pod)
    output = pod.as_app([APP_PYTHON, "-c", KNOCK, "127.0.0.1", POD_INET_IP, POD_CORP_IP])
    assert_no_secret(output, "the capture port")
    after = capture_listener_connections(pod)
    assert after - before <= 6, f"{after - before} connections on the capture listener for 3 knocks: a loop"


def test_the_capture_port_is_no_relay_for_other_hosts(pod: Pod) -> None:
    """Something outside the pod (another pod, a node) that reaches the pod's address on 15001 must not get its
    requests sent through the corporate proxy with this pod's credentials. The capture listener only serves
    connections that `capture` redirected, which all arrive on 127.0.0.1."""
    since = len(pod.squid.access_log())
    for address in (POD_CORP_IP, POD_INET_IP):
        outside = "corp" if address == POD_CORP_IP else "inet"
        result = pod.lab.curl(outside, ["-H", "Host: api.example.test", f"http://{address}:15001/relay"], timeout=5)
        assert "path=/relay" not in result.stdout, f"{address}:15001 relayed a request from {outside}: {result}"
        assert result.returncode == 7, result  # refused: nothing listens on the pod's addresses
    code, body, error = pod.app_curl("http://api.example.test/relay-from-the-app")
    assert code == 0 and "path=/relay-from-the-app" in body, f"{error}\n{pod.context()}"
    logged = pod.squid.wait_for_log(r"GET http://api\.example\.test/relay-from-the-app", since=since)
    assert not [line for line in pod.squid.access_log()[since:] if "/relay " in line], logged


def test_the_app_cannot_get_the_credentials_echoed_through_the_proxy(pod: Pod) -> None:
    """A plain-HTTP request leaves through the proxy with Proxy-Authorization added by Envoy: whatever the app
    sends (TRACE with Max-Forwards: 0 makes a proxy answer with the request it received), the answer must not
    carry that header back."""
    for args in (
        ["-X", "TRACE", "-H", "Max-Forwards: 0", "http://api.example.test/trace"],
        ["-X", "TRACE", "http://api.example.test/trace"],
        ["-X", "OPTIONS", "-H", "Max-Forwards: 0", "http://api.example.test/options"],
        ["http://api.example.test/headers"],
    ):
        code, body, error = pod.app_curl("-i", *args)
        assert_no_secret(body + error, f"curl {' '.join(args)}")
        assert code == 0 and body.startswith("HTTP/1.1 "), f"no answer to curl {' '.join(args)}: {error}"

"""What the application in a sidecar pod can reach of its Envoy: nothing that holds the proxy credentials.

One pod as Kubernetes would run it: Envoy as uid 1337 from the real `egress-xds bootstrap --mode sidecar` output,
fed by a real `egress-xds serve`, behind `egress-xds capture`, tunnelling through a squid that requires the
credentials. The application is uid 1000 in the same network namespace. It enumerates every listening TCP port
(`ss -ltn`) and every unix socket (`ss -lx`) of the namespace and asks each for `/config_dump` and `/stats`; no
answer may hold the password or the base64 `user:password` of the Proxy-Authorization header. The admin socket
is mode 0600 and owned by Envoy (uid 1000 gets EACCES); the readiness port answers `/ready` and nothing else.
"""

from __future__ import annotations

import base64
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml

from tests.support.egress import ServeProcess, egress_xds, write_policy
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import POD_CORP_IP, POD_INET_IP, PROXY_IP, Lab
from tests.support.proxies import Squid, start_squid
from tests.support.upstreams import Upstreams

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

    def context(self) -> str:
        return "\n".join(part.describe() for part in (self.envoy, self.squid, self.upstreams, self.server))

    def as_app(self, argv: list[str], timeout: float = 20) -> str:
        result = self.lab.run("pod", argv, user=APP_UID, timeout=timeout)
        return result.stdout + result.stderr

    def app_curl(self, *args: str) -> tuple[int, str, str]:
        result = self.lab.curl("pod", list(args), timeout=5, user=APP_UID)
        return result.returncode, result.stdout, result.stderr


def assert_no_secret(text: str, what: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{what} returned the proxy credentials"


def capture_listener_connections(pod: Pod) -> int:
    return pod.envoy.stats().get(f"listener.0.0.0.0_{CAPTURE_PORT}.downstream_cx_total", 0)


@pytest.fixture(scope="module")
def pod(lab: Lab, upstreams: Upstreams, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pod]:
    directory = tmp_path_factory.mktemp("sidecar-admin")
    directory.chmod(0o755)
    policy = write_policy(directory, POLICY.format(credentials=f"{USER}:{PASSWORD}", proxy=f"{PROXY_IP}:3128"))
    args = ["bootstrap", "--node-id", "pod-admin", "--xds-address", XDS_ADDRESS, "--mode", "sidecar"]
    bootstrap = yaml.safe_load(egress_xds(*args).stdout)
    server = ServeProcess(lab, "pod", policy, directory / "serve.log", XDS_ADDRESS)
    with start_squid(lab, port=3128, auth=(USER, PASSWORD)) as squid:
        server.start()
        try:
            with start_envoy(bootstrap, netns=lab.pod, uid=ENVOY_UID) as envoy:
                lab.wait_listening("pod", CAPTURE_PORT, timeout=20, describe=envoy.describe)
                lab.run("pod", CAPTURE, check=True)  # what the sidecar's init container runs
                try:
                    yield Pod(lab, squid, envoy, server, upstreams, bootstrap)
                finally:
                    lab.run("pod", [*CAPTURE, "--clean"], check=True)
        finally:
            server.stop()


def test_a_connection_to_the_capture_port_itself_is_closed_not_looped(pod: Pod) -> None:
    """The application connecting to 127.0.0.1:15001 or to the pod's own address on 15001 reaches the capture
    listener without a redirect; forwarding it to its original destination (itself) would loop."""
    before = capture_listener_connections(pod)
    output = pod.as_app([APP_PYTHON, "-c", KNOCK, "127.0.0.1", POD_INET_IP, POD_CORP_IP])
    assert_no_secret(output, "the capture port")
    after = capture_listener_connections(pod)
    assert after - before <= 6, f"{after - before} connections on the capture listener for 3 knocks: a loop"

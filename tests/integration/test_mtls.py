"""mTLS between a real Envoy (uid 1337, in the lab's pod namespace) and a real `egress-xds serve --tls-cert --tls-key
--client-ca`, with the bootstrap of `egress-xds bootstrap --xds-ca --client-cert --client-key --sds-dir`.

What each test asserts is what a real peer saw: squid's access log (the tunnel, with namespace a's proxy user),
the body the upstream returned, Envoy's stats and /certs, the server's answers to a raw gRPC client in the pod
namespace (tests/support/xds_probe.py), searched byte for byte for namespace b's credentials.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.egress import REPO_ROOT, egress_xds
from tests.support.envoy import EnvoyProcess, start_envoy
from tests.support.netns import POD_CORP_IP, PROXY_IP, Lab
from tests.support.processes import wait_until
from tests.support.proxies import Squid, start_squid
from tests.support.spiffe import Issued, SpiffeCA, replace_atomically, serial_of, spiffe_id
from tests.support.upstreams import PEER_DIRECT, PEER_VIA_PROXY, Upstreams

pytestmark = [pytest.mark.integration, pytest.mark.netns]

ENVOY_UID = 1337
CAPTURE = [sys.executable, "-m", "egress_xds.cli", "capture"]
PORT = 18443
SERVER_NAME = "xds.egress-xds.test"
USER_A, PASSWORD_A = "team-a", "A-pr0xy-S3cret"
USER_B, PASSWORD_B = "team-b", "B-pr0xy-S3cret"
ENV = {"PYTHONPATH": str(REPO_ROOT)}
POLICY = """
policies:
  - name: team-a
    nodes: {{metadata: {{namespace: a}}}}
    httpProxy: http://{a}@{proxy}
    httpsProxy: http://{a}@{proxy}
    noProxy: "{no_proxy}"
  - name: team-b
    nodes: {{metadata: {{namespace: b}}}}
    httpsProxy: http://{b}@{proxy}
"""
SERIAL = """
import socket, ssl, sys
context = ssl.create_default_context(cafile=sys.argv[1])
context.load_cert_chain(sys.argv[2], sys.argv[3])
context.set_alpn_protocols(["h2"])
with socket.create_connection(("127.0.0.1", int(sys.argv[4])), timeout=5) as raw:
    with context.wrap_socket(raw, server_hostname=sys.argv[5]) as tls:
        print(tls.getpeercert()["serialNumber"])
"""


def policy_text(no_proxy: str = "") -> str:
    return POLICY.format(
        a=f"{USER_A}:{PASSWORD_A}", b=f"{USER_B}:{PASSWORD_B}", proxy=f"{PROXY_IP}:3128", no_proxy=no_proxy
    )


def secret_forms(user: str, password: str) -> list[bytes]:
    return [password.encode(), base64.b64encode(f"{user}:{password}".encode())]


@dataclass
class Mesh:
    lab: Lab
    squid: Squid
    envoy: EnvoyProcess
    upstreams: Upstreams
    ca: SpiffeCA
    server_cert: Issued
    envoy_cert: Issued
    policy: Path
    serve_log: Path
    directory: Path

    def serve_output(self) -> str:
        return self.serve_log.read_text(errors="replace")

    def context(self) -> str:
        return "\n".join(
            [self.envoy.describe(), self.squid.describe(), "--- serve ---\n" + self.serve_output()[-5000:]]
        )

    def curl(self, url: str) -> tuple[int, str, str]:
        result = self.lab.curl("pod", ["--cacert", str(self.upstreams.ca_pem), url], timeout=15)
        return result.returncode, result.stdout, result.stderr

    def probe(self, *args: str, server: str = f"127.0.0.1:{PORT}") -> dict[str, Any]:
        argv = [sys.executable, "-m", "tests.support.xds_probe", "--server", server, *args]
        result = self.lab.run("pod", argv, env=ENV, timeout=30)
        assert result.returncode == 0, result.stderr
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer

    def tls_args(self, cert: Issued | None) -> list[str]:
        args = ["--ca", str(self.ca.ca_pem), "--server-name", SERVER_NAME]
        return args + (["--cert", str(cert.cert), "--key", str(cert.key)] if cert else [])

    def served_serial(self, client: Issued) -> int:
        argv = [sys.executable, "-c", SERIAL, self.ca.ca_pem, client.cert, client.key, str(PORT), SERVER_NAME]
        result = self.lab.run("pod", argv, timeout=20)
        assert result.returncode == 0, result.stderr
        return int(result.stdout.strip(), 16)


@pytest.fixture(scope="module")
def mesh(lab: Lab, upstreams: Upstreams) -> Iterator[Mesh]:
    directory = Path(tempfile.mkdtemp(prefix="egress-xds-mtls-"))
    directory.chmod(0o755)  # Envoy (uid 1337) reads the certificates and SDS files
    try:
        ca = SpiffeCA(directory / "ca")
        server_cert = ca.server(SERVER_NAME, "127.0.0.1", stem="xds", directory=directory / "server")
        envoy_cert = ca.workload("a", "web", stem="tls", directory=directory / "envoy-certs")
        sds = directory / "sds"
        sds.mkdir(mode=0o755)
        sds.chmod(0o755)
        policy = directory / "policy.yaml"
        policy.write_text(policy_text())
        policy.chmod(0o600)
        serve_log = directory / "serve.log"
        argv = [
            *(sys.executable, "-m", "egress_xds.cli", "serve", "--config", str(policy)),
            *("--listen", f"0.0.0.0:{PORT}", "--tls-cert", str(server_cert.cert), "--tls-key", str(server_cert.key)),
            *("--client-ca", str(ca.ca_pem), "--admin-identity", spiffe_id("ops", "egress-admin")),
        ]
        with serve_log.open("ab") as log:
            server = lab.popen("pod", argv, stdout=log, env=ENV)
        lab.wait_listening("pod", PORT, timeout=20, proc=server)
        result = egress_xds(
            *("bootstrap", "--node-id", "pod-a", "--xds-address", f"127.0.0.1:{PORT}", "--namespace", "a"),
            *("--xds-ca", str(ca.ca_pem), "--client-cert", str(envoy_cert.cert), "--client-key", str(envoy_cert.key)),
            *("--xds-server-name", SERVER_NAME, "--sds-dir", str(sds)),
        )
        config = yaml.safe_load(result.stdout)
        with (
            start_squid(lab, port=3128, auth=(USER_A, PASSWORD_A)) as squid,
            start_envoy(config, netns=lab.pod, uid=ENVOY_UID) as envoy,
        ):
            # the pod's own address stays reachable uncaptured: the Reload test calls the server through it
            lab.run("pod", [*CAPTURE, "--exclude-cidr", f"{POD_CORP_IP}/32"], check=True)
            try:
                yield Mesh(lab, squid, envoy, upstreams, ca, server_cert, envoy_cert, policy, serve_log, directory)
            finally:
                lab.run("pod", [*CAPTURE, "--clean"], check=True)
        lab.stop(server)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_envoy_gets_its_policy_over_mtls_and_tunnels_https_through_squid(mesh: Mesh) -> None:
    assert mesh.envoy.stats().get("control_plane.connected_state") == 1, mesh.context()
    code, body, error = mesh.curl("https://api.example.test/mtls")
    assert code == 0, f"{error}\n{mesh.context()}"
    assert f"peer={PEER_VIA_PROXY} path=/mtls tls=yes" in body
    line = mesh.squid.wait_for_log(r"TCP_TUNNEL/200 .*CONNECT api\.example\.test:443 ")
    assert f" {USER_A} " in line  # squid authenticated namespace a's credentials
    connected = re.search(r"stream connected node=pod-a .*identity=(\S+)", mesh.serve_output())
    assert connected is not None and connected.group(1) == spiffe_id("a", "web"), mesh.serve_output()
    # Envoy verified the server: the transport socket of its xDS cluster is TLS with the server's SAN
    cluster_ssl = {name: value for name, value in mesh.envoy.stats().items() if "control-plane.ssl.handshake" in name}
    assert cluster_ssl and max(cluster_ssl.values()) >= 1, mesh.envoy.stats()


def test_a_client_of_namespace_a_claiming_b_is_denied_and_gets_no_byte_of_b(mesh: Mesh) -> None:
    cert_a = mesh.ca.workload("a", "web", stem="probe-a", directory=mesh.directory / "probe")
    answer = mesh.probe(*mesh.tls_args(cert_a), "--node-id", "thief", "--meta", "namespace=b")
    assert answer["code"] == "PERMISSION_DENIED", answer
    everything = b"".join(base64.b64decode(item) for item in answer["responses"]) + answer["details"].encode()
    for form in secret_forms(USER_B, PASSWORD_B):
        assert form not in everything
    assert answer["responses"] == []
    assert re.search(
        r"stream refused: node=thief .*claims namespace 'b' but its certificate says 'a'", mesh.serve_output()
    )
    assert PASSWORD_B not in mesh.serve_output() and PASSWORD_A not in mesh.serve_output()
    # the same certificate without the false claim gets a's policy, and still nothing of b
    answer = mesh.probe(*mesh.tls_args(cert_a), "--node-id", "honest", "--seconds", "1.5")
    everything = b"".join(base64.b64decode(item) for item in answer["responses"])
    assert base64.b64encode(f"{USER_A}:{PASSWORD_A}".encode()) in everything
    for form in secret_forms(USER_B, PASSWORD_B):
        assert form not in everything


def test_no_client_certificate_and_plaintext_are_refused(mesh: Mesh) -> None:
    for args in (mesh.tls_args(None), ["--plaintext"]):
        answer = mesh.probe(*args, "--meta", "namespace=b")
        assert answer["code"] == "UNAVAILABLE" and answer["responses"] == [], answer
    stranger = SpiffeCA(mesh.directory / "stranger", name="stranger CA").workload("b", "default")
    answer = mesh.probe(*mesh.tls_args(None), "--cert", str(stranger.cert), "--key", str(stranger.key))
    assert answer["code"] == "UNAVAILABLE" and answer["responses"] == [], answer


def test_reload_is_allowed_from_loopback_and_the_admin_identity_only(mesh: Mesh) -> None:
    remote = f"{POD_CORP_IP}:{PORT}"  # the pod's own non-loopback address: the peer is not loopback
    other = mesh.ca.workload("a", "web", stem="reload-a", directory=mesh.directory / "probe")
    admin = mesh.ca.workload("ops", "egress-admin", stem="reload-admin", directory=mesh.directory / "probe")
    refused = mesh.probe(*mesh.tls_args(other), "--reload", server=remote)
    assert refused["code"] == "PERMISSION_DENIED" and spiffe_id("a", "web") in refused["details"], refused
    assert mesh.probe(*mesh.tls_args(admin), "--reload", server=remote)["code"] == "OK"
    assert mesh.probe(*mesh.tls_args(other), "--reload")["code"] == "OK"  # loopback
    # Reading the reload record is a read RPC (redacted, as every read): any verified client may.
    assert mesh.probe(*mesh.tls_args(other), "--reload-errors", server=remote)["code"] == "OK"


def _certs_serials(envoy: EnvoyProcess) -> set[int]:
    data = json.loads(envoy.admin_get("/certs"))
    serials = set()
    for entry in data.get("certificates", []):
        for cert in entry.get("cert_chain", []):
            serials.add(int(cert["serial_number"], 16))
    return serials


def test_both_certificates_rotate_while_envoy_stays_connected(mesh: Mesh) -> None:
    stats = mesh.envoy.stats()
    connections = stats["cluster.egress-xds-control-plane.upstream_cx_total"]
    assert stats["control_plane.connected_state"] == 1
    assert serial_of(mesh.envoy_cert.cert) in _certs_serials(mesh.envoy)

    # Envoy's client certificate: a new one renamed over the old files (a Secret volume update)
    rotated = mesh.ca.workload("a", "web", stem="tls-next", directory=mesh.directory / "staging")
    new_client_serial = serial_of(rotated.cert)
    replace_atomically(rotated, mesh.envoy_cert)
    wait_until(
        lambda: new_client_serial in _certs_serials(mesh.envoy),
        timeout=15,
        what="Envoy to load its rotated client certificate",
        describe=mesh.context,
    )
    # the server's certificate
    old_server_serial = serial_of(mesh.server_cert.cert)
    probe = mesh.ca.workload("a", "probe", stem="serial", directory=mesh.directory / "probe")
    assert mesh.served_serial(probe) == old_server_serial
    rotated_server = mesh.ca.server(SERVER_NAME, "127.0.0.1", stem="xds-next", directory=mesh.directory / "staging")
    replace_atomically(rotated_server, mesh.server_cert)
    assert mesh.served_serial(probe) == serial_of(mesh.server_cert.cert) != old_server_serial

    # a policy change after both rotations still reaches Envoy, on the same connection
    lds_updates = mesh.envoy.stats()["listener_manager.lds.update_success"]
    mesh.policy.write_text(policy_text(no_proxy="direct.example.test"))
    mesh.envoy.wait_for_stat("listener_manager.lds.update_success", lambda value: value > lds_updates, timeout=20)
    code, body, error = mesh.curl("https://direct.example.test/after-rotation")
    assert code == 0, f"{error}\n{mesh.context()}"
    assert f"peer={PEER_DIRECT} path=/after-rotation" in body
    stats = mesh.envoy.stats()
    assert stats["control_plane.connected_state"] == 1
    assert stats["cluster.egress-xds-control-plane.upstream_cx_total"] == connections, "the xDS stream was dropped"
    assert "stream disconnected node=pod-a" not in mesh.serve_output()


def test_envoy_streams_its_access_log_over_the_same_mtls(mesh: Mesh) -> None:
    """The access loggers use the xDS cluster: the server, which requires client certificates, gets the entries
    and attributes them to the certificate's namespace (`egress-xds traffic` over TLS)."""
    code, _, error = mesh.curl("https://api.example.test/access-log")
    assert code == 0, f"{error}\n{mesh.context()}"
    argv = [sys.executable, "-m", "egress_xds.cli", "traffic", "--server", f"127.0.0.1:{PORT}", "-o", "json"]

    def reported() -> dict[str, Any] | None:
        result = mesh.lab.run("pod", [*argv, *mesh.tls_args(mesh.envoy_cert)], env=ENV, timeout=30)
        assert result.returncode == 0, result.stderr
        rows = {
            (workload["node"], workload["namespace"], row["destination"]): row
            for workload in json.loads(result.stdout)["workloads"]
            for row in workload["destinations"]
        }
        return rows.get(("pod-a", "a", "api.example.test:443"))

    row = wait_until(reported, timeout=20, interval=0.5, what="the tunnel in `traffic`", describe=mesh.context)
    assert row["outcomes"].get("ok", 0) >= 1 and row["kind"] == "proxy", row

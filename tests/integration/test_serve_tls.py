"""`egress-xds serve` with TLS flags and `egress-xds status` with `--ca/--cert/--key`, as a user runs them
(real processes on loopback; certificates made in the test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.serve_command import ServeCommand
from tests.support.egress import egress_xds, write_policy
from tests.support.spiffe import SpiffeCA

pytestmark = pytest.mark.integration

POLICY = """
httpsProxy: http://user:S3cret-pw@10.0.0.1:3128
"""


@pytest.fixture
def ca(tmp_path: Path) -> SpiffeCA:
    return SpiffeCA(tmp_path / "pki")


def test_status_talks_to_a_server_that_requires_client_certificates(tmp_path: Path, ca: SpiffeCA) -> None:
    server = ca.server("localhost", "127.0.0.1")
    admin = ca.workload("ops", "egress-admin")
    policy = write_policy(tmp_path, POLICY)
    tls = ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--client-ca", str(ca.ca_pem)]
    serve = ServeCommand(["--config", str(policy)], tmp_path / "serve.log", extra=tls)
    try:
        base = ["status", "--server", serve.address, "--ca", str(ca.ca_pem)]
        ok = egress_xds(*base, "--cert", str(admin.cert), "--key", str(admin.key), "--server-name", "localhost")
        assert str(policy) in ok.stdout
        refused = egress_xds(*base, check=False)  # no client certificate
        assert refused.returncode == 1 and refused.stderr.startswith("error: cannot ask egress-xds at"), refused
        plaintext = egress_xds("status", "--server", serve.address, check=False)
        assert plaintext.returncode == 1, plaintext
        assert "SECURITY" not in serve.log()
        assert "client certificates required" in serve.log()
        assert "S3cret-pw" not in serve.log() + ok.stdout + refused.stderr
    finally:
        serve.stop()


def test_without_a_client_ca_the_server_warns_once_that_metadata_is_a_claim(tmp_path: Path, ca: SpiffeCA) -> None:
    server = ca.server("localhost", "127.0.0.1")
    policy = write_policy(tmp_path, POLICY)
    serve = ServeCommand(
        ["--config", str(policy)],
        tmp_path / "serve.log",
        extra=["--tls-cert", str(server.cert), "--tls-key", str(server.key)],
    )
    try:
        ok = egress_xds("status", "--server", serve.address, "--ca", str(ca.ca_pem), "--server-name", "localhost")
        assert str(policy) in ok.stdout
        assert serve.log().count("SECURITY: xDS is served over TLS without client certificates") == 1
        assert "TRUSTED AS CLAIMED" in serve.log()
    finally:
        serve.stop()


def test_unusable_tls_flags_and_files_are_one_line_errors(tmp_path: Path, ca: SpiffeCA) -> None:
    server = ca.server("localhost", "127.0.0.1")
    other = ca.server("localhost", stem="other")
    policy = write_policy(tmp_path, POLICY)
    base = ["serve", "--config", str(policy), "--listen", "127.0.0.1:0"]
    mismatch = egress_xds(*base, "--tls-cert", str(server.cert), "--tls-key", str(other.key), check=False)
    assert mismatch.returncode == 1, mismatch
    (line,) = [line for line in mismatch.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: cannot serve TLS:") and "Traceback" not in mismatch.stderr
    usage = [
        ["--tls-cert", str(server.cert)],
        ["--client-ca", str(ca.ca_pem)],
        ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--admin-identity", "spiffe://td/ns/a/sa/b"],
        ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--client-ca", str(ca.ca_pem),
         "--admin-identity", "spiffe://td/ns/a"],
    ]  # fmt: skip
    for flags in usage:
        result = egress_xds(*base, *flags, check=False)
        assert result.returncode == 2 and result.stderr.startswith("error: "), (flags, result.stderr)


def test_bootstrap_tls_flags_go_together(tmp_path: Path, ca: SpiffeCA) -> None:
    client = ca.workload("a", "web")
    base = ["bootstrap", "--node-id", "n", "--xds-address", "127.0.0.1:18443"]
    full = ["--xds-ca", str(ca.ca_pem), "--client-cert", str(client.cert), "--client-key", str(client.key)]
    partial = egress_xds(*base, *full, check=False)  # no --sds-dir
    assert partial.returncode == 2 and "--sds-dir" in partial.stderr, partial.stderr
    missing = egress_xds(*base, *full, "--sds-dir", str(tmp_path / "nowhere"), check=False)
    assert missing.returncode == 2 and "no such directory" in missing.stderr, missing.stderr
    name_only = egress_xds(*base, "--xds-server-name", "xds", check=False)
    assert name_only.returncode == 2, name_only.stderr
    written = egress_xds(*base, *full, "--sds-dir", str(tmp_path))
    assert "UpstreamTlsContext" in written.stdout and "IP_ADDRESS" in written.stdout  # the host is an IP
    assert sorted(path.name for path in tmp_path.glob("xds-*.yaml")) == [
        "xds-client-certificate.yaml",
        "xds-trusted-ca.yaml",
    ]


def test_health_listen_answers_plaintext_probes_and_nothing_else(tmp_path: Path, ca: SpiffeCA) -> None:
    """The kubelet's grpc probe cannot do TLS: --health-listen serves health alone, in plaintext."""
    import re

    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from egress_xds.admin.v1 import admin_pb2, admin_pb2_grpc

    server = ca.server("localhost", "127.0.0.1")
    policy = write_policy(tmp_path, POLICY)
    tls = ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--client-ca", str(ca.ca_pem)]
    serve = ServeCommand(
        ["--config", str(policy)], tmp_path / "serve.log", extra=[*tls, "--health-listen", "127.0.0.1:0"]
    )
    try:
        found = re.search(r"health \(grpc.health.v1, plaintext\) on \S+ \(port (\d+)\)", serve.log())
        assert found is not None, serve.describe()
        with grpc.insecure_channel(f"127.0.0.1:{found.group(1)}") as channel:
            answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            try:
                admin_pb2_grpc.AdminStub(channel).GetPolicy(admin_pb2.GetPolicyRequest(), timeout=5)
            except grpc.RpcError as error:
                assert isinstance(error, grpc.Call) and error.code() == grpc.StatusCode.UNIMPLEMENTED
            else:
                raise AssertionError("the health port answered an admin call")
    finally:
        serve.stop()

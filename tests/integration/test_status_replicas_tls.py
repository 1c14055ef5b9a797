"""`egress-xds status --service NAME.NAMESPACE` over mutual TLS, as in deploy/: the replicas are found by their pod
IPs (here 127.0.0.1 and two ports, from EndpointSlices in the in-process Kubernetes API server), while their
certificate names the Service (`egress-xds.egress-xds.svc`, as deploy/mtls issues it), so `status` checks the
certificate for that name by default. Real `egress-xds serve` processes with TLS; certificates made in the test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.serve_command import ServeCommand
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.resources import endpoint_slice, kubeconfig_text
from tests.support.egress import egress_xds, write_policy
from tests.support.spiffe import SpiffeCA

pytestmark = pytest.mark.integration

SERVICE_NAME = "egress-xds.egress-xds.svc"
TOKEN = "token-of-the-tls-status-test"


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[list[ServeCommand], SpiffeCA, Path]]:
    ca = SpiffeCA(tmp_path / "pki")
    server = ca.server(SERVICE_NAME)  # no IP address in it: a pod IP is not the name checked
    policy = write_policy(tmp_path, "httpsProxy: http://10.0.0.1:3128\n")
    tls = ["--tls-cert", str(server.cert), "--tls-key", str(server.key), "--client-ca", str(ca.ca_pem)]
    started: list[ServeCommand] = []
    with FakeApiServer(token=TOKEN) as api:
        try:
            for name in ("a", "b"):
                started.append(ServeCommand(["--config", str(policy)], tmp_path / f"{name}.log", extra=tls))
                host, port = started[-1].address.rsplit(":", 1)
                api.apply(endpoint_slice(f"egress-xds-{name}", "egress-xds", [(host, int(port), f"pod-{name}", True)]))
            kubeconfig = tmp_path / "kubeconfig"
            kubeconfig.write_text(kubeconfig_text(api.url, TOKEN))
            yield started, ca, kubeconfig
        finally:
            for replica in started:
                replica.stop()


def test_status_checks_the_replicas_certificate_for_the_service_name(
    replicas: tuple[list[ServeCommand], SpiffeCA, Path],
) -> None:
    servers, ca, kubeconfig = replicas
    admin = ca.workload("ops", "egress-admin")
    client = ["--ca", str(ca.ca_pem), "--cert", str(admin.cert), "--key", str(admin.key)]
    found = egress_xds("status", "--service", "egress-xds.egress-xds", "--kubeconfig", str(kubeconfig), *client)
    for server in servers:
        assert f"server {server.address} (" in found.stdout, found.stdout
    by_address = [item for server in servers for item in ("--server", server.address)]
    unnamed = egress_xds("status", *by_address, *client, check=False)  # checked for 127.0.0.1: refused
    assert unnamed.returncode == 1 and "cannot ask egress-xds at" in unnamed.stderr, unnamed
    named = egress_xds("status", *by_address, *client, "--server-name", SERVICE_NAME)
    assert all(f"server {server.address} (" in named.stdout for server in servers)

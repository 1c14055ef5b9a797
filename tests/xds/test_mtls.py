"""xDS over TLS with client certificates, against the real server on loopback: the namespace and service account
come from the client's SPIFFE certificate, a node claiming another namespace is refused and gets nothing of it,
clients without a certificate (or in plaintext) are refused at the handshake, and the server certificate is
rotated under an open stream without dropping it.

Certificates are made per test (tests/support/spiffe.py); raw clients (tests/xds/client.py) over real channels.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from prometheus_client import REGISTRY

from egress_xds.admin import DebugView, add_debug_services
from egress_xds.policy.model import PolicySet
from egress_xds.publish import PolicyPublisher
from egress_xds.sources.file import policy_from_bytes
from egress_xds.type_urls import CLUSTER_TYPE_URL, LISTENER_TYPE_URL
from egress_xds.xds.cache import SnapshotCache
from egress_xds.xds.server import AdsServer
from egress_xds.xds.tls import ServerTls
from tests.support.spiffe import Issued, SpiffeCA, replace_atomically, serial_of
from tests.xds.client import DeltaClient, SotwClient, make_node

PASSWORD_A = "pw-a-5Jq8"
PASSWORD_B = "pw-b-Zr7x"
PASSWORD_DEPLOY = "pw-deploy-Kt2m"


def policy_text(b_port: int = 3128) -> bytes:
    return f"""
policies:
  - name: deployers
    nodes: {{serviceAccount: "deploy-*"}}
    httpsProxy: http://deployer:{PASSWORD_DEPLOY}@10.0.0.9:3128
  - name: team-a
    nodes: {{metadata: {{namespace: a}}}}
    httpsProxy: http://user-a:{PASSWORD_A}@10.0.0.1:3128
  - name: team-b
    nodes: {{metadata: {{namespace: b}}}}
    httpsProxy: http://user-b:{PASSWORD_B}@10.0.0.2:{b_port}
""".encode()


def load(text: bytes) -> PolicySet:
    policies, _ = policy_from_bytes(text, Path("policy.yaml"))
    return policies


def secret_forms(user: str, password: str) -> list[bytes]:
    """How a credential may appear in bytes on the wire: the password, and base64 user:password."""
    return [password.encode(), base64.b64encode(f"{user}:{password}".encode())]


@dataclass
class Pki:
    ca: SpiffeCA
    server: Issued
    directory: Path

    def channel(self, client: Issued | None, port: int) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(
            self.ca.ca_pem.read_bytes(),
            client.key.read_bytes() if client else None,
            client.cert.read_bytes() if client else None,
        )
        return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials)


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = SpiffeCA(tmp_path / "pki")
    return Pki(ca, ca.server("localhost", "127.0.0.1", stem="xds"), tmp_path / "pki")


@dataclass
class Running:
    server: AdsServer
    publisher: PolicyPublisher
    port: int


@pytest.fixture
async def running(pki: Pki) -> AsyncIterator[Running]:
    publisher = PolicyPublisher(SnapshotCache(lambda node: None))
    publisher.publish(load(policy_text()))

    tls = ServerTls(pki.server.cert, pki.server.key, pki.ca.ca_pem)
    server = AdsServer(publisher.cache, "127.0.0.1:0", tls=tls)
    await add_debug_services(server, DebugView(publisher.cache, server.registry))
    async with server:
        yield Running(server, publisher, server.port)


async def all_responses(client: SotwClient, seconds: float = 1.0) -> list[bytes]:
    """Every response the client got within `seconds` (or until the stream ended), serialized."""
    got: list[bytes] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        try:
            response = await client.recv(timeout=max(0.01, deadline - loop.time()))
        except TimeoutError:
            break
        got.append(response.SerializeToString())
        await client.ack(response)
    return got


async def subscribe(client: SotwClient) -> None:
    await client.send(CLUSTER_TYPE_URL)
    await client.send(LISTENER_TYPE_URL)


async def test_the_namespace_comes_from_the_certificate(pki: Pki, running: Running) -> None:
    cert = pki.ca.workload("a", "default")
    async with pki.channel(cert, running.port) as channel:
        client = SotwClient(channel, make_node("app-1"))  # claims nothing
        await subscribe(client)
        blob = b"".join(await all_responses(client))
        await client.close()
    assert base64.b64encode(f"user-a:{PASSWORD_A}".encode()) in blob
    for form in secret_forms("user-b", PASSWORD_B) + secret_forms("deployer", PASSWORD_DEPLOY):
        assert form not in blob


async def test_claiming_another_namespace_is_denied_and_gets_nothing_of_it(
    pki: Pki, running: Running, caplog: pytest.LogCaptureFixture
) -> None:
    cert = pki.ca.workload("a", "default")
    before = _metric("egress_xds_identity_mismatches_total", field="namespace", claimed="b", certificate="a")
    caplog.set_level(logging.INFO)
    async with pki.channel(cert, running.port) as channel:
        client = SotwClient(channel, make_node("app-1", {"namespace": "b"}))
        await client.send(CLUSTER_TYPE_URL)  # one request: the node; a second would race the refusal
        blob = b"".join(await all_responses(client))
        await asyncio.wait_for(client.ended.wait(), 5)
        assert await client.call.code() == grpc.StatusCode.PERMISSION_DENIED
        details = await client.call.details() or ""
        await client.close()
    assert "'b'" in details and "'a'" in details
    assert blob == b""
    for form in secret_forms("user-b", PASSWORD_B):
        assert form not in blob and form.decode() not in details and form.decode() not in caplog.text
    after = _metric("egress_xds_identity_mismatches_total", field="namespace", claimed="b", certificate="a")
    assert after == before + 1
    (line,) = [record.getMessage() for record in caplog.records if "stream refused" in record.getMessage()]
    assert "'b'" in line and "'a'" in line and "spiffe://cluster.local/ns/a/sa/default" in line
    assert running.server.registry.for_node("app-1") == []


async def test_delta_streams_are_held_to_the_certificate_too(pki: Pki, running: Running) -> None:
    cert = pki.ca.workload("a", "default")
    async with pki.channel(cert, running.port) as channel:
        liar = DeltaClient(channel, make_node("delta-1", {"namespace": "b"}))
        await liar.send(CLUSTER_TYPE_URL)  # one request: the node; a second would race the refusal
        await asyncio.wait_for(liar.ended.wait(), 5)
        assert await liar.call.code() == grpc.StatusCode.PERMISSION_DENIED
        assert liar.responses.empty()
        await liar.close()
        honest = DeltaClient(channel, make_node("delta-2"))
        await honest.send(CLUSTER_TYPE_URL)
        await honest.send(LISTENER_TYPE_URL)
        blob = b""
        for _ in range(2):
            response = await honest.recv()
            blob += response.SerializeToString()
            await honest.ack(response)
        await honest.close()
    assert base64.b64encode(f"user-a:{PASSWORD_A}".encode()) in blob
    assert PASSWORD_B.encode() not in blob and base64.b64encode(f"user-b:{PASSWORD_B}".encode()) not in blob


async def test_claiming_another_service_account_is_denied(pki: Pki, running: Running) -> None:
    cert = pki.ca.workload("a", "default")
    async with pki.channel(cert, running.port) as channel:
        client = SotwClient(channel, make_node("app-1", {"namespace": "a", "serviceAccount": "deploy-bot"}))
        await subscribe(client)
        blob = b"".join(await all_responses(client))
        await asyncio.wait_for(client.ended.wait(), 5)
        assert await client.call.code() == grpc.StatusCode.PERMISSION_DENIED
        await client.close()
    assert PASSWORD_DEPLOY.encode() not in blob


async def test_a_policy_selects_by_the_verified_service_account(pki: Pki, running: Running) -> None:
    cert = pki.ca.workload("a", "deploy-ci")
    async with pki.channel(cert, running.port) as channel:
        client = SotwClient(channel, make_node("ci-1", {"namespace": "a"}))
        await subscribe(client)
        blob = b"".join(await all_responses(client))
        await client.close()
    assert PASSWORD_DEPLOY.encode() in blob or base64.b64encode(f"deployer:{PASSWORD_DEPLOY}".encode()) in blob
    assert base64.b64encode(f"user-a:{PASSWORD_A}".encode()) not in blob


@pytest.mark.parametrize(
    ("uri", "extra"),
    [
        ("https://cluster.local/ns/a/sa/default", ()),
        ("spiffe://cluster.local/ns/a/sa/default/extra", ()),
        ("spiffe://cluster.local/ns/A/sa/default", ()),
        ("spiffe://cluster.local/ns/a/sa/default", ("spiffe://cluster.local/ns/b/sa/default",)),
    ],
    ids=["not-spiffe", "longer-path", "uppercase-namespace", "two-uris"],
)
async def test_a_certificate_without_one_spiffe_id_of_the_kubernetes_form_is_denied(
    pki: Pki, running: Running, uri: str, extra: tuple[str, ...]
) -> None:
    cert = pki.ca.workload("x", "y", uri=uri, extra_uris=extra, stem="odd")
    async with pki.channel(cert, running.port) as channel:
        # refused before any request is read: the client only waits (a write racing the refusal would make the
        # client library report its own INTERNAL instead of the server's status)
        client = SotwClient(channel, make_node("odd-1", {"namespace": "b"}))
        blob = b"".join(await all_responses(client, 0.5))
        await asyncio.wait_for(client.ended.wait(), 5)
        assert await client.call.code() == grpc.StatusCode.PERMISSION_DENIED
        await client.close()
    assert blob == b""


async def _health(channel: grpc.aio.Channel) -> str:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    except grpc.aio.AioRpcError as error:
        return error.code().name
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


async def test_no_client_certificate_and_plaintext_are_refused_at_the_handshake(pki: Pki, running: Running) -> None:
    async with pki.channel(None, running.port) as channel:
        assert await _health(channel) == "UNAVAILABLE"
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
        assert await _health(channel) == "UNAVAILABLE"
    other_ca = SpiffeCA(pki.directory / "other", name="another CA")
    async with pki.channel(other_ca.workload("a", "default"), running.port) as channel:
        assert await _health(channel) == "UNAVAILABLE"
    async with pki.channel(pki.ca.workload("a", "default"), running.port) as channel:  # health is served over TLS
        assert await _health(channel) == "SERVING"
    # the raw handshake, as any TLS client sees it: no certificate -> not one byte of HTTP/2 (the server's
    # SETTINGS frame would be the first); TLS 1.3 sends the refusal after the client's Finished, hence the read
    context = ssl.create_default_context(cafile=str(pki.ca.ca_pem))
    context.set_alpn_protocols(["h2"])
    received = b""
    with (
        socket.create_connection(("127.0.0.1", running.port), timeout=5) as raw,
        contextlib.suppress(ssl.SSLError, ConnectionResetError),
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        received = tls.recv(100)
    assert received == b""


def _served_serial(pki: Pki, port: int, client: Issued) -> int:
    """The serial number of the certificate the server presents to a new connection."""
    context = ssl.create_default_context(cafile=str(pki.ca.ca_pem))
    context.load_cert_chain(client.cert, client.key)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def test_the_server_certificate_rotates_under_an_open_stream(pki: Pki, running: Running) -> None:
    cert = pki.ca.workload("b", "default")
    old_serial = serial_of(pki.server.cert)
    async with pki.channel(cert, running.port) as channel:
        client = SotwClient(channel, make_node("app-b"))
        await subscribe(client)
        assert await all_responses(client, 0.5)
        assert await asyncio.to_thread(_served_serial, pki, running.port, cert) == old_serial

        rotated = pki.ca.server("localhost", "127.0.0.1", stem="xds-next")
        new_serial = serial_of(rotated.cert)
        replace_atomically(rotated, pki.server)
        assert await asyncio.to_thread(_served_serial, pki, running.port, cert) == new_serial
        certificates = running.server.certificates
        assert certificates is not None and certificates.reloads == 1

        # the stream opened before the rotation is still served: a policy change reaches it
        running.publisher.publish(load(policy_text(b_port=3129)))
        updates = await all_responses(client, 1.0)
        assert any(b"3129" in update for update in updates)
        assert not client.ended.is_set()
        await client.close()


async def test_a_half_written_rotation_keeps_the_last_good_certificate(pki: Pki, running: Running) -> None:
    cert = pki.ca.workload("b", "default")
    old_serial = serial_of(pki.server.cert)
    rotated = pki.ca.server("localhost", "127.0.0.1", stem="xds-next")
    rotated.cert.replace(pki.server.cert)  # the certificate is new, the key still the old one
    assert await asyncio.to_thread(_served_serial, pki, running.port, cert) == old_serial
    rotated.key.replace(pki.server.key)  # now the pair is complete
    assert await asyncio.to_thread(_served_serial, pki, running.port, cert) == serial_of(pki.server.cert)


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_the_client_trust_bundle_rotates_under_an_open_stream(pki: Pki, running: Running) -> None:
    """A CA rotation as cert-manager's trust bundles do it: the new CA is added to the bundle, workloads move to it,
    the old CA is removed. New handshakes follow the file; a stream opened under the old CA is not dropped."""
    server_ca = pki.ca.ca_pem.read_bytes()  # what clients verify the server with, whatever the bundle holds

    def channel(client: Issued) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(server_ca, client.key.read_bytes(), client.cert.read_bytes())
        return grpc.aio.secure_channel(f"127.0.0.1:{running.port}", credentials)

    def write_bundle(*cas: SpiffeCA) -> None:
        staged = pki.directory / "bundle.next"
        staged.write_bytes(b"".join(ca.ca_pem.read_bytes() if ca is not pki.ca else server_ca for ca in cas))
        staged.replace(pki.ca.ca_pem)

    next_ca = SpiffeCA(pki.directory / "next", name="the next CA")
    old_client = pki.ca.workload("b", "default")
    new_client = next_ca.workload("b", "default")
    async with channel(new_client) as refused:
        assert await _health(refused) == "UNAVAILABLE"
    async with channel(old_client) as long_lived:
        stream = SotwClient(long_lived, make_node("app-b"))
        await subscribe(stream)
        assert await all_responses(stream, 0.5)

        write_bundle(pki.ca, next_ca)
        async with channel(new_client) as accepted:
            assert await _health(accepted) == "SERVING"
        write_bundle(next_ca)
        async with channel(old_client) as after_removal:
            assert await _health(after_removal) == "UNAVAILABLE"
        async with channel(new_client) as accepted:
            assert await _health(accepted) == "SERVING"

        running.publisher.publish(load(policy_text(b_port=3129)))  # the old stream is still served
        assert any(b"3129" in update for update in await all_responses(stream, 1.0))
        assert not stream.ended.is_set()
        await stream.close()

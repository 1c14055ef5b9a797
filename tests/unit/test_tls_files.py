"""The server's certificate files (xds/tls.py): unusable files are one-line errors at start, and the fetcher gRPC
calls at each handshake hands out a new configuration only when the files changed into a usable pair."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from egress_xds.xds.tls import ReloadingCertificates, ServerTls, TlsFilesError
from tests.support.spiffe import SpiffeCA, replace_atomically


@pytest.fixture
def ca(tmp_path: Path) -> SpiffeCA:
    return SpiffeCA(tmp_path / "pki")


def test_unusable_files_are_refused_at_start_with_the_file_named(ca: SpiffeCA, tmp_path: Path) -> None:
    server, other = ca.server("localhost"), ca.server("localhost", stem="other")
    with pytest.raises(TlsFilesError, match="key values mismatch"):
        ReloadingCertificates(ServerTls(server.cert, other.key))
    with pytest.raises(TlsFilesError, match=r"missing\.pem: no such file"):
        ReloadingCertificates(ServerTls(tmp_path / "missing.pem", server.key))
    with pytest.raises(TlsFilesError, match="no PEM CA certificate"):
        ReloadingCertificates(ServerTls(server.cert, server.key, client_ca=server.key))
    key = serialization.load_pem_private_key(server.key.read_bytes(), None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"x")
    )
    server.key.write_bytes(encrypted)
    with pytest.raises(TlsFilesError, match="unencrypted private key") as raised:
        ReloadingCertificates(ServerTls(server.cert, server.key))
    assert "PRIVATE KEY" not in str(raised.value)


def test_the_fetcher_changes_only_for_a_new_usable_pair(ca: SpiffeCA) -> None:
    server = ca.server("localhost")
    certificates = ReloadingCertificates(ServerTls(server.cert, server.key, client_ca=ca.ca_pem))
    assert certificates.fetch() is None  # nothing changed
    os.utime(server.cert)  # touched, same content
    assert certificates.fetch() is None and certificates.reloads == 0
    rotated = ca.server("localhost", stem="next")
    rotated.cert.replace(server.cert)  # half a rotation: the old key does not match
    assert certificates.fetch() is None and certificates.reloads == 0
    rotated.key.replace(server.key)
    assert certificates.fetch() is not None and certificates.reloads == 1
    assert certificates.fetch() is None
    replace_atomically(ca.server("localhost", stem="third"), server)
    assert certificates.fetch() is not None and certificates.reloads == 2
    server.key.unlink()  # a vanished file keeps the last good pair
    assert certificates.fetch() is None and certificates.reloads == 2


def test_an_unusable_rotation_is_reported_once_not_at_every_handshake(
    ca: SpiffeCA, caplog: pytest.LogCaptureFixture
) -> None:
    server = ca.server("localhost")
    certificates = ReloadingCertificates(ServerTls(server.cert, server.key))
    ca.server("localhost", stem="next").cert.replace(server.cert)  # the key does not match it
    for _ in range(5):
        assert certificates.fetch() is None
    warnings = [record for record in caplog.records if "cannot be used" in record.getMessage()]
    assert len(warnings) == 1 and "key values mismatch" in warnings[0].getMessage()

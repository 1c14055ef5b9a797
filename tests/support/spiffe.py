"""A throw-away SPIFFE-style PKI for tests: a CA, server certificates (DNS / IP SANs) and workload certificates
whose only SAN is a URI (`spiffe://TRUST-DOMAIN/ns/NS/sa/SA`), as Istio, SPIRE and csi-driver-spiffe issue them.

Made with `cryptography` (which trustme brings); EC P-256 keys, short validity. Files are world-readable on
purpose: Envoy runs as uid 1337 and must read them; they live in the test's temporary directory.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

TRUST_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Issued:
    """A leaf certificate (PEM chain) and its key, as files."""

    cert: Path
    key: Path


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


class SpiffeCA:
    """One CA; `ca_pem` is the trust bundle for both sides."""

    def __init__(self, directory: Path, name: str = "egress-xds test CA") -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = directory / f"{_stem(name)}.ca.pem"
        _write(self.ca_pem, self.cert.public_bytes(serialization.Encoding.PEM))

    def server(self, *names: str, stem: str = "server", directory: Path | None = None) -> Issued:
        """A server certificate for DNS names and IP addresses `names`."""
        sans: list[x509.GeneralName] = []
        for name in names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                sans.append(x509.DNSName(name))
        return self._issue(sans, stem, directory, ExtendedKeyUsageOID.SERVER_AUTH, common_name=names[0])

    def workload(
        self,
        namespace: str,
        service_account: str,
        *,
        stem: str | None = None,
        directory: Path | None = None,
        uri: str | None = None,
        extra_uris: tuple[str, ...] = (),
    ) -> Issued:
        """A client certificate whose URI SAN is the SPIFFE id of (namespace, service account), or `uri`."""
        uris = [uri or spiffe_id(namespace, service_account), *extra_uris]
        return self._issue(
            [x509.UniformResourceIdentifier(item) for item in uris],
            stem or f"{namespace}-{service_account}",
            directory,
            ExtendedKeyUsageOID.CLIENT_AUTH,
        )

    def _issue(
        self,
        sans: list[x509.GeneralName],
        stem: str,
        directory: Path | None,
        usage: x509.ObjectIdentifier,
        common_name: str | None = None,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)] if common_name else [])
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=2))
            .add_extension(x509.SubjectAlternativeName(sans), critical=not common_name)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        target = directory or self.directory
        target.mkdir(parents=True, exist_ok=True)
        target.chmod(0o755)
        cert_path = target / f"{stem}.crt.pem"
        key_path = target / f"{stem}.key.pem"
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        _write(key_path, key_pem)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        return Issued(cert=cert_path, key=key_path)


def replace_atomically(issued: Issued, into: Issued) -> None:
    """Move a new certificate and key over the files of `into`, each with rename (as a Secret volume update)."""
    os.replace(issued.key, into.key)
    os.replace(issued.cert, into.cert)


def serial_of(cert: Path) -> int:
    return x509.load_pem_x509_certificate(cert.read_bytes()).serial_number


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    path.chmod(0o644)


def _stem(name: str) -> str:
    return "".join(char if char.isalnum() else "-" for char in name)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)

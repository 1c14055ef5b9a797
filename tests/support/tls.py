"""A throw-away certificate authority for the lab (trustme), writing PEM files other users can read.

Keys are world-readable on purpose: they are generated per test run, live in the lab's temporary directory and must
be readable by squid (user ``proxy``) and by Envoy running as uid 1337.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertFiles:
    """A leaf certificate chain and its private key, as PEM files."""

    cert: Path
    key: Path


class LabCA:
    """One trustme CA per lab; ``ca_pem`` is what clients pass to ``curl --cacert`` or Envoy's validation context."""

    def __init__(self, directory: Path) -> None:
        """Create the CA and write its certificate to ``directory/ca.pem``."""
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o755)
        self.ca = trustme.CA(organization_name="egress-xds test lab")
        self.ca_pem = self.directory / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_pem))
        self.ca_pem.chmod(0o644)

    def issue(self, *identities: str, name: str | None = None) -> CertFiles:
        """Issue a server certificate for DNS names / IP addresses ``identities`` and write it as PEM files.

        ``name`` is the file stem (default: derived from the first identity).
        """
        if not identities:
            raise ValueError("issue() needs at least one DNS name or IP address")
        stem = name or re.sub(r"[^A-Za-z0-9.-]", "_", identities[0])
        leaf = self.ca.issue_cert(*identities)
        cert = self.directory / f"{stem}.crt.pem"
        key = self.directory / f"{stem}.key.pem"
        cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
        key.write_bytes(leaf.private_key_pem.bytes())
        cert.chmod(0o644)
        key.chmod(0o644)
        return CertFiles(cert=cert, key=key)

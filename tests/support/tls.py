"""A throw-away certificate authority for the lab (trustme), writing PEM files other users can read.

Keys are world-readable on purpose: they are generated per test run, live in the lab's temporary directory and must
be readable by squid (user ``proxy``) and by Envoy running as uid 1337.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import trustme

from egress_xds.translate.clusters import SYSTEM_CA_BUNDLE


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


@contextlib.contextmanager
def netns_system_trust_store(netns: str, *ca_pems: Path) -> Iterator[Path]:
    """Make ``ca_pems`` the whole system trust store of the programs later started with ``ip netns exec NETNS``.

    ``ip netns exec`` runs its program in a private mount namespace and bind-mounts every entry of
    ``/etc/netns/NETNS/`` over the same name in ``/etc``. So ``/etc/netns/NETNS/ssl`` replaces ``/etc/ssl`` there
    (and only there: the host and processes already running keep the real store). It holds the bundle egress-xds
    names (``SYSTEM_CA_BUNDLE``, ``/etc/ssl/certs/ca-certificates.crt``) with exactly these CAs, and a copy of
    the other files of the real ``/etc/ssl`` (``openssl.cnf``). Removed on exit.
    """
    relative = Path(SYSTEM_CA_BUNDLE).relative_to("/etc")
    real_dir = Path("/etc") / relative.parts[0]
    replacement = Path("/etc/netns") / netns / relative.parts[0]
    if replacement.exists():
        raise RuntimeError(f"{replacement} exists already: another trust store is in place for {netns}")
    bundle = Path("/etc/netns") / netns / relative
    bundle.parent.mkdir(parents=True)
    directory = bundle.parent
    while directory != replacement.parent:  # readable by Envoy's uid
        directory.chmod(0o755)
        directory = directory.parent
    bundle.write_bytes(b"".join(pem.read_bytes() for pem in ca_pems))
    bundle.chmod(0o644)
    for entry in real_dir.iterdir() if real_dir.is_dir() else []:
        if entry.is_file():
            shutil.copyfile(entry, replacement / entry.name)
            (replacement / entry.name).chmod(0o644)
    try:
        yield bundle
    finally:
        shutil.rmtree(replacement, ignore_errors=True)

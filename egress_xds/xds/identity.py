"""Who a stream's peer is, verified: the SPIFFE id in its client certificate, and what it replaces in the node.

With `serve --client-ca`, gRPC has verified the client's certificate chain at the handshake; the identity is the
certificate's one URI SAN, in Kubernetes' SPIFFE form `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`
(Istio, SPIRE, csi-driver-spiffe). Anything else (no URI SAN, two of them, another path, percent-escapes, a
port, a query) is refused: a lenient parse is how a certificate for one name ends up accepted as another.

The verified namespace and service account then replace what the node's metadata claims; a node that claims a
different one is refused (`IdentityMismatch`) rather than silently corrected, so a misconfigured or hostile
bootstrap shows up in logs and metrics.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from egress_xds.policy.node import NAMESPACE_METADATA_KEY, SERVICE_ACCOUNT_METADATA_KEY, Node

MAX_SPIFFE_ID_LENGTH = 2048  # the SPIFFE-ID spec's limit
_TRUST_DOMAIN = re.compile(r"[a-z0-9._-]{1,255}")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a namespace (RFC 1123 label)
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")  # a service account name
_PREFIX = "spiffe://"


class IdentityError(ValueError):
    """The peer's certificate does not carry an identity of the accepted form (the message quotes no secret)."""


@dataclass(frozen=True)
class SpiffeId:
    trust_domain: str
    namespace: str
    service_account: str

    def __str__(self) -> str:
        return f"{_PREFIX}{self.trust_domain}/ns/{self.namespace}/sa/{self.service_account}"


def parse_spiffe_id(text: str) -> SpiffeId:
    """`spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT`, exactly. Raises IdentityError."""
    if len(text) > MAX_SPIFFE_ID_LENGTH:
        raise IdentityError(f"SPIFFE id longer than {MAX_SPIFFE_ID_LENGTH} characters")
    if not text.startswith(_PREFIX):
        raise IdentityError("not a SPIFFE id (expected spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT)")
    trust_domain, slash, path = text[len(_PREFIX) :].partition("/")
    if not slash or not _TRUST_DOMAIN.fullmatch(trust_domain) or _is_ip(trust_domain):
        raise IdentityError("SPIFFE id: the trust domain must be lowercase letters, digits, '.', '-', '_'")
    parts = path.split("/")
    if len(parts) != 4 or parts[0] != "ns" or parts[2] != "sa":
        raise IdentityError("SPIFFE id: the path must be /ns/NAMESPACE/sa/SERVICE-ACCOUNT")
    namespace, service_account = parts[1], parts[3]
    if not _DNS_LABEL.fullmatch(namespace):
        raise IdentityError("SPIFFE id: the namespace is not a Kubernetes namespace name")
    if not _DNS_SUBDOMAIN.fullmatch(service_account) or len(service_account) > 253:
        raise IdentityError("SPIFFE id: the service account is not a Kubernetes service account name")
    return SpiffeId(trust_domain, namespace, service_account)


def identity_of(auth_context: Mapping[str, list[bytes]]) -> SpiffeId | None:
    """The SPIFFE id of a verified TLS peer (gRPC's `context.auth_context()`), or None without a certificate.

    gRPC lists every URI SAN of the peer certificate under `peer_uri`. Raises IdentityError when there is a
    certificate but not exactly one URI SAN of the SPIFFE form.
    """
    if auth_context.get("transport_security_type") != [b"ssl"] or not auth_context.get("x509_pem_cert"):
        return None
    uris = auth_context.get("peer_uri", [])
    if len(uris) != 1:
        raise IdentityError(f"the client certificate has {len(uris)} URI SANs (expected exactly one SPIFFE id)")
    try:
        text = uris[0].decode("ascii")
    except UnicodeDecodeError:
        raise IdentityError("the client certificate's URI SAN is not ASCII") from None
    return parse_spiffe_id(text)


@dataclass(frozen=True)
class IdentityMismatch(Exception):
    """A node's metadata claims another namespace (or service account) than its certificate."""

    field: str  # the metadata key: namespace or serviceAccount
    claimed: str
    verified: str

    def __str__(self) -> str:
        return f"node metadata claims {self.field} {self.claimed!r} but its certificate says {self.verified!r}"


def verified_node(node: Node, identity: SpiffeId) -> Node:
    """The node with the certificate's namespace and service account in place of the claimed ones.

    An absent claim is filled in; a different claim raises IdentityMismatch.
    """
    verified = {NAMESPACE_METADATA_KEY: identity.namespace, SERVICE_ACCOUNT_METADATA_KEY: identity.service_account}
    for key, value in verified.items():
        claimed = node.metadata.get(key)
        if claimed is not None and claimed != value:
            raise IdentityMismatch(key, claimed, value)
    return Node(id=node.id, metadata={**node.metadata, **verified})


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True

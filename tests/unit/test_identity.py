"""SPIFFE ids are parsed strictly (xds/identity.py), verified identities replace claimed node metadata, and the
admin write check (admin/write_access.py) reads gRPC's peer strings right."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.admin.write_access import WriteAccess, is_loopback_peer
from egress_xds.policy.node import Node
from egress_xds.xds.identity import (
    IdentityError,
    IdentityMismatch,
    SpiffeId,
    identity_of,
    parse_spiffe_id,
    verified_node,
)


def test_the_kubernetes_form_is_read() -> None:
    identity = parse_spiffe_id("spiffe://cluster.local/ns/payments/sa/checkout-v2")
    assert identity == SpiffeId("cluster.local", "payments", "checkout-v2")
    assert str(identity) == "spiffe://cluster.local/ns/payments/sa/checkout-v2"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "spiffe://",
        "spiffe://cluster.local",
        "spiffe://cluster.local/",
        "SPIFFE://cluster.local/ns/a/sa/b",
        "spiffe://Cluster.local/ns/a/sa/b",
        "spiffe://cluster.local:443/ns/a/sa/b",
        "spiffe://user@cluster.local/ns/a/sa/b",
        "spiffe://10.0.0.1/ns/a/sa/b",
        "spiffe://cluster.local/ns/a/sa/b/",
        "spiffe://cluster.local/ns/a/sa/b?x=1",
        "spiffe://cluster.local/ns/a/sa/b#f",
        "spiffe://cluster.local/ns/a%2Fb/sa/c",
        "spiffe://cluster.local/ns//sa/b",
        "spiffe://cluster.local/ns/a/sa/",
        "spiffe://cluster.local/ns/A/sa/b",
        "spiffe://cluster.local/ns/a.b/sa/c",
        "spiffe://cluster.local/ns/-a/sa/b",
        "spiffe://cluster.local/sa/b/ns/a",
        "spiffe://cluster.local/ns/a/sa/b/ns/c/sa/d",
        "spiffe://cluster.local/ns/../sa/b",
        "spiffe://cluster.local/ns/" + "a" * 64 + "/sa/b",
        "spiffe://cluster.local/ns/a/sa/b\n",
        "https://cluster.local/ns/a/sa/b",
    ],
)
def test_other_shapes_are_refused(text: str) -> None:
    with pytest.raises(IdentityError):
        parse_spiffe_id(text)


def _auth(*uris: bytes, cert: bool = True) -> dict[str, list[bytes]]:
    context: dict[str, list[bytes]] = {"transport_security_type": [b"ssl"]}
    if cert:
        context["x509_pem_cert"] = [b"-----BEGIN CERTIFICATE-----"]
    if uris:
        context["peer_uri"] = list(uris)
    return context


def test_identity_of_a_peer() -> None:
    assert identity_of(_auth(b"spiffe://td/ns/a/sa/b")) == SpiffeId("td", "a", "b")
    assert identity_of(_auth(cert=False)) is None  # TLS without a client certificate
    assert identity_of({}) is None  # plaintext
    with pytest.raises(IdentityError, match="0 URI SANs"):
        identity_of(_auth())
    with pytest.raises(IdentityError, match="2 URI SANs"):
        identity_of(_auth(b"spiffe://td/ns/a/sa/b", b"spiffe://td/ns/c/sa/d"))


def test_verified_values_replace_absent_claims_and_refuse_different_ones() -> None:
    identity = SpiffeId("td", "a", "web")
    node = verified_node(Node("n", {"labels.app": "web"}), identity)
    assert node.metadata == {"labels.app": "web", "namespace": "a", "serviceAccount": "web"}
    assert verified_node(Node("n", {"namespace": "a", "serviceAccount": "web"}), identity).metadata["namespace"] == "a"
    with pytest.raises(IdentityMismatch) as raised:
        verified_node(Node("n", {"namespace": "b"}), identity)
    assert (raised.value.field, raised.value.claimed, raised.value.verified) == ("namespace", "b", "a")
    with pytest.raises(IdentityMismatch):
        verified_node(Node("n", {"serviceAccount": "admin"}), identity)


@pytest.mark.parametrize(
    ("peer", "loopback"),
    [
        ("ipv4:127.0.0.1:5000", True),
        ("ipv4:127.9.8.7:5000", True),
        ("ipv6:[::1]:5000", True),
        ("ipv6:[::ffff:127.0.0.1]:5000", True),
        ("ipv4:10.250.0.2:5000", False),
        ("ipv6:[fe80::1%eth0]:5000", False),
        ("unix:/tmp/socket", False),
        ("ipv4:localhost:5000", False),
        ("", False),
    ],
)
def test_loopback_peers(peer: str, loopback: bool) -> None:
    assert is_loopback_peer(peer) is loopback


def test_reload_is_allowed_from_loopback_or_an_admin_identity_only() -> None:
    admin = SpiffeId("td", "ops", "egress-admin")
    access = WriteAccess(frozenset({admin}), verifies_clients=True)
    remote = "ipv4:10.250.0.2:5000"
    assert access.refusal("ipv4:127.0.0.1:1", {}) is None
    assert access.refusal(remote, _auth(str(admin).encode())) is None
    refusal = access.refusal(remote, _auth(b"spiffe://td/ns/ops/sa/other"))
    assert refusal is not None and "spiffe://td/ns/ops/sa/other" in refusal
    assert access.refusal(remote, {}) is not None
    assert access.refusal(remote, _auth(b"not spiffe")) is not None
    unverified = WriteAccess(frozenset({admin}), verifies_clients=False)  # no --client-ca: a cert is never trusted
    assert unverified.refusal(remote, _auth(str(admin).encode())) is not None


_LABEL = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
_SPIFFE = st.builds(SpiffeId, st.from_regex(r"\A[a-z][a-z0-9.-]{0,20}\Z"), _LABEL, _LABEL)


@pytest.mark.fuzz
@given(_SPIFFE)
def test_every_kubernetes_spiffe_id_reads_back_as_itself(identity: SpiffeId) -> None:
    assert parse_spiffe_id(str(identity)) == identity


@pytest.mark.fuzz
@given(_SPIFFE, st.integers(min_value=0), st.sampled_from(["/", "%", "?", "#", ":", "@", "A", " ", "\n", "\u0430"]))
def test_a_foreign_character_anywhere_in_an_id_is_refused(identity: SpiffeId, at: int, char: str) -> None:
    """None of these characters belongs in a Kubernetes SPIFFE id (a '/' adds or empties a path segment): wherever
    it is put, the id is refused, never read as some other identity."""
    text = str(identity)
    position = at % (len(text) + 1)
    with pytest.raises(IdentityError):
        parse_spiffe_id(text[:position] + char + text[position:])

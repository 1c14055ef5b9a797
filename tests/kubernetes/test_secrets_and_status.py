"""Secret keys -> credentials, and the Accepted condition: pure parts of the Kubernetes source."""

from __future__ import annotations

import base64

import pytest

from egress_xds.policy.proxy_url import basic_credentials
from egress_xds.sources.kubernetes.api import Kind, ResourceRef
from egress_xds.sources.kubernetes.conditions import DesiredStatus, shows, status_patch
from egress_xds.sources.kubernetes.credentials import credentials_from_secret
from tests.kubernetes.admission import crds
from tests.kubernetes.resources import egress_proxy, secret

WHERE = "Secret ns/creds"
REF = ResourceRef(Kind.EGRESS_PROXY, "ns", "corp")


def test_basic_auth_keys_and_a_trailing_newline_from_a_file() -> None:
    assert credentials_from_secret(secret("c", "ns", username="u", password="pw\n"), WHERE) == basic_credentials(
        "u", "pw"
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"username": "u"}, "missing key 'password'"),
        ({}, "missing key 'username' and 'password'"),
        ({"username": "a:b", "password": "p"}, "contains ':'"),
        ({"username": "u", "password": "p\r\nX-Injected: 1"}, "line break"),
        ({"proxyAuthorization": "Bearer x", "username": "u"}, "not both"),
        ({"proxyAuthorization": "  "}, "is empty"),
    ],
)
def test_bad_secrets_are_reported_without_values(values: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        credentials_from_secret(secret("c", "ns", **values), WHERE)
    text = str(caught.value)
    assert message in text and text.startswith(WHERE)
    for value in values.values():
        if len(value.strip()) > 2:
            assert value not in text


def test_data_that_is_not_base64() -> None:
    with pytest.raises(ValueError, match="key 'password' is not base64"):
        credentials_from_secret({"data": {"username": base64.b64encode(b"u").decode(), "password": "%%%"}}, WHERE)


def test_status_patch_keeps_transition_time_while_the_verdict_holds() -> None:
    accepted = DesiredStatus(REF, 1, True, "ok")
    first = status_patch(accepted, None, "2026-01-01T00:00:00Z")
    assert first["status"]["observedGeneration"] == 1
    assert shows(first, accepted)
    assert not shows(first, DesiredStatus(REF, 2, True, "ok")), "a new generation needs a new verdict"
    again = status_patch(DesiredStatus(REF, 2, True, "ok"), first["status"], "2026-01-02T00:00:00Z")
    assert again["status"]["conditions"][0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    flipped = status_patch(DesiredStatus(REF, 3, False, "bad"), again["status"], "2026-01-03T00:00:00Z")
    condition = flipped["status"]["conditions"][0]
    assert condition["lastTransitionTime"] == "2026-01-03T00:00:00Z"
    assert (condition["status"], condition["reason"], condition["type"]) == ("False", "Invalid", "Accepted")


def test_the_status_patch_is_what_the_crd_admits() -> None:
    """The status the server writes passes the CRD's status schema (enum, required keys, date-time, lengths),
    even with the longest message it writes."""
    for desired in (DesiredStatus(REF, 1, True, "ok"), DesiredStatus(REF, 7, False, "x" * 100_000)):
        patch = status_patch(desired, None, "2026-01-01T00:00:00Z")
        resource = egress_proxy("corp", "ns", httpsProxy="http://10.0.0.1:3128") | patch
        admitted = crds()["EgressProxy"].admit(resource).obj
        assert admitted["status"] == patch["status"], "nothing pruned"

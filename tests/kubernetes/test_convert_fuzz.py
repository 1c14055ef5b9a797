"""Fuzzing the Kubernetes conversion: any `spec` (valid policies mutated, random trees, deep nesting) gives a
policy or a ConfigError, never another exception, and no message carries a piece of a password."""

from __future__ import annotations

import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.policy import NodeMode
from egress_xds.policy.errors import ConfigError
from egress_xds.sources.kubernetes.api import Kind, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.convert import (
    POLICY_KEYS,
    has_workload_selector,
    policy_from_resource,
    referenced_secrets,
)
from egress_xds.translate import translate
from tests.kubernetes.resources import secret
from tests.support.policy_strategies import (
    leaked_secret,
    mutated_policy_documents,
    policy_bodies,
    wrong_values,
)

pytestmark = pytest.mark.fuzz

REFS = [ResourceRef(Kind.EGRESS_PROXY, "payments", "corp"), ResourceRef(Kind.CLUSTER_EGRESS_PROXY, "", "default")]
SECRETS: dict[SecretKey, Any] = {
    ("payments", "creds"): secret("creds", "payments", username="alice", password="Zq9Xw7Kv-k8s"),
    ("egress-xds", "creds"): secret("creds", "egress-xds", proxyAuthorization="Bearer Zq9Xw7Kv-token"),
    ("payments", "broken"): {"data": ["not", "a", "mapping"]},
    ("payments", "odd"): {"data": {"username": "!!!"}, "stringData": {"password": "x"}},
}


def _crd_form(body: dict[str, Any]) -> dict[str, Any]:
    """The file-format keys a resource carries, rule actions as the CRD writes them (`action: proxy` +
    `proxy: NAME`), without the server-file keys (refused in resources)."""
    spec = {key: value for key, value in body.items() if key in POLICY_KEYS}
    for rule in spec.get("rules", []):
        if isinstance(rule.get("action"), dict):
            rule["proxy"] = rule["action"]["proxy"]
            rule["action"] = "proxy"
    for proxy in spec.get("proxies", {}).values():
        if isinstance(proxy, dict):
            proxy.pop("caFile", None)
            proxy.pop("credentialsFile", None)
    return spec


secret_refs = st.one_of(
    st.none(),
    st.sampled_from([{"name": "creds"}, {"name": "creds", "namespace": "egress-xds"}, {"name": "broken"},
                     {"name": "odd"}, {"name": "missing"}, {"name": ["x"]}, {"name": "creds", "namespace": ["x"]}]),
    wrong_values(),
)  # fmt: skip
selectors = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {},
        optional={
            "matchLabels": st.dictionaries(st.text(max_size=5), st.one_of(st.text(max_size=5), wrong_values())),
            "matchExpressions": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "key": st.one_of(st.text(max_size=5), wrong_values()),
                        "operator": st.one_of(
                            st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]), wrong_values()
                        ),
                        "values": st.one_of(st.lists(st.text(max_size=5), max_size=2), wrong_values()),
                    },
                ),
                max_size=2,
            ),
        },
    ),
    wrong_values(),
)


@st.composite
def specs(draw: st.DrawFn) -> Any:
    spec: Any = _crd_form(draw(policy_bodies([])))
    if draw(st.booleans()):
        spec = draw(mutated_policy_documents(st.just(spec)))
    for key, values in (("credentialsSecretRef", secret_refs), ("workloadSelector", selectors)):
        value = draw(values)
        if value is not None and isinstance(spec, dict):
            spec[key] = value
    return spec if draw(st.integers(0, 9)) else draw(wrong_values())


@given(st.sampled_from(REFS), specs())
def test_any_spec_gives_a_policy_or_a_config_error(ref: ResourceRef, spec: Any) -> None:
    resource = {"spec": spec}
    start = time.monotonic()
    referenced_secrets(ref, resource)
    has_workload_selector(resource)
    try:
        policy = policy_from_resource(ref, resource, SECRETS)
    except ConfigError as error:
        assert leaked_secret(str(error)) is None, str(error)
    else:
        for mode in NodeMode:
            translate(policy, mode)
    assert time.monotonic() - start < 1.0


def test_a_deeply_nested_spec_is_refused() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(REFS[0], {"spec": {"rules": deep}}, SECRETS)
    assert str(caught.value) == f"EgressProxy payments/corp: spec.rules{'[0]' * 63}: nested deeper than 64 levels"

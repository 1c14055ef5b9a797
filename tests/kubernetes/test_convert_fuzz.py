"""Fuzzing the Kubernetes conversion: every valid policy, written as a resource, is admitted by the CRD and, in the
form the API server stores, converts to the policy the file format gives; any `spec` at all (valid policies mutated,
random trees, deep nesting: what a cluster may hold from before today's CRD, or a bug elsewhere) gives a policy or a
ConfigError, never another exception, and no message carries a piece of a password."""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.policy import NodeMode
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.keys import SPEC_POLICY_KEYS
from egress_xds.policy.model import EgressPolicy, NodeSelector, replace_proxies
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import LocatedDocument
from egress_xds.sources.kubernetes.api import Kind, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.convert import (
    has_workload_selector,
    policy_from_resource,
    referenced_secrets,
)
from egress_xds.translate import translate
from tests.kubernetes.admission import Rejected, admit_secret, crds
from tests.kubernetes.resources import cluster_egress_proxy, egress_proxy, secret
from tests.support.policy_strategies import (
    leaked_secret,
    mutated_policy_documents,
    plain_text,
    policy_bodies,
    wrong_values,
)

pytestmark = pytest.mark.fuzz

REFS = [ResourceRef(Kind.EGRESS_PROXY, "payments", "corp"), ResourceRef(Kind.CLUSTER_EGRESS_PROXY, "", "default")]
SECRETS: dict[SecretKey, Any] = {
    ("payments", "creds"): secret("creds", "payments", username="alice", password="Zq9Xw7Kv-k8s"),
    ("egress-xds", "creds"): secret("creds", "egress-xds", proxyAuthorization="Bearer Zq9Xw7Kv-token"),
    # Not what the API server stores (`data` is a map of base64): whatever the Secret store holds must not crash.
    ("payments", "broken"): {"data": ["not", "a", "mapping"]},
    ("payments", "odd"): {"data": {"username": "!!!"}, "stringData": {"password": "x"}},
}
STORED_SECRETS = {key: admit_secret(SECRETS[key]).obj for key in (("payments", "creds"), ("egress-xds", "creds"))}
SECRET_REFS = {REFS[0]: {"name": "creds"}, REFS[1]: {"name": "creds", "namespace": "egress-xds"}}


def _crd_form(body: dict[str, Any]) -> dict[str, Any]:
    """The file-format keys a resource carries, rule actions as the CRD writes them (`action: proxy` +
    `proxy: NAME`), without the server-file keys (refused in resources)."""
    spec = {key: value for key, value in body.items() if key in SPEC_POLICY_KEYS}
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
            "matchLabels": st.dictionaries(plain_text(max_size=5), st.one_of(plain_text(max_size=5), wrong_values())),
            "matchExpressions": st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "key": st.one_of(plain_text(max_size=5), wrong_values()),
                        "operator": st.one_of(
                            st.sampled_from(["In", "NotIn", "Exists", "DoesNotExist"]), wrong_values()
                        ),
                        "values": st.one_of(st.lists(plain_text(max_size=5), max_size=2), wrong_values()),
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
    start = time.process_time()  # CPU, not wall time: other work on a shared machine stretches the wall clock
    referenced_secrets(ref, resource)
    has_workload_selector(resource)
    try:
        policy = policy_from_resource(ref, resource, SECRETS)
    except ConfigError as error:
        assert leaked_secret(str(error)) is None, str(error)
    else:
        for mode in NodeMode:
            translate(policy, mode)
    assert time.process_time() - start < 1.0


def test_a_deeply_nested_spec_is_refused() -> None:
    deep: Any = "x"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(REFS[0], {"spec": {"rules": deep}}, SECRETS)
    assert str(caught.value) == f"EgressProxy payments/corp: spec.rules{'[0]' * 63}: nested deeper than 64 levels"


def _without_userinfo(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _endpoint_object(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"url": _without_userinfo(item)}
    return {**item, "url": _without_userinfo(item["url"])}


def _admissible(body: dict[str, Any]) -> dict[str, Any]:
    """A valid file-format body as a resource writes it: the CRD form (`_crd_form`), credentials out of the URLs
    (they go into the Secret), noProxy a list, every proxy and endpoint an object."""
    spec = _crd_form(copy.deepcopy(body))
    for key in ("httpProxy", "httpsProxy"):
        if "://" in spec.get(key, ""):
            spec[key] = _without_userinfo(spec[key])
    if not {"httpProxy", "httpsProxy", "proxies", "rules"} & set(spec):
        spec["rules"] = [{"action": "direct"}]  # the CRD refuses a spec of noProxy/rawTcp alone (a file takes it)
    if isinstance(spec.get("noProxy"), str):
        spec["noProxy"] = [spec["noProxy"]]
    for name, proxy in spec.get("proxies", {}).items():
        proxy = {"url": proxy} if isinstance(proxy, str) else proxy
        if "url" in proxy:
            proxy["url"] = _without_userinfo(proxy["url"])
        if "endpoints" in proxy:
            proxy["endpoints"] = [_endpoint_object(item) for item in proxy["endpoints"]]
        spec["proxies"][name] = proxy
    return spec


def _comparable(policy: EgressPolicy) -> EgressPolicy:
    """What the file and the resource must agree on: all but the name, source, selector and credentials."""
    without = {name: dataclasses.replace(proxy, credentials=None) for name, proxy in policy.proxies.items()}
    return dataclasses.replace(replace_proxies(policy, without), name="", source="", selector=NodeSelector())


@given(st.sampled_from(REFS), policy_bodies([]))
def test_every_valid_policy_as_a_resource_is_admitted_and_converts_as_the_file_does(
    ref: ResourceRef, body: dict[str, Any]
) -> None:
    spec = _admissible(body) | {"credentialsSecretRef": SECRET_REFS[ref]}
    resource = (
        egress_proxy(ref.name, ref.namespace, **spec) if ref.kind.namespaced else cluster_egress_proxy(ref.name, **spec)
    )
    try:
        admitted = crds()[ref.kind.value].admit(resource)
    except Rejected as error:
        raise AssertionError(f"the CRD refuses a valid policy: {error}") from None
    assert admitted.warnings == []
    policy = policy_from_resource(ref, admitted.obj, STORED_SECRETS)
    file_body = _admissible(body)  # the same content in a file: rule actions in the file form
    for rule in file_body.get("rules", []):
        if rule["action"] == "proxy":
            rule["action"] = {"proxy": rule.pop("proxy")}
    (from_file,) = parse_document(LocatedDocument("file", {"name": "kubernetes", **file_body})).policies
    assert _comparable(policy) == _comparable(from_file)
    assert all(proxy.credentials is not None for proxy in policy.proxies.values()), "every proxy gets the Secret's"
    for mode in NodeMode:
        translate(policy, mode)


@pytest.mark.parametrize("where", ["spec", "workloadSelector", "credentialsSecretRef"])
def test_an_unknown_key_shaped_like_a_url_never_shows_its_password(where: str) -> None:
    """Found by a long fuzz run: `spec.<key>: unknown field` quoted the key, which may be a pasted URL."""
    key = "http://alice:Zq9Xw7Kv"
    spec: dict[str, Any] = {"httpsProxy": "http://10.0.0.1:3128"}
    if where == "spec":
        spec[key] = 1
    elif where == "workloadSelector":
        spec["workloadSelector"] = {key: 1}
    else:
        spec["credentialsSecretRef"] = {"name": "creds", key: 1}
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(ResourceRef(Kind.EGRESS_PROXY, "shop", "corp"), {"spec": spec}, {})
    assert "Zq9Xw7Kv" not in str(caught.value)
    assert "unknown field" in str(caught.value)

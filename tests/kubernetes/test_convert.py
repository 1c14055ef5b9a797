"""One resource -> one policy (pure: no API server). Errors name `spec.` fields and never contain a credential.

The converter sees what the API server stores, so every fixture here goes through the CRD's admission first
(`stored`: pruned, defaulted, its `x-kubernetes-validations` checked, as tests/kubernetes/admission.py does it). The
converter's own errors are tested with values the CRD admits and only egress-xds can judge (a bad NO_PROXY entry, a
CIDR with host bits, a proxy name that is not defined, a Secret that does not exist). What the CRD refuses is
asserted as the 422 of the fake API server (`refusal`); test_admission.py holds the rest of those cases.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import SelectorOperator, ViaProxy
from egress_xds.policy.node import Node, selector_matches
from egress_xds.policy.proxy_url import basic_credentials
from egress_xds.sources.kubernetes.api import GROUP, VERSION, Kind, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.convert import policy_from_resource, referenced_secrets
from egress_xds.sources.kubernetes.credentials import credentials_from_secret
from tests.kubernetes.admission import Rejected, admit_secret, crds
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.conftest import TOKEN
from tests.kubernetes.resources import cluster_egress_proxy, egress_proxy, secret

REF = ResourceRef(Kind.EGRESS_PROXY, "payments", "corp")
CLUSTER_REF = ResourceRef(Kind.CLUSTER_EGRESS_PROXY, "", "default")
PROXY = "http://10.0.0.1:3128"
SECRETS: dict[SecretKey, Any] = {
    key: admit_secret(value).obj
    for key, value in {
        ("payments", "creds"): secret("creds", "payments", username="alice", password="pa55word"),
        ("payments", "bearer"): secret("bearer", "payments", proxyAuthorization="Bearer abc"),
        ("egress-xds", "cluster-creds"): secret("cluster-creds", "egress-xds", username="svc", password="pw"),
        ("payments", "broken"): secret("broken", "payments", username="alice"),
        ("kube-system", "creds"): secret("creds", "kube-system", username="root", password="n0t-yours"),
    }.items()
}


def stored(resource: dict[str, Any], *pruned: str) -> dict[str, Any]:
    """`resource` as the API server stores it: admitted by its CRD, exactly the fields `pruned` dropped (as the
    server's `unknown field` warnings name them), defaults applied. A fixture the CRD refuses fails the test: no
    converter in a cluster ever sees it."""
    try:
        admitted = crds()[resource["kind"]].admit(resource)
    except Rejected as error:
        pytest.fail(f"the CRD refuses this fixture, so production never converts it: {error}")
    assert admitted.warnings == [f'unknown field "{path}"' for path in pruned]
    return admitted.obj


def convert(ref: ResourceRef, resource: dict[str, Any], *pruned: str) -> Any:
    return policy_from_resource(ref, stored(resource, *pruned), SECRETS)


def errors(ref: ResourceRef, resource: dict[str, Any], *pruned: str) -> str:
    with pytest.raises(ConfigError) as caught:
        convert(ref, resource, *pruned)
    return "\n".join(f"{issue.path}: {issue.message}" for issue in caught.value.issues)


def refusal(api: FakeApiServer, resource: dict[str, Any]) -> list[dict[str, Any]]:
    """The causes of the 422 the fake API server answers a create of `resource` with (nothing is stored)."""
    kind = Kind(resource["kind"])
    where = f"namespaces/{resource['metadata']['namespace']}/" if kind.namespaced else ""
    request = urllib.request.Request(
        f"{api.url}/apis/{GROUP}/{VERSION}/{where}{kind.plural}",
        data=json.dumps(resource).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.code == 422
    status: dict[str, Any] = json.loads(caught.value.read())
    assert api.get(kind.plural, resource["metadata"]["name"], resource["metadata"].get("namespace", "")) is None
    return list(status["details"]["causes"])


def test_the_file_format_keys_become_a_policy_with_secret_credentials() -> None:
    resource = egress_proxy(
        "corp",
        "payments",
        httpProxy=PROXY,
        httpsProxy=PROXY,
        noProxy=["10.0.0.0/8", ".svc,.cluster.local"],  # an item may hold several, comma-separated
        rawTcp="direct",
        credentialsSecretRef={"name": "creds"},
        rules=[{"name": "db", "cidrs": ["192.0.2.0/24"], "action": "direct"}],
        workloadSelector={"matchLabels": {"app": "web"}},
    )
    policy = convert(REF, resource)
    assert policy.name == "egressproxy/payments/corp" and policy.source == "EgressProxy payments/corp"
    proxy = policy.https_proxy
    assert proxy.credentials == basic_credentials("alice", "pa55word")
    assert [entry.raw for entry in policy.no_proxy.entries] == ["10.0.0.0/8", ".svc", ".cluster.local"]
    assert [rule.name for rule in policy.rules] == ["db"]
    assert selector_matches(policy.selector, Node("p", {"namespace": "payments", "labels.app": "web"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "other", "labels.app": "web"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "payments"}))


def test_match_expressions_and_the_cluster_kind_requires_a_namespace() -> None:
    expressions = [{"key": "tier", "operator": "NotIn", "values": ["batch"]}, {"key": "app", "operator": "Exists"}]
    resource = cluster_egress_proxy(
        "default",
        httpsProxy=PROXY,
        credentialsSecretRef={"name": "cluster-creds", "namespace": "egress-xds"},
        workloadSelector={"matchExpressions": expressions},
    )
    assert stored(resource)["spec"]["workloadSelector"]["matchExpressions"][1]["values"] == [], "server default"
    policy = convert(CLUSTER_REF, resource)
    assert policy.selector.requirements[0].operator is SelectorOperator.EXISTS
    assert selector_matches(policy.selector, Node("p", {"namespace": "any", "labels.app": "x"}))
    assert not selector_matches(
        policy.selector, Node("p", {"namespace": "any", "labels.app": "x", "labels.tier": "batch"})
    )
    assert not selector_matches(policy.selector, Node("p", {"namespace": "any"}))
    assert not selector_matches(policy.selector, Node("vm-1", {"labels.app": "x"}))
    assert policy.https_proxy.credentials == basic_credentials("svc", "pw")
    assert referenced_secrets(CLUSTER_REF, stored(resource)) == {("egress-xds", "cluster-creds")}


def test_a_full_proxy_authorization_value() -> None:
    policy = convert(REF, egress_proxy("corp", "payments", httpsProxy=PROXY, credentialsSecretRef={"name": "bearer"}))
    credentials = policy.https_proxy.credentials
    assert credentials is not None and credentials.header_value == "Bearer abc"


def test_server_files_are_pruned_so_no_server_file_is_ever_read() -> None:
    """`credentialsFile` and `caFile` name files on the egress-xds server; the CRD does not declare them, so the API
    server drops them (with a warning to kubectl) and the policy reads neither."""
    proxies = {"p": {"url": "https://10.0.0.1:443", "credentialsFile": "/etc/shadow", "caFile": "/etc/ssl/ca.pem"}}
    resource = egress_proxy("corp", "payments", httpsProxy="p", proxies=proxies)
    policy = convert(REF, resource, "spec.proxies.p.credentialsFile", "spec.proxies.p.caFile")
    assert (policy.proxies["p"].ca_file, policy.proxies["p"].credentials) == (None, None)


def test_an_egress_proxy_reads_secrets_of_its_own_namespace_only() -> None:
    """An EgressProxy's credentialsSecretRef has no `namespace` in the CRD: the server prunes it, and the Secret is
    the one of the resource's namespace, never kube-system's."""
    resource = egress_proxy(
        "corp", "payments", httpsProxy=PROXY, credentialsSecretRef={"name": "creds", "namespace": "kube-system"}
    )
    assert referenced_secrets(REF, stored(resource, "spec.credentialsSecretRef.namespace")) == {("payments", "creds")}
    policy = convert(REF, resource, "spec.credentialsSecretRef.namespace")
    assert policy.https_proxy.credentials == basic_credentials("alice", "pa55word")


def test_every_problem_is_reported_with_its_spec_path() -> None:
    """Values the CRD admits and only egress-xds can judge; `surprise` is pruned by the server, never reported."""
    resource = egress_proxy(
        "corp",
        "payments",
        httpProxy="http://10.0.0.1:99999",
        httpsProxy="nowhere",
        noProxy=["10.0.0.0/33", "a..b"],
        credentialsSecretRef={"name": "broken"},
        rules=[{"action": "proxy", "proxy": "missing"}, {"cidrs": ["192.0.2.1/40"], "action": "direct"}],
        proxies={"p": {"credentialsSecretRef": {"name": "absent"}, "url": PROXY}},
        surprise=True,
    )
    text = errors(REF, resource, "spec.surprise")
    expected = [
        "spec.credentialsSecretRef: Secret payments/broken: missing key 'password'",
        "spec.proxies.p.credentialsSecretRef: Secret payments/absent not found",
        "spec.httpProxy: port 99999 out of range",
        "spec.httpsProxy: 'nowhere' is neither a URL (http://host:port) nor a proxy defined in 'proxies'",
        "spec.noProxy[0]: entry 0 '10.0.0.0/33': prefix length 33 out of range",
        "spec.noProxy[1]: entry 1 'a..b': empty label",
        "spec.rules[0].action.proxy: unknown proxy 'missing'",
        "spec.rules[1].cidrs[0]: prefix length 40 out of range 0-32 for IPv4",
    ]
    lines = text.split("\n")
    assert len(lines) == len(expected), text
    for line in expected:
        assert any(reported.startswith(line) for reported in lines), (line, text)
    assert "surprise" not in text


def test_rule_actions_in_the_crd_form() -> None:
    rules = [
        {"name": "partner", "domains": ["api.partner.example"], "action": "proxy", "proxy": "partner"},
        {"name": "db", "cidrs": ["192.0.2.0/24"], "action": "direct"},
        {"name": "block", "domains": ["*.ads.example"], "ports": [443], "action": "deny"},
    ]
    spec = {"proxies": {"partner": {"url": "http://10.0.0.9:3128"}}, "httpsProxy": PROXY, "rules": rules}
    policy = convert(REF, egress_proxy("corp", "payments", **spec))
    assert [str(rule.action) for rule in policy.rules] == ["proxy partner", "direct", "deny"]


# What the CRD refuses never reaches the converter; test_admission.py covers string noProxy (test_schema_errors),
# an empty spec (SPEC_RULE), `proxy` without/with the wrong action (ACTION_RULE), In/NotIn without values and
# Exists with values (SELECTOR_RULE) and userinfo in every URL field (NO_USERINFO_RULE). The rest is here.
@pytest.mark.parametrize(
    ("resource", "field", "reason"),
    [
        (cluster_egress_proxy("default", httpsProxy=PROXY, credentialsSecretRef={"name": "x"}),
         "spec.credentialsSecretRef.namespace", "FieldValueRequired"),
        (cluster_egress_proxy("default", httpsProxy="p", proxies={"p": {"url": PROXY, "credentialsSecretRef": {
            "name": "x"}}}), "spec.proxies.p.credentialsSecretRef.namespace", "FieldValueRequired"),
        (egress_proxy("corp", "payments", httpsProxy=PROXY, workloadSelector={"matchExpressions": [
            {"operator": "Exists"}]}), "spec.workloadSelector.matchExpressions[0].key", "FieldValueRequired"),
        (egress_proxy("corp", "payments", httpsProxy=PROXY, workloadSelector={"matchExpressions": [
            {"key": "app", "operator": "Near", "values": []}]}), "spec.workloadSelector.matchExpressions[0].operator",
         "FieldValueNotSupported"),
        (egress_proxy("corp", "payments", rules=[{"action": {"proxy": "missing"}}]), "spec.rules[0].action",
         "FieldValueTypeInvalid"),  # the file form of a proxy action
        (egress_proxy("corp", "payments", httpsProxy="p", proxies={"p": {"endpoints": [PROXY]}}),
         "spec.proxies.p.endpoints[0]", "FieldValueTypeInvalid"),  # an endpoint is {url, priority}
    ],
)  # fmt: skip
def test_the_crd_refuses_what_the_converter_never_sees(
    api: FakeApiServer, resource: dict[str, Any], field: str, reason: str
) -> None:
    causes = refusal(api, resource)
    assert (field, reason) in [(cause["field"], cause["reason"]) for cause in causes], causes


def test_legacy_userinfo_stored_before_the_crd_refused_it_is_refused_without_repeating_it() -> None:
    """LEGACY: the CEL rules refusing `user:pass@` came after the first CRD, and a CRD update does not re-validate
    stored objects, so the API server may still hand out such a resource. It deliberately skips `stored`."""
    proxies = {"p": {"endpoints": [{"url": "http://u:topsecret@10.0.0.2:1"}]}, "q": {"url": "http://u:topsecret@h:1"}}
    resource = egress_proxy("corp", "payments", httpsProxy="http://bob:hunter2@10.0.0.1:3128", proxies=proxies)
    with pytest.raises(Rejected):
        crds()["EgressProxy"].admit(resource)  # today's CRD refuses it
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(REF, resource, SECRETS)
    text = str(caught.value)
    for path in ("spec.httpsProxy", "spec.proxies.p.endpoints[0].url", "spec.proxies.q.url"):
        assert f"{path}: credentials in the URL are not allowed" in text, text
    assert "hunter2" not in text and "bob" not in text and "topsecret" not in text


@pytest.mark.parametrize(
    "shape",
    [{"data": ["not", "a", "mapping"]}, {"data": "dXNlcm5hbWU="}, {"stringData": [["password", "x"]]},
     {"data": {1: "YQ=="}}],
)  # fmt: skip
def test_a_secret_whose_data_is_not_a_mapping_is_an_issue_not_a_crash(shape: dict[str, Any]) -> None:
    """Not a Secret the API server would store (its `data` is a map of string to base64), but whatever the Secret
    store hands over must give a message, never a traceback."""
    with pytest.raises(ValueError, match=r"^Secret payments/odd: expected (data|stringData) to be a mapping"):
        credentials_from_secret(shape, "Secret payments/odd")
    resource = egress_proxy("corp", "payments", httpsProxy=PROXY, credentialsSecretRef={"name": "odd"})
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(REF, stored(resource), {("payments", "odd"): shape})
    assert "spec.credentialsSecretRef: Secret payments/odd: expected" in str(caught.value)


def test_secret_credentials_reach_every_reference_to_the_proxy() -> None:
    """The model is resolved (a rule holds its proxy, not a name): the credentials from a Secret must reach the
    rules and the defaults that use the proxy, not only `proxies`, or a rule's tunnel would go without them."""
    resource = egress_proxy(
        "corp",
        "payments",
        httpsProxy="partner",
        proxies={"partner": {"url": "http://10.0.0.2:3128", "credentialsSecretRef": {"name": "creds"}}},
        rules=[{"domains": ["api.partner.example"], "action": "proxy", "proxy": "partner"}],
    )
    policy = convert(REF, resource)
    (rule,) = policy.rules
    assert isinstance(rule.action, ViaProxy)
    assert rule.action.proxy is policy.proxies["partner"] is policy.https_proxy
    assert rule.action.proxy.credentials == basic_credentials("alice", "pa55word")


def test_service_accounts_select_pods_running_as_one_of_them() -> None:
    resource = egress_proxy(
        "corp", "payments", httpsProxy=PROXY, serviceAccounts=["checkout", "refunds"], workloadSelector={}
    )
    policy = convert(REF, resource)
    assert selector_matches(policy.selector, Node("p", {"namespace": "payments", "serviceAccount": "checkout"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "payments", "serviceAccount": "web"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "payments"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "other", "serviceAccount": "checkout"}))
    cluster = convert(CLUSTER_REF, cluster_egress_proxy("default", httpsProxy=PROXY, serviceAccounts=["checkout"]))
    assert selector_matches(cluster.selector, Node("p", {"namespace": "any", "serviceAccount": "checkout"}))


def test_an_empty_service_accounts_list_is_refused_at_admission() -> None:
    with pytest.raises(Rejected):
        crds()["EgressProxy"].admit(egress_proxy("corp", "payments", httpsProxy=PROXY, serviceAccounts=[]))

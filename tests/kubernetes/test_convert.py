"""One resource -> one policy (pure: no API server). Errors name `spec.` fields and never contain a credential."""

from __future__ import annotations

from typing import Any

import pytest

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import SelectorOperator
from egress_xds.policy.node import Node, selector_matches
from egress_xds.policy.proxy_url import basic_credentials
from egress_xds.sources.kubernetes.api import Kind, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.convert import policy_from_resource, referenced_secrets
from tests.kubernetes.resources import cluster_egress_proxy, egress_proxy, secret

REF = ResourceRef(Kind.EGRESS_PROXY, "payments", "corp")
CLUSTER_REF = ResourceRef(Kind.CLUSTER_EGRESS_PROXY, "", "default")
SECRETS: dict[SecretKey, Any] = {
    ("payments", "creds"): secret("creds", "payments", username="alice", password="pa55word"),
    ("payments", "bearer"): secret("bearer", "payments", proxyAuthorization="Bearer abc"),
    ("egress-xds", "cluster-creds"): secret("cluster-creds", "egress-xds", username="svc", password="pw"),
    ("payments", "broken"): secret("broken", "payments", username="alice"),
}


def errors(ref: ResourceRef, resource: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        policy_from_resource(ref, resource, SECRETS)
    return "\n".join(f"{issue.path}: {issue.message}" for issue in caught.value.issues)


def test_the_file_format_keys_become_a_policy_with_secret_credentials() -> None:
    resource = egress_proxy(
        "corp",
        "payments",
        httpProxy="http://10.0.0.1:3128",
        httpsProxy="http://10.0.0.1:3128",
        noProxy="10.0.0.0/8,.svc",
        rawTcp="direct",
        credentialsSecretRef={"name": "creds"},
        rules=[{"name": "db", "cidrs": ["192.0.2.0/24"], "action": "direct"}],
        workloadSelector={"matchLabels": {"app": "web"}},
    )
    policy = policy_from_resource(REF, resource, SECRETS)
    assert policy.name == "egressproxy/payments/corp" and policy.source == "EgressProxy payments/corp"
    proxy = policy.proxies[policy.https_proxy or ""]
    assert proxy.credentials == basic_credentials("alice", "pa55word")
    assert [rule.name for rule in policy.rules] == ["db"]
    assert selector_matches(policy.selector, Node("p", {"namespace": "payments", "labels.app": "web"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "other", "labels.app": "web"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "payments"}))


def test_match_expressions_and_the_cluster_kind_requires_a_namespace() -> None:
    resource = cluster_egress_proxy(
        "default",
        httpsProxy="http://10.0.0.1:3128",
        credentialsSecretRef={"name": "cluster-creds", "namespace": "egress-xds"},
        workloadSelector={"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["batch"]}]},
    )
    policy = policy_from_resource(CLUSTER_REF, resource, SECRETS)
    assert policy.selector.requirements[0].operator is SelectorOperator.EXISTS
    assert selector_matches(policy.selector, Node("p", {"namespace": "any"}))
    assert not selector_matches(policy.selector, Node("p", {"namespace": "any", "labels.tier": "batch"}))
    assert not selector_matches(policy.selector, Node("vm-1", {}))
    assert policy.proxies[policy.https_proxy or ""].credentials == basic_credentials("svc", "pw")
    assert referenced_secrets(CLUSTER_REF, resource) == {("egress-xds", "cluster-creds")}


def test_a_full_proxy_authorization_value() -> None:
    resource = egress_proxy(
        "corp", "payments", httpsProxy="http://10.0.0.1:3128", credentialsSecretRef={"name": "bearer"}
    )
    policy = policy_from_resource(REF, resource, SECRETS)
    credentials = policy.proxies[policy.https_proxy or ""].credentials
    assert credentials is not None and credentials.header_value == "Bearer abc"


def test_credentials_in_a_url_are_refused_without_repeating_them() -> None:
    text = errors(REF, egress_proxy("corp", "payments", httpsProxy="http://bob:hunter2@10.0.0.1:3128"))
    assert "spec.httpsProxy: credentials in the URL are not allowed" in text
    assert "hunter2" not in text and "bob" not in text
    proxies = {"p": {"endpoints": ["http://u:topsecret@10.0.0.1:1", {"url": "http://u:topsecret@10.0.0.2:1"}]}}
    text = errors(REF, egress_proxy("corp", "payments", httpsProxy="p", proxies=proxies))
    assert "spec.proxies.p.endpoints[0]" in text and "spec.proxies.p.endpoints[1].url" in text
    assert "topsecret" not in text


def test_server_files_are_refused() -> None:
    proxies = {"p": {"url": "https://10.0.0.1:443", "credentialsFile": "/etc/shadow", "caFile": "/etc/ssl/ca.pem"}}
    text = errors(REF, egress_proxy("corp", "payments", httpsProxy="p", proxies=proxies))
    assert "spec.proxies.p.credentialsFile: not allowed in a Kubernetes resource" in text
    assert "spec.proxies.p.caFile: not allowed" in text


def test_secrets_of_another_namespace_cannot_be_named() -> None:
    resource = egress_proxy(
        "corp",
        "payments",
        httpsProxy="http://10.0.0.1:3128",
        credentialsSecretRef={"name": "x", "namespace": "kube-system"},
    )
    assert "spec.credentialsSecretRef.namespace: a Secret must be in the resource's own namespace" in errors(
        REF, resource
    )
    assert "must say which namespace" in errors(
        CLUSTER_REF,
        cluster_egress_proxy("default", httpsProxy="http://10.0.0.1:3128", credentialsSecretRef={"name": "x"}),
    )


def test_every_problem_is_reported_with_its_spec_path() -> None:
    resource = egress_proxy(
        "corp",
        "payments",
        httpsProxy="nowhere",
        noProxy="10.0.0.0/33",
        credentialsSecretRef={"name": "broken"},
        rules=[{"action": {"proxy": "missing"}}],
        workloadSelector={"matchExpressions": [{"key": "app", "operator": "Near", "values": []}]},
        surprise=True,
    )
    text = errors(REF, resource)
    for expected in (
        "spec.surprise: unknown field",
        "spec.httpsProxy: 'nowhere' is neither a URL",
        "spec.noProxy",
        "spec.rules[0].action.proxy: unknown proxy 'missing'",
        "spec.credentialsSecretRef: Secret payments/broken: missing key 'password'",
        "spec.workloadSelector.matchExpressions[0].operator: expected one of In, NotIn, Exists, DoesNotExist",
    ):
        assert expected in text, text


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ({"key": "app", "operator": "In", "values": []}, "In needs at least one value"),
        ({"key": "app", "operator": "Exists", "values": ["x"]}, "Exists takes no values"),
        ({"operator": "Exists"}, "non-empty key"),
    ],
)
def test_bad_match_expressions(expression: dict[str, Any], message: str) -> None:
    resource = egress_proxy(
        "corp", "payments", httpsProxy="http://10.0.0.1:3128", workloadSelector={"matchExpressions": [expression]}
    )
    assert message in errors(REF, resource)


def test_an_empty_spec_is_invalid_not_everything_direct() -> None:
    assert "empty policy" in errors(REF, egress_proxy("corp", "payments"))


def test_rule_actions_in_the_crd_form() -> None:
    spec = {"proxies": {"partner": {"url": "http://10.0.0.9:3128"}}, "httpsProxy": "http://10.0.0.1:3128"}
    rules = [
        {"name": "partner", "domains": ["api.partner.example"], "action": "proxy", "proxy": "partner"},
        {"name": "db", "cidrs": ["192.0.2.0/24"], "action": "direct"},
    ]
    policy = policy_from_resource(REF, egress_proxy("corp", "payments", rules=rules, **spec), SECRETS)
    assert [str(rule.action) for rule in policy.rules] == ["proxy partner", "direct"]
    bad = [{"action": "proxy"}, {"action": "deny", "proxy": "partner"}]
    text = errors(REF, egress_proxy("corp", "payments", rules=bad, **spec))
    assert "spec.rules[0].proxy: action proxy needs proxy: NAME" in text
    assert "spec.rules[1].proxy: give proxy only with action: proxy" in text
    assert text.count("\n") == 1, "one message per problem"

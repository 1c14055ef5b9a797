"""The fake API server admits like the real one: every CEL rule of deploy/crds/ accepts and rejects through a real
create over HTTP, the schema prunes, defaults and validates (also status writes), and a rejection is the server's
422 `Status`, cause by cause."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from egress_xds.durations import PATTERN as DURATION_PATTERN
from egress_xds.sources.kubernetes.api import GROUP, VERSION, Kind
from egress_xds.sources.kubernetes.client import ClientSettings, api_client
from tests.kubernetes.admission import Rejected, cel_errors, crds
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.conftest import TOKEN
from tests.kubernetes.resources import cluster_egress_proxy, egress_proxy

PROXY = "http://10.0.0.1:3128"
SPEC_RULE = "has(self.httpProxy) || has(self.httpsProxy) || has(self.proxies) || has(self.rules)"
PROXY_RULE = "has(self.url) != has(self.endpoints)"
ACTION_RULE = "self.action == 'proxy' ? has(self.proxy) : !has(self.proxy)"
SELECTOR_RULE = "self.operator in ['In', 'NotIn'] ? size(self.values) > 0 : size(self.values) == 0"
NO_USERINFO_RULE = "!self.contains('@')"
NAME_OR_URL_RULE = r"self.matches(r'^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?|https?://[^/\s]+/?)$')"
URL_RULE = r"self.matches(r'^https?://[^/\s]+/?$')"
PROXY_NAMES_RULE = "self.all(name, name.matches('^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$'))"
# The rules on strings; a failing CEL rule names only the value's type, never the value (no password in a 422).
STRING_RULES = {NO_USERINFO_RULE, NAME_OR_URL_RULE, URL_RULE}


def expressions(*items: dict[str, Any]) -> dict[str, Any]:
    return {"httpsProxy": PROXY, "workloadSelector": {"matchExpressions": list(items)}}


# (rule, spec, None when accepted / the field of the rejection); the message is the rule's own `message`.
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    (SPEC_RULE, {"httpsProxy": PROXY}, None),
    (SPEC_RULE, {"httpProxy": PROXY}, None),
    (SPEC_RULE, {"rules": [{"action": "direct"}]}, None),
    (SPEC_RULE, {"proxies": {"corp": {"url": PROXY}}}, None),
    (SPEC_RULE, {}, "spec"),
    (SPEC_RULE, {"noProxy": [".svc"], "rawTcp": "direct"}, "spec"),
    (PROXY_RULE, {"httpsProxy": "corp", "proxies": {"corp": {"url": PROXY}}}, None),
    (PROXY_RULE, {"httpsProxy": "corp", "proxies": {"corp": {"endpoints": [{"url": PROXY}]}}}, None),
    (PROXY_RULE, {"httpsProxy": "corp", "proxies": {"corp": {"sni": "proxy.corp"}}}, "spec.proxies[corp]"),
    (
        PROXY_RULE,
        {"httpsProxy": "corp", "proxies": {"corp": {"url": PROXY, "endpoints": [{"url": PROXY}]}}},
        "spec.proxies[corp]",
    ),
    (ACTION_RULE, {"rules": [{"action": "proxy", "proxy": "corp"}], "proxies": {"corp": {"url": PROXY}}}, None),
    (ACTION_RULE, {"rules": [{"action": "deny", "domains": ["x.example"]}]}, None),
    (ACTION_RULE, {"rules": [{"action": "direct"}, {"action": "proxy"}]}, "spec.rules[1]"),
    (ACTION_RULE, {"rules": [{"action": "direct", "proxy": "corp"}]}, "spec.rules[0]"),
    (SELECTOR_RULE, expressions({"key": "app", "operator": "In", "values": ["web"]}), None),
    (SELECTOR_RULE, expressions({"key": "app", "operator": "Exists"}), None),  # values defaults to []
    (SELECTOR_RULE, expressions({"key": "app", "operator": "DoesNotExist", "values": []}), None),
    (SELECTOR_RULE, expressions({"key": "app", "operator": "NotIn"}), "spec.workloadSelector.matchExpressions[0]"),
    (
        SELECTOR_RULE,
        expressions(
            {"key": "a", "operator": "In", "values": ["x"]}, {"key": "b", "operator": "Exists", "values": ["y"]}
        ),
        "spec.workloadSelector.matchExpressions[1]",
    ),
    (NO_USERINFO_RULE, {"httpsProxy": PROXY, "httpProxy": "corp", "proxies": {"corp": {"url": PROXY}}}, None),
    (NO_USERINFO_RULE, {"httpsProxy": "http://bob:hunter2@10.0.0.1:3128"}, "spec.httpsProxy"),
    (NO_USERINFO_RULE, {"httpProxy": "http://bob@10.0.0.1:3128"}, "spec.httpProxy"),
    (NO_USERINFO_RULE, {"httpsProxy": "p", "proxies": {"p": {"url": "http://bob:pw@10.0.0.1"}}}, "spec.proxies[p].url"),
    (
        NO_USERINFO_RULE,
        {"httpsProxy": "p", "proxies": {"p": {"endpoints": [{"url": PROXY}, {"url": "https://bob@10.0.0.2"}]}}},
        "spec.proxies[p].endpoints[1].url",
    ),
    (NAME_OR_URL_RULE, {"httpsProxy": "https://proxy.corp.example:8443/"}, None),
    (NAME_OR_URL_RULE, {"httpsProxy": "ftp://10.0.0.1:21"}, "spec.httpsProxy"),
    (NAME_OR_URL_RULE, {"httpProxy": "Corp_Proxy"}, "spec.httpProxy"),
    (URL_RULE, {"httpsProxy": "p", "proxies": {"p": {"endpoints": [{"url": "http://10.0.0.2:3128"}]}}}, None),
    (URL_RULE, {"httpsProxy": "p", "proxies": {"p": {"url": "10.0.0.1:3128"}}}, "spec.proxies[p].url"),
    (
        URL_RULE,
        {"httpsProxy": "p", "proxies": {"p": {"endpoints": [{"url": "proxy"}]}}},
        "spec.proxies[p].endpoints[0].url",
    ),
    (PROXY_NAMES_RULE, {"httpsProxy": "corp-1", "proxies": {"corp-1": {"url": PROXY}}}, None),
    (PROXY_NAMES_RULE, {"httpsProxy": PROXY, "proxies": {"Corp": {"url": PROXY}}}, "spec.proxies"),
    (PROXY_NAMES_RULE, {"httpsProxy": PROXY, "proxies": {"corp-": {"url": PROXY}}}, "spec.proxies"),
]


def all_rules() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()

    def walk(node: dict[str, Any]) -> None:
        for rule in node.get("x-kubernetes-validations") or []:
            found.add((rule["rule"], rule.get("message", "")))
        for child in (node.get("properties") or {}).values():
            walk(child)
        for key in ("additionalProperties", "items"):
            if isinstance(node.get(key), dict):
                walk(node[key])

    for crd in crds().values():
        walk(crd.schema)
    return found


def test_every_cel_rule_of_the_crds_has_accepting_and_rejecting_cases() -> None:
    rules = {rule for rule, _ in all_rules()}
    assert {rule for rule, _, rejected in CASES if rejected is None} == rules
    assert {rule for rule, _, rejected in CASES if rejected is not None} == rules


@pytest.fixture
def custom(kubeconfig: Path) -> Iterator[client.CustomObjectsApi]:
    api = api_client(ClientSettings(kubeconfig=kubeconfig), {})
    yield client.CustomObjectsApi(api)
    api.close()


def create(custom: client.CustomObjectsApi, kind: Kind, spec: dict[str, Any]) -> dict[str, Any]:
    spec = json.loads(json.dumps(spec))
    if kind is Kind.EGRESS_PROXY:
        created: dict[str, Any] = custom.create_namespaced_custom_object(
            GROUP, VERSION, "shop", kind.plural, egress_proxy("corp", "shop", **spec)
        )
    else:
        created = custom.create_cluster_custom_object(GROUP, VERSION, kind.plural, cluster_egress_proxy("corp", **spec))
    return created


def rejection(custom: client.CustomObjectsApi, kind: Kind, spec: dict[str, Any]) -> dict[str, Any]:
    with pytest.raises(ApiException) as caught:
        create(custom, kind, spec)
    assert caught.value.status == 422
    status: dict[str, Any] = json.loads(caught.value.body)
    return status


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.value)
@pytest.mark.parametrize(("rule", "spec", "rejected"), CASES)
def test_cel_rule(
    custom: client.CustomObjectsApi, kind: Kind, rule: str, spec: dict[str, Any], rejected: str | None
) -> None:
    if rejected is None:
        create(custom, kind, spec)
        return
    message = dict(all_rules())[rule]
    value_type = "string" if rule in STRING_RULES else "object"
    status = rejection(custom, kind, spec)
    assert status["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": f'Invalid value: "{value_type}": {message}', "field": rejected}
    ]
    assert (
        status["message"]
        == f'{kind.value}.{GROUP} "corp" is invalid: {rejected}: Invalid value: "{value_type}": {message}'
    )


def test_a_rejection_is_the_servers_status_body(custom: client.CustomObjectsApi, api: FakeApiServer) -> None:
    status = rejection(
        custom, Kind.EGRESS_PROXY, {"httpsProxy": "http://bob:pw@10.0.0.1:3128", "rawTcp": "sideways", "rules": []}
    )
    message = dict(all_rules())[NO_USERINFO_RULE]
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'EgressProxy.{GROUP} "corp" is invalid: ['
        'spec.rawTcp: Unsupported value: "sideways": supported values: "tunnel", "direct", "deny", '
        f'spec.httpsProxy: Invalid value: "string": {message}]',
        "reason": "Invalid",
        "details": {
            "name": "corp",
            "group": GROUP,
            "kind": "EgressProxy",
            "causes": [
                {
                    "reason": "FieldValueNotSupported",
                    "message": 'Unsupported value: "sideways": supported values: "tunnel", "direct", "deny"',
                    "field": "spec.rawTcp",
                },
                {
                    "reason": "FieldValueInvalid",
                    "message": f'Invalid value: "string": {message}',
                    "field": "spec.httpsProxy",
                },
            ],
        },
        "code": 422,
    }
    assert api.get("egressproxies", "corp", "shop") is None, "nothing stored"


@pytest.mark.parametrize(
    ("spec", "field", "reason", "body"),
    [
        ({"httpsProxy": PROXY, "noProxy": ".svc,.cluster.local"}, "spec.noProxy", "FieldValueTypeInvalid",
         'Invalid value: "string": spec.noProxy in body must be of type array: "string"'),
        ({"rules": [{"action": "direct", "ports": [70000]}]}, "spec.rules[0].ports[0]", "FieldValueInvalid",
         "Invalid value: 70000: spec.rules[0].ports[0] in body should be less than or equal to 65535"),
        ({"rules": [{"domains": ["x.example"]}]}, "spec.rules[0].action", "FieldValueRequired", "Required value"),
        ({"httpsProxy": "p", "proxies": {"p": {"endpoints": []}}}, "spec.proxies.p.endpoints", "FieldValueInvalid",
         "Invalid value: 0: spec.proxies.p.endpoints in body should have at least 1 items"),
        ({"httpsProxy": "x" * 2049}, "spec.httpsProxy", "FieldValueTooLong",
         "Too long: may not be more than 2048 bytes"),
        ({"httpsProxy": PROXY, "noProxy": ["a"] * 4097}, "spec.noProxy", "FieldValueTooMany",
         "Too many: 4097: must have at most 4096 items"),
        ({"httpsProxy": PROXY, "credentialsSecretRef": {}}, "spec.credentialsSecretRef.name", "FieldValueRequired",
         "Required value"),
        ({"httpsProxy": "p", "proxies": {"p": {"url": PROXY, "healthCheck": {"interval": "5"}}}},
         "spec.proxies.p.healthCheck.interval", "FieldValueInvalid",
         "Invalid value: \"5\": spec.proxies.p.healthCheck.interval in body should match "
         f"'{DURATION_PATTERN}'"),
    ],
)  # fmt: skip
def test_schema_errors(
    custom: client.CustomObjectsApi, spec: dict[str, Any], field: str, reason: str, body: str
) -> None:
    causes = rejection(custom, Kind.EGRESS_PROXY, spec)["details"]["causes"]
    assert {"reason": reason, "message": body, "field": field} in causes, causes


def test_a_type_error_stops_the_cel_rules(custom: client.CustomObjectsApi) -> None:
    causes = rejection(custom, Kind.EGRESS_PROXY, {"noProxy": ".svc"})["details"]["causes"]
    assert [cause["field"] for cause in causes] == ["spec.noProxy", "<nil>"], "the spec rule was not evaluated"
    assert "some validation rules were not checked" in causes[1]["message"]


def test_unknown_fields_are_pruned_with_a_warning_and_defaults_applied(api: FakeApiServer) -> None:
    spec = expressions({"key": "app", "operator": "Exists", "surprise": 1})
    spec["credentialsFile"] = "/etc/shadow"
    request = urllib.request.Request(
        f"{api.url}/apis/{GROUP}/{VERSION}/namespaces/shop/egressproxies",
        data=json.dumps(egress_proxy("corp", "shop", **spec) | {"extra": True}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
        warnings = response.headers.get_all("Warning")
    assert warnings == [
        '299 - "unknown field \\"extra\\""',
        '299 - "unknown field \\"spec.credentialsFile\\""',
        '299 - "unknown field \\"spec.workloadSelector.matchExpressions[0].surprise\\""',
    ]
    stored = api.get("egressproxies", "corp", "shop")
    assert stored is not None and "extra" not in stored
    assert "credentialsFile" not in stored["spec"], "the CRD does not know it: the server never sees it"
    assert stored["spec"]["workloadSelector"]["matchExpressions"] == [
        {"key": "app", "operator": "Exists", "values": []}
    ]


def test_status_writes_are_validated(api: FakeApiServer, custom: client.CustomObjectsApi) -> None:
    api.apply(egress_proxy("corp", "shop", httpsProxy=PROXY))
    condition = {"type": "Accepted", "status": "Maybe", "reason": "x", "message": "", "lastTransitionTime": "now"}
    with pytest.raises(ApiException) as caught:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, "shop", "egressproxies", "corp", {"status": {"conditions": [condition, condition]}}
        )
    causes = json.loads(caught.value.body)["details"]["causes"]
    fields = {(cause["field"], cause["reason"]) for cause in causes}
    assert fields == {
        ("status.conditions[0].status", "FieldValueNotSupported"),
        ("status.conditions[1].status", "FieldValueNotSupported"),
        ("status.conditions[0].lastTransitionTime", "FieldValueTypeInvalid"),
        ("status.conditions[1].lastTransitionTime", "FieldValueTypeInvalid"),
        ("status.conditions[1]", "FieldValueDuplicate"),  # x-kubernetes-list-type: map, keyed by type
        ("<nil>", "FieldValueInvalid"),  # a format error is a type error: no CEL rule runs
    }, causes
    stored = api.get("egressproxies", "corp", "shop")
    assert stored is not None and "status" not in stored


def test_apply_refuses_what_the_server_refuses(api: FakeApiServer) -> None:
    with pytest.raises(Rejected) as caught:
        api.apply(egress_proxy("Corp", "shop", httpsProxy=PROXY))
    assert caught.value.causes[0]["field"] == "metadata.name"
    assert "a lowercase RFC 1123 subdomain" in str(caught.value)


def test_transition_rules_see_old_self() -> None:
    schema = {
        "type": "object",
        "properties": {"immutable": {"type": "string", "x-kubernetes-validations": [{"rule": "self == oldSelf"}]}},
    }
    assert list(cel_errors(schema, {"immutable": "a"}, None, "")) == [], "no old value: a create"
    assert list(cel_errors(schema, {"immutable": "a"}, {"immutable": "a"}, "")) == []
    [error] = cel_errors(schema, {"immutable": "b"}, {"immutable": "a"}, "")
    assert error.message == 'immutable: Invalid value: "string": failed rule: self == oldSelf'


@pytest.mark.parametrize(
    "spec",
    [
        {"httpsProxy": "http://bob:hunter2@10.0.0.1:3128"},
        {"httpProxy": "bob:hunter2@10.0.0.1:3128"},  # no scheme: both string rules fail, neither quotes it
        {"httpsProxy": "p", "proxies": {"p": {"url": "hunter2@"}}},
        {"httpsProxy": "p", "proxies": {"p": {"endpoints": [{"url": "ftp://bob:hunter2@x"}]}}},
    ],
)
def test_a_refused_credential_in_a_url_is_not_echoed(custom: client.CustomObjectsApi, spec: dict[str, Any]) -> None:
    """The CRD refuses userinfo with CEL rules, whose errors name the type, not the value (a `pattern` would quote
    the whole value, password included, in kubectl's output and the audit log)."""
    status = rejection(custom, Kind.EGRESS_PROXY, spec)
    assert status["code"] == 422
    assert "hunter2" not in json.dumps(status)

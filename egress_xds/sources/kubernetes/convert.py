"""One EgressProxy or ClusterEgressProxy (plus the Secrets it names) -> one `EgressPolicy`.

The spec carries the file format's policy keys, so it is checked by the very parser that reads policy files
(`parse_document`); errors come back with `spec.`-prefixed field paths. Three things differ from a file, on purpose:

- Credentials come only from Secrets (`credentialsSecretRef`, for the whole resource or per proxy). A `user:pass@`
  in a URL is refused: everyone who may read the resource would read the password. The message never repeats it.
- `credentialsFile` and `caFile` are refused: they name files on the *server*, and a namespace's user must not be
  able to make the server read its files and send them to a proxy of the user's choice.
- An EgressProxy can name Secrets in its own namespace only; otherwise namespace A could borrow B's credentials.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from typing import Any

from egress_xds.policy.errors import ConfigError, ConfigIssue, describe
from egress_xds.policy.keys import (
    SECRET_REF_KEY,
    SELECTOR_KEY,
    SERVER_FILE_KEYS,
    SERVICE_ACCOUNTS_KEY,
    SPEC_KEYS,
    SPEC_POLICY_KEYS,
)
from egress_xds.policy.model import (
    Credentials,
    EgressPolicy,
    MetadataRequirement,
    NodeSelector,
    SelectorOperator,
    replace_proxies,
)
from egress_xds.policy.node import LABEL_METADATA_PREFIX, NAMESPACE_METADATA_KEY, SERVICE_ACCOUNT_METADATA_KEY
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import LocatedDocument, format_path, tree_limit_problem
from egress_xds.sources.kubernetes.api import CREDENTIALS_LABEL, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.credentials import credentials_from_secret

# The parser wants a file-format name; the real (unique, unparseable) name is set afterwards.
_PLACEHOLDER_NAME = "kubernetes"


class _Issues:
    def __init__(self, ref: ResourceRef) -> None:
        self.source = str(ref)
        self.items: list[ConfigIssue] = []

    def add(self, path: str, message: str) -> None:
        self.items.append(ConfigIssue(self.source, None, path, message))


def policy_from_resource(
    ref: ResourceRef, resource: Mapping[str, Any], secrets: Mapping[SecretKey, Mapping[str, Any]]
) -> EgressPolicy:
    """The resource's policy. Raises ConfigError listing every problem (never a credential)."""
    issues = _Issues(ref)
    spec = resource.get("spec")
    if not isinstance(spec, dict):
        issues.add("spec", "expected a mapping with httpProxy, httpsProxy, noProxy, proxies, rules, rawTcp")
        raise ConfigError(issues.items)
    problem = tree_limit_problem(spec)  # the same bounds as a file (depth, number of values), before any copy
    if problem is not None:
        path, message = problem
        issues.add(format_path(("spec", *path)), message)
        raise ConfigError(issues.items)
    for key in sorted(str(key) for key in set(spec) - SPEC_KEYS):  # a mistaken key may be a URL with a password
        issues.add(format_path(("spec", key)), f"unknown field (expected one of {', '.join(sorted(SPEC_KEYS))})")
    document = {key: copy.deepcopy(spec[key]) for key in sorted(SPEC_POLICY_KEYS) if key in spec}
    if not document:  # as for a file: an empty policy is a mistake, never "everything direct"
        issues.add("spec", "empty policy: give httpProxy, httpsProxy, proxies or rules (all direct: a direct rule)")
    proxy_refs = _take_proxy_secret_refs(document, issues)
    _rule_actions_to_file_form(document, issues)
    _refuse_userinfo(document, issues)
    selector = workload_selector(ref, spec.get(SELECTOR_KEY), issues)
    selector = _with_service_accounts(selector, spec.get(SERVICE_ACCOUNTS_KEY), issues)
    default_credentials = _credentials(ref, spec.get(SECRET_REF_KEY), f"spec.{SECRET_REF_KEY}", secrets, issues)
    proxy_credentials = {
        name: _credentials(ref, value, f"spec.proxies.{name}.{SECRET_REF_KEY}", secrets, issues)
        for name, value in proxy_refs.items()
    }
    policy = None
    try:
        parsed = parse_document(LocatedDocument(str(ref), {"name": _PLACEHOLDER_NAME, **document}))
        policy = parsed.policies[0]
    except ConfigError as error:
        for issue in error.issues:
            issues.add(f"spec.{issue.path}" if issue.path else "spec", issue.message)
    if issues.items or policy is None:
        raise ConfigError(issues.items)
    with_credentials = {
        name: dataclasses.replace(proxy, credentials=credentials)
        for name, proxy in policy.proxies.items()
        if (credentials := proxy_credentials.get(name) or default_credentials) is not None
    }
    policy = replace_proxies(policy, with_credentials)
    return dataclasses.replace(policy, name=ref.policy_name, selector=selector, source=str(ref))


def referenced_secrets(ref: ResourceRef, resource: Mapping[str, Any]) -> frozenset[SecretKey]:
    """The Secrets a resource names (whether or not they exist): a change to one of them means re-converting."""
    spec = resource.get("spec")
    if not isinstance(spec, dict):
        return frozenset()
    values = [spec.get(SECRET_REF_KEY)]
    proxies = spec.get("proxies")
    if isinstance(proxies, dict):
        values += [proxy.get(SECRET_REF_KEY) for proxy in proxies.values() if isinstance(proxy, dict)]
    keys = set()
    for value in values:
        if not isinstance(value, dict):
            continue
        if isinstance(value.get("name"), str) and isinstance(value.get("namespace", ""), str):
            keys.add(_secret_key(ref, value))
    return frozenset(keys)


def has_workload_selector(resource: Mapping[str, Any]) -> bool:
    """A non-empty `workloadSelector` (an empty one selects every pod, like a resource without one), or a
    `serviceAccounts` list: either narrows the resource to some pods, so it goes before the defaults."""
    spec = resource.get("spec")
    if not isinstance(spec, dict):
        return False
    if spec.get(SERVICE_ACCOUNTS_KEY):
        return True
    value = spec.get(SELECTOR_KEY)
    return isinstance(value, dict) and bool(value.get("matchLabels") or value.get("matchExpressions"))


def workload_selector(ref: ResourceRef, value: Any, issues: _Issues) -> NodeSelector:
    """`metav1.LabelSelector` on pod labels (node metadata `labels.<key>`), within the resource's namespace.

    The cluster-scoped kind requires the node to name *some* namespace: it is a default for pods, not for the
    VMs and standalone Envoys a policy file may also serve.
    """
    path = f"spec.{SELECTOR_KEY}"
    metadata: dict[str, str] = {}
    requirements: list[MetadataRequirement] = []
    if ref.kind.namespaced:
        metadata[NAMESPACE_METADATA_KEY] = ref.namespace
    else:
        requirements.append(MetadataRequirement(NAMESPACE_METADATA_KEY, SelectorOperator.EXISTS))
    if value is None:
        return NodeSelector(metadata=metadata, requirements=tuple(requirements))
    if not isinstance(value, dict):
        issues.add(path, "expected a label selector {matchLabels, matchExpressions}")
        return NodeSelector(metadata=metadata, requirements=tuple(requirements))
    for key in sorted(str(key) for key in set(value) - {"matchLabels", "matchExpressions"}):
        issues.add(f"{path}.{format_path((key,))}", "unknown field (expected matchLabels or matchExpressions)")
    match_labels = value.get("matchLabels") or {}
    if not isinstance(match_labels, dict):
        issues.add(f"{path}.matchLabels", "expected a mapping of label to value")
        match_labels = {}
    for label, label_value in match_labels.items():
        if not isinstance(label_value, str):
            issues.add(f"{path}.matchLabels.{label}", "expected a string value")
            continue
        metadata[f"{LABEL_METADATA_PREFIX}{label}"] = label_value
    expressions = value.get("matchExpressions") or []
    if not isinstance(expressions, list):
        issues.add(f"{path}.matchExpressions", "expected a list of {key, operator, values}")
        expressions = []
    for index, expression in enumerate(expressions):
        requirement = _requirement(expression, f"{path}.matchExpressions[{index}]", issues)
        if requirement is not None:
            requirements.append(requirement)
    return NodeSelector(metadata=metadata, requirements=tuple(requirements))


def _with_service_accounts(selector: NodeSelector, value: Any, issues: _Issues) -> NodeSelector:
    """`serviceAccounts: [NAME, ...]`: only pods running as one of them (node metadata `serviceAccount`, which
    the server takes from the pod's verified SPIFFE certificate when it requires client certificates)."""
    if value is None:
        return selector
    path = f"spec.{SERVICE_ACCOUNTS_KEY}"
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item for item in value):
        issues.add(path, "expected a non-empty list of service account names")
        return selector
    requirement = MetadataRequirement(SERVICE_ACCOUNT_METADATA_KEY, SelectorOperator.IN, frozenset(value))
    return dataclasses.replace(selector, requirements=(*selector.requirements, requirement))


def _requirement(value: Any, path: str, issues: _Issues) -> MetadataRequirement | None:
    if not isinstance(value, dict) or not isinstance(value.get("key"), str) or not value["key"]:
        issues.add(path, "expected {key, operator, values} with a non-empty key")
        return None
    try:
        operator = SelectorOperator(value.get("operator"))
    except ValueError:
        operators = ", ".join(operator.value for operator in SelectorOperator)
        issues.add(f"{path}.operator", f"expected one of {operators}, got {describe(value.get('operator'))}")
        return None
    values = value.get("values") or []
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        issues.add(f"{path}.values", "expected a list of strings")
        return None
    needs_values = operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
    if needs_values and not values:
        issues.add(f"{path}.values", f"{operator.value} needs at least one value")
        return None
    if not needs_values and values:
        issues.add(f"{path}.values", f"{operator.value} takes no values")
        return None
    return MetadataRequirement(f"{LABEL_METADATA_PREFIX}{value['key']}", operator, frozenset(values))


def _take_proxy_secret_refs(document: dict[str, Any], issues: _Issues) -> dict[str, Any]:
    """Remove the Kubernetes-only per-proxy keys before parsing, and refuse the server-file keys."""
    refs: dict[str, Any] = {}
    proxies = document.get("proxies")
    if not isinstance(proxies, dict):
        return refs
    for name, proxy in proxies.items():
        if not isinstance(proxy, dict):
            continue
        if SECRET_REF_KEY in proxy:
            refs[str(name)] = proxy.pop(SECRET_REF_KEY)
        for key in sorted(SERVER_FILE_KEYS):
            if key in proxy:
                del proxy[key]
                issues.add(
                    f"spec.proxies.{name}.{key}",
                    "not allowed in a Kubernetes resource (it names a file on the egress-xds server); "
                    f"use {SECRET_REF_KEY} for credentials",
                )
    return refs


def _rule_actions_to_file_form(document: dict[str, Any], issues: _Issues) -> None:
    """`action: proxy` + `proxy: NAME` (a CRD schema cannot say "a string or an object") -> `{proxy: NAME}`."""
    rules = document.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict) or ("proxy" not in rule and rule.get("action") != "proxy"):
            continue
        path = f"spec.rules[{index}]"
        name = rule.pop("proxy", None)
        if rule.get("action") != "proxy":
            issues.add(f"{path}.proxy", "give proxy only with action: proxy")
        elif not isinstance(name, str) or not name:
            issues.add(f"{path}.proxy", "action proxy needs proxy: NAME (a name in spec.proxies)")
            rule["action"] = "direct"  # reported above; never served, and no second message from the parser
        else:
            rule["action"] = {"proxy": name}


def _refuse_userinfo(document: dict[str, Any], issues: _Issues) -> None:
    """Strip `user:password@` from every URL (so that no later message can contain it) and report where."""
    for key in ("httpProxy", "httpsProxy"):
        if isinstance(document.get(key), str):
            document[key] = _without_userinfo(document[key], f"spec.{key}", issues)
    proxies = document.get("proxies")
    if not isinstance(proxies, dict):
        return
    for name, proxy in proxies.items():
        path = f"spec.proxies.{name}"
        if isinstance(proxy, str):
            proxies[name] = _without_userinfo(proxy, path, issues)
            continue
        if not isinstance(proxy, dict):
            continue
        if isinstance(proxy.get("url"), str):
            proxy["url"] = _without_userinfo(proxy["url"], f"{path}.url", issues)
        endpoints = proxy.get("endpoints")
        if not isinstance(endpoints, list):
            continue
        for index, endpoint in enumerate(endpoints):
            if isinstance(endpoint, str):
                endpoints[index] = _without_userinfo(endpoint, f"{path}.endpoints[{index}]", issues)
            elif isinstance(endpoint, dict) and isinstance(endpoint.get("url"), str):
                endpoint["url"] = _without_userinfo(endpoint["url"], f"{path}.endpoints[{index}].url", issues)


def _without_userinfo(url: str, path: str, issues: _Issues) -> str:
    """`http://u:p@h` and `u:p@h` (no scheme) alike: the userinfo is reported and removed."""
    scheme, separator, rest = url.partition("://") if "://" in url.partition("@")[0] else ("", "", url)
    if "@" not in rest:
        return url
    issues.add(
        path,
        f"credentials in the URL are not allowed here (anyone who can read the resource would see them); "
        f"put them in a Secret and use {SECRET_REF_KEY}",
    )
    return f"{scheme}{separator}{rest.rpartition('@')[2]}"


def _credentials(
    ref: ResourceRef,
    value: Any,
    path: str,
    secrets: Mapping[SecretKey, Mapping[str, Any]],
    issues: _Issues,
) -> Credentials | None:
    if value is None:
        return None
    allowed = {"name"} if ref.kind.namespaced else {"name", "namespace"}
    if not isinstance(value, dict) or not isinstance(value.get("name"), str) or not value["name"]:
        issues.add(path, "expected {name: SECRET}" + ("" if ref.kind.namespaced else " with a namespace"))
        return None
    for unknown in sorted(str(key) for key in set(value) - allowed):
        reason = "a Secret must be in the resource's own namespace" if unknown == "namespace" else "unknown field"
        issues.add(f"{path}.{format_path((unknown,))}", reason)
        return None
    if not ref.kind.namespaced and not value.get("namespace"):
        issues.add(f"{path}.namespace", "a ClusterEgressProxy must say which namespace the Secret is in")
        return None
    if not isinstance(value.get("namespace", ""), str):
        issues.add(f"{path}.namespace", f"expected a namespace name, got {describe(value['namespace'])}")
        return None
    key = _secret_key(ref, value)
    where = f"Secret {key[0]}/{key[1]}"
    secret = secrets.get(key)
    if secret is None:
        issues.add(path, f"{where} not found (egress-xds reads only Secrets labelled {CREDENTIALS_LABEL}=true)")
        return None
    if not all(isinstance(secret.get(field) or {}, dict) for field in ("data", "stringData")):
        issues.add(path, f"{where}: expected data to be a mapping of key to value")
        return None
    try:
        return credentials_from_secret(secret, where)
    except ValueError as error:
        issues.add(path, str(error))
        return None


def _secret_key(ref: ResourceRef, value: Mapping[str, Any]) -> SecretKey:
    namespace = ref.namespace if ref.kind.namespaced else str(value.get("namespace") or "")
    return (namespace, str(value["name"]))

"""deploy/webhook and deploy/examples/injection agree with the code: the MutatingWebhookConfiguration reaches the
webhook's Service, port and path, trusts the cert-manager Certificate that the Deployment mounts, selects the
namespaces and pods the README says; the webhook runs what the CLI accepts with the settings in the ConfigMap;
the plain example becomes a valid sidecar app whose bootstrap reaches the deployed xDS Service."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from egress_xds.cli import _parser
from egress_xds.inject.documents import inject_document
from egress_xds.inject.mutation import BOOTSTRAP_CONTAINER, INJECT_ANNOTATION, STATUS_ANNOTATION
from egress_xds.inject.settings import load_settings
from egress_xds.inject.webhook import HEALTH_PATH, MUTATE_PATH
from tests.kubernetes.test_deploy import KUBERNETES_VERSION, all_documents, xds_service

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NAMESPACE_LABEL = "egress.egress-xds.dev/inject"


def one(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [doc for _, doc in all_documents() if doc["kind"] == kind and name in (None, doc["metadata"]["name"])]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def settings_file(tmp_path: Path) -> Path:
    path = tmp_path / "inject.yaml"
    path.write_text(one("ConfigMap", "egress-xds-inject")["data"]["inject.yaml"])
    return path


def test_the_configuration_reaches_the_webhook_and_trusts_its_certificate() -> None:
    (webhook,) = one("MutatingWebhookConfiguration")["webhooks"]
    configuration = one("MutatingWebhookConfiguration")
    service = one("Service", "egress-xds-webhook")
    deployment = one("Deployment", "egress-xds-webhook")
    certificate = one("Certificate", "egress-xds-webhook")
    target = webhook["clientConfig"]["service"]
    assert (target["name"], target["namespace"], target["path"]) == ("egress-xds-webhook", "egress-xds", MUTATE_PATH)
    (port,) = [port for port in service["spec"]["ports"] if port["port"] == target["port"]]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    (container_port,) = [p["containerPort"] for p in container["ports"] if p["name"] == port["targetPort"]]
    args = container["args"]
    assert args[args.index("--listen") + 1].endswith(f":{container_port}")
    assert container["readinessProbe"]["httpGet"] == {"path": HEALTH_PATH, "port": container_port, "scheme": "HTTPS"}
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc"
    assert host in certificate["spec"]["dnsNames"]
    meta = certificate["metadata"]
    assert (
        configuration["metadata"]["annotations"]["cert-manager.io/inject-ca-from"]
        == f"{meta['namespace']}/{meta['name']}"
    )
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    cert_dir = args[args.index("--tls-cert") + 1].rsplit("/", 1)[0]
    assert mounts[cert_dir]["secret"]["secretName"] == certificate["spec"]["secretName"]
    config_dir = args[args.index("--config") + 1].rsplit("/", 1)[0]
    assert mounts[config_dir]["configMap"]["name"] == "egress-xds-inject"
    _parser().parse_args(args)  # exits (fails the test) on an unknown flag


def test_the_selection_and_the_failure_policy_are_the_documented_ones(tmp_path: Path) -> None:
    (webhook,) = one("MutatingWebhookConfiguration")["webhooks"]
    assert webhook["namespaceSelector"]["matchLabels"] == {NAMESPACE_LABEL: "enabled"}
    (excluded,) = webhook["namespaceSelector"]["matchExpressions"]
    settings = load_settings(settings_file(tmp_path))
    own = one("Deployment", "egress-xds-webhook")["metadata"]["namespace"]
    assert excluded["operator"] == "NotIn" and set(excluded["values"]) == {own, *settings.ignored_namespaces}
    (opt_out,) = webhook["objectSelector"]["matchExpressions"]
    assert opt_out["key"] == INJECT_ANNOTATION and opt_out["operator"] == "NotIn"
    assert webhook["rules"] == [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                                 "resources": ["pods"], "scope": "Namespaced"}]  # fmt: skip
    assert (webhook["sideEffects"], webhook["failurePolicy"], webhook["reinvocationPolicy"]) == (
        "None",
        "Fail",
        "IfNeeded",
    )
    assert webhook["timeoutSeconds"] <= 10 and webhook["admissionReviewVersions"] == ["v1"]
    assert one("PodDisruptionBudget", "egress-xds-webhook")["spec"]["minAvailable"] >= 1  # Fail needs it up
    assert one("Deployment", "egress-xds-webhook")["spec"]["replicas"] >= 2


def test_the_webhook_holds_no_kubernetes_permission() -> None:
    account = one("ServiceAccount", "egress-xds-webhook")
    assert account["automountServiceAccountToken"] is False
    pod_spec = one("Deployment", "egress-xds-webhook")["spec"]["template"]["spec"]
    assert pod_spec["serviceAccountName"] == "egress-xds-webhook" and pod_spec["automountServiceAccountToken"] is False
    bindings = [doc for _, doc in all_documents() if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    assert not [b for b in bindings for subject in b["subjects"] if subject["name"] == "egress-xds-webhook"]
    (container,) = pod_spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] and pod_spec["securityContext"]["runAsNonRoot"]


def test_the_plain_example_becomes_a_valid_sidecar_app_that_reaches_the_server(tmp_path: Path) -> None:
    namespace = one("Namespace", "web")
    assert namespace["metadata"]["labels"][NAMESPACE_LABEL] == "enabled"
    plain = one("Deployment", "fetcher")
    assert "initContainers" not in plain["spec"]["template"]["spec"], "the example is plain: injection adds the rest"
    injected, notes = inject_document(plain, load_settings(settings_file(tmp_path)))
    assert notes == []
    kubernetes_validate.validate(injected, KUBERNETES_VERSION, strict=True)
    template = injected["spec"]["template"]
    assert template["metadata"]["annotations"][STATUS_ANNOTATION] == "injected"
    init = {c["name"]: c for c in template["spec"]["initContainers"]}
    words = init[BOOTSTRAP_CONTAINER]["args"][0].split()
    host, port = xds_service()
    assert words[words.index("--xds-address") + 1] in (f"{host}:{port}", f"{host}.cluster.local:{port}")
    capture = init["egress-capture"]["args"]
    assert capture[capture.index("--exclude-port") + 1] == "5432"  # the example's annotation
    assert yaml.safe_load((DEPLOY / "examples" / "injection" / "kustomization.yaml").read_text())["resources"]

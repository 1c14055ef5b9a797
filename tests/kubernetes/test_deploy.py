"""`deploy/` offline: every manifest validates against the Kubernetes schemas (kubernetes-validate), the examples
validate against our CRDs' schemas and are accepted by the server's converter, the CRD schemas are structural,
the kustomizations list exactly the files there are, and the ClusterRole grants what the server uses, no more."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from egress_xds.cli import _parser
from egress_xds.sources.kubernetes.api import API_VERSION, GROUP, Kind, ResourceRef
from egress_xds.sources.kubernetes.convert import policy_from_resource
from egress_xds.translate.envoy_admin import DEFAULT_ADMIN_SOCKET, DEFAULT_READINESS_PORT
from tests.kubernetes.apiserver import FakeApiServer
from tests.kubernetes.conftest import StartSource, eventually
from tests.kubernetes.resources import egress_proxy
from tests.support.requirements import need_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.31"  # the oldest version the manifests claim (native sidecars need 1.29)
CUSTOM_KINDS = {kind.value for kind in Kind}
# cert-manager's kinds (deploy/webhook): kubernetes-validate has no schema for them, so the fields we use are
# checked against this excerpt of cert-manager.io/v1 (required fields and the types of the ones we set).
HOURS = {"type": "string", "pattern": "^[0-9]+h$"}
ISSUER_SPEC = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {
        "selfSigned": {"type": "object"},
        "ca": {"type": "object", "required": ["secretName"], "properties": {"secretName": {"type": "string"}}},
    },
}
STRINGS = {"type": "array", "items": {"type": "string"}}
KEY_USAGES = {
    "type": "array",
    "items": {"enum": ["server auth", "client auth", "digital signature", "key encipherment", "cert sign", "crl sign"]},
}
# approver-policy's CertificateRequestPolicy (policy.cert-manager.io/v1alpha1), the fields deploy/mtls sets.
POLICY_SPEC = {
    "type": "object",
    "required": ["allowed", "selector"],
    "additionalProperties": False,
    "properties": {
        "allowed": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "isCA": {"type": "boolean"},
                "commonName": {"type": "object", "properties": {"value": {"type": "string"}}},
                "dnsNames": {"type": "object", "properties": {"values": STRINGS}},
                "uris": {"type": "object", "properties": {"values": STRINGS}},
                "usages": KEY_USAGES,
            },
        },
        "selector": {
            "type": "object",
            "properties": {
                "issuerRef": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {"group": {"type": "string"}, "kind": {"type": "string"}, "name": {"type": "string"}},
                }
            },
        },
    },
}
CERTIFICATE_SPEC = {
    "type": "object",
    "required": ["secretName", "issuerRef"],
    "additionalProperties": False,
    "properties": {
        "secretName": {"type": "string"},
        "issuerRef": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": {"type": "string"}, "kind": {"enum": ["Issuer", "ClusterIssuer"]}},
        },
        "dnsNames": STRINGS,
        "uris": {"type": "array", "items": {"type": "string", "pattern": "^spiffe://"}},
        "usages": KEY_USAGES,
        "isCA": {"type": "boolean"},
        "commonName": {"type": "string"},
        "duration": HOURS,
        "renewBefore": HOURS,
        "privateKey": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                "size": {"type": "integer"},
                "rotationPolicy": {"enum": ["Never", "Always"]},
            },
        },
    },
}
CERT_MANAGER_SCHEMAS: dict[str, dict[str, Any]] = {
    kind: {
        "type": "object",
        "required": ["metadata", "spec"],
        "properties": {
            "metadata": {"type": "object", "required": ["name", "namespace"] if namespaced else ["name"]},
            "spec": spec,
        },
        **({} if namespaced else {"properties": {"metadata": {"not": {"required": ["namespace"]}}, "spec": spec}}),
    }
    for kind, spec, namespaced in (
        ("Issuer", ISSUER_SPEC, True),
        ("ClusterIssuer", ISSUER_SPEC, False),
        ("Certificate", CERTIFICATE_SPEC, True),
        ("CertificateRequestPolicy", POLICY_SPEC, False),
    )
}


def manifest_files() -> list[Path]:
    return sorted(path for path in DEPLOY.rglob("*.yaml") if path.name != "kustomization.yaml")


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def all_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in manifest_files() for doc in documents(path)]


def crd_schema(kind: Kind) -> dict[str, Any]:
    for _, doc in all_documents():
        if doc["kind"] == "CustomResourceDefinition" and doc["spec"]["names"]["kind"] == kind.value:
            schema: dict[str, Any] = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
            return schema
    raise AssertionError(f"no CRD for {kind.value}")


def validate_custom(doc: dict[str, Any]) -> None:
    jsonschema.validate(doc, crd_schema(Kind(doc["kind"])), cls=jsonschema.Draft7Validator)


@pytest.mark.parametrize(
    ("path", "index"),
    [(path, index) for path in manifest_files() for index in range(len(documents(path)))],
    ids=lambda value: str(value.relative_to(DEPLOY)) if isinstance(value, Path) else str(value),
)
def test_manifest_validates(path: Path, index: int) -> None:
    doc = documents(path)[index]
    if doc["kind"] in CUSTOM_KINDS:
        assert doc["apiVersion"] == API_VERSION
        validate_custom(doc)
    elif doc["apiVersion"] in ("cert-manager.io/v1", "policy.cert-manager.io/v1alpha1"):
        jsonschema.validate(doc, CERT_MANAGER_SCHEMAS[doc["kind"]], cls=jsonschema.Draft7Validator)
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_example_resources_are_accepted_by_the_server() -> None:
    docs = [doc for _, doc in all_documents()]
    secrets = {}
    for doc in docs:
        if doc["kind"] == "Secret":
            string_data = doc.get("stringData") or {}
            secrets[(doc["metadata"]["namespace"], doc["metadata"]["name"])] = {"stringData": string_data}
    custom = [doc for doc in docs if doc["kind"] in CUSTOM_KINDS]
    assert {doc["kind"] for doc in custom} == CUSTOM_KINDS
    for doc in custom:
        kind = Kind(doc["kind"])
        ref = ResourceRef(
            kind, doc["metadata"].get("namespace", "") if kind.namespaced else "", doc["metadata"]["name"]
        )
        policy = policy_from_resource(ref, doc, secrets)
        assert all(proxy.credentials is not None for proxy in policy.proxies.values() if proxy.name != "partner")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"httpsProxy": 3128}, "httpsProxy"),  # the URL rules are CEL: tests/kubernetes/test_admission.py
        ({"rawTcp": "sideways"}, "rawTcp"),
        ({"rules": [{"action": "tunnel"}]}, "action"),
        ({"rules": [{"action": "direct", "ports": [70000]}]}, "ports"),
        ({"proxies": {"p": {"url": "http://" + "p" * 2048}}}, "url"),
        ({"proxies": {"p": {"endpoints": [{"url": "http://a:1", "priority": 200}]}}}, "priority"),
        ({"workloadSelector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}}, "operator"),
        ({"credentialsSecretRef": {}}, "name"),
        ({"noProxy": ".svc,.cluster.local"}, "noProxy"),
    ],
)
def test_the_crd_schema_rejects_malformed_specs(change: dict[str, Any], field: str) -> None:
    resource = egress_proxy("corp", "shop", httpsProxy="http://proxy:3128")
    resource["spec"].update(change)
    with pytest.raises(jsonschema.ValidationError) as caught:
        validate_custom(resource)
    assert field in "/".join(str(part) for part in caught.value.absolute_path) + caught.value.message


def test_crd_schemas_are_structural_and_the_two_kinds_agree() -> None:
    def walk(node: dict[str, Any], path: str) -> None:
        preserved = node.get("x-kubernetes-preserve-unknown-fields") or node.get("x-kubernetes-int-or-string")
        assert "type" in node or preserved, f"{path}: a structural schema needs a type"
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            assert "properties" not in node, f"{path}: properties and additionalProperties exclude each other"
            walk(node["additionalProperties"], f"{path}.*")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    namespaced, cluster = crd_schema(Kind.EGRESS_PROXY), crd_schema(Kind.CLUSTER_EGRESS_PROXY)
    walk(namespaced, "EgressProxy")
    walk(cluster, "ClusterEgressProxy")

    ref = cluster["properties"]["spec"]["properties"]["credentialsSecretRef"]
    assert ref["required"] == ["name", "namespace"]
    assert "namespace" not in namespaced["properties"]["spec"]["properties"]["credentialsSecretRef"]["properties"]
    spec_n, spec_c = namespaced["properties"]["spec"]["properties"], cluster["properties"]["spec"]["properties"]
    assert set(spec_n) == set(spec_c) == {
        "httpProxy", "httpsProxy", "noProxy", "proxies", "rules", "rawTcp", "workloadSelector", "serviceAccounts",
        "credentialsSecretRef",
    }  # fmt: skip
    for key in ("httpProxy", "httpsProxy", "noProxy", "rules", "rawTcp"):
        assert spec_n[key] == spec_c[key], key
    assert {k: v for k, v in spec_n["serviceAccounts"].items() if k != "description"} == {
        k: v for k, v in spec_c["serviceAccounts"].items() if k != "description"
    }


def kustomizations() -> list[Path]:
    return sorted(DEPLOY.rglob("kustomization.yaml"))


def test_kustomizations_list_exactly_the_manifests() -> None:
    listed: set[Path] = set()
    for kustomization in kustomizations():
        data = yaml.safe_load(kustomization.read_text())
        assert set(data) <= {"apiVersion", "kind", "resources"}, kustomization
        for entry in data["resources"]:
            path = (kustomization.parent / entry).resolve()
            assert path.is_file(), f"{kustomization}: {entry} does not exist"
            assert path not in listed, f"{entry} is listed twice"
            listed.add(path)
    assert listed == {path.resolve() for path in manifest_files()}


@pytest.mark.parametrize("directory", [path.parent for path in kustomizations()], ids=lambda p: p.name)
def test_kubectl_kustomize_builds(directory: Path) -> None:
    kubectl = need_binary("kubectl", "install kubectl (e.g. apt-get install kubectl from the Kubernetes repository)")
    result = subprocess.run(
        [str(kubectl), "kustomize", str(directory)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    built = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    data = yaml.safe_load((directory / "kustomization.yaml").read_text())
    expected = [doc for entry in data["resources"] for doc in documents(directory / entry)]
    key = lambda doc: (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])  # noqa: E731
    assert sorted(map(key, built)) == sorted(map(key, expected))


def containers(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    spec = doc["spec"]["template"]["spec"]
    return {c["name"]: c for c in spec.get("initContainers", []) + spec["containers"]}


def egress_xds_args(container: dict[str, Any]) -> list[str]:
    if container.get("command") == ["sh", "-c"]:
        text = container["args"][0].split(">")[0]
        text = text.replace('"$(POD_NAME).$(POD_NAMESPACE)"', "pod.ns")
        words = text.split()
        assert words[0] == "egress-xds"
        return words[1:]
    return list(container["args"])


def test_workloads_run_what_the_cli_accepts_with_the_promised_security() -> None:
    deployments = {doc["metadata"]["name"]: doc for _, doc in all_documents() if doc["kind"] == "Deployment"}
    server = containers(deployments["egress-xds"])["egress-xds"]
    app = containers(deployments["client"])
    for container in (server, app["egress-capture"], app["egress-bootstrap"]):
        _parser().parse_args(egress_xds_args(container))  # exits (fails the test) on an unknown flag
    assert "--kubernetes" in server["args"]
    security = server["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"]["drop"] == ["ALL"]
    assert deployments["egress-xds"]["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"]
    assert {"startupProbe", "readinessProbe", "livenessProbe", "resources"} <= set(server)
    assert app["envoy"]["securityContext"]["runAsUser"] == 1337 and app["envoy"]["restartPolicy"] == "Always"
    assert "--envoy-uid" in app["egress-capture"]["args"] and "1337" in app["egress-capture"]["args"]
    assert app["egress-capture"]["securityContext"]["capabilities"]["add"] == ["NET_ADMIN", "NET_RAW"]
    assert app["app"]["securityContext"]["runAsUser"] != 1337, "the app must not share Envoy's uid (never captured)"


def test_the_example_sidecar_keeps_envoy_admin_from_the_app() -> None:
    """Envoy's admin socket lives in a volume only the Envoy container mounts, in a 0700 directory it makes
    itself; the bootstrap keeps the sidecar default (socket + readiness), and readiness is probed on 15021."""
    app_doc = next(
        doc for _, doc in all_documents() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "client"
    )
    app = containers(app_doc)
    volume = "envoy-admin"
    mounts = {name: [m["name"] for m in c.get("volumeMounts", [])] for name, c in app.items()}
    assert [name for name, names in mounts.items() if volume in names] == ["envoy"], mounts
    (mount,) = [m for m in app["envoy"]["volumeMounts"] if m["name"] == volume]
    admin_directory = str(Path(DEFAULT_ADMIN_SOCKET).parent)
    assert admin_directory.startswith(mount["mountPath"] + "/")
    assert app["envoy"]["command"] == ["sh", "-c"]
    assert f"chmod 0700 {admin_directory}" in app["envoy"]["args"][0]
    words = egress_xds_args(app["egress-bootstrap"])
    assert "--admin-address" not in words and "--admin-socket" not in words and "--readiness-port" not in words
    for probe in ("startupProbe", "readinessProbe"):  # the capture listener is on 127.0.0.1: no kubelet probe
        assert app["envoy"][probe]["httpGet"] == {"path": "/ready", "port": DEFAULT_READINESS_PORT}, probe


def xds_service() -> tuple[str, int]:
    """`NAME.NAMESPACE.svc` and the port of the Service in front of the server's xDS port."""
    (service,) = [
        doc for _, doc in all_documents() if doc["kind"] == "Service" and doc["metadata"]["name"] == "egress-xds"
    ]
    (port,) = [port["port"] for port in service["spec"]["ports"] if port["name"] == "grpc-xds"]
    return f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc", port


def test_server_probes_are_grpc_health_checks_on_the_health_port() -> None:
    """The xDS port is TLS only (the kubelet's grpc probe cannot do TLS): the probes ask the plaintext health port
    (`serve --health-listen`, grpc.health.v1 and nothing else)."""
    deployments = {doc["metadata"]["name"]: doc for _, doc in all_documents() if doc["kind"] == "Deployment"}
    server = containers(deployments["egress-xds"])["egress-xds"]
    ports = {port["name"]: port["containerPort"] for port in server["ports"]}
    args = server["args"]
    assert args[args.index("--listen") + 1].endswith(f":{ports['grpc-xds']}")
    assert args[args.index("--health-listen") + 1].endswith(f":{ports['grpc-health']}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert server[probe]["grpc"] == {"port": ports["grpc-health"]}, f"{probe}: {server[probe]}"


def test_the_server_and_the_sidecars_speak_mutual_tls_with_one_ca() -> None:
    """The server's certificate and the sidecars' SPIFFE certificates come from one CA (deploy/mtls); the server
    requires client certificates; the example sidecar verifies the server's name, and only Envoy mounts the key."""
    docs = {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in all_documents()}
    server_certificate = docs[("Certificate", "egress-xds-server")]["spec"]
    assert server_certificate["issuerRef"] == {"name": "egress-xds-ca", "kind": "ClusterIssuer"}
    assert docs[("ClusterIssuer", "egress-xds-ca")]["spec"]["ca"]["secretName"] == "egress-xds-ca"
    server = containers(docs[("Deployment", "egress-xds")])["egress-xds"]
    args = server["args"]
    assert {"--tls-cert", "--tls-key", "--client-ca"} <= set(args)
    (volume,) = [v for v in docs[("Deployment", "egress-xds")]["spec"]["template"]["spec"]["volumes"] if "secret" in v]
    assert volume["secret"]["secretName"] == server_certificate["secretName"]
    app = containers(docs[("Deployment", "client")])
    words = egress_xds_args(app["egress-bootstrap"])
    server_name = words[words.index("--xds-server-name") + 1]
    assert server_name in server_certificate["dnsNames"]
    mounts = {name: [m["name"] for m in c.get("volumeMounts", [])] for name, c in app.items()}
    assert [name for name, names in mounts.items() if "spiffe" in names] == ["envoy"], mounts


def test_the_shipped_sidecar_bootstrap_points_at_the_deployed_service() -> None:
    """envoy/sidecar.yaml and the example app reach the Service that deploy/ creates (name, namespace, port)."""
    host, port = xds_service()
    sidecar = yaml.safe_load((DEPLOY.parent / "envoy" / "sidecar.yaml").read_text())
    (cluster,) = sidecar["static_resources"]["clusters"]
    (endpoint,) = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    address = endpoint["endpoint"]["address"]["socket_address"]
    assert (address["address"], address["port_value"]) == (host, port)
    app = next(doc for _, doc in all_documents() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "client")
    words = egress_xds_args(containers(app)["egress-bootstrap"])
    xds_address = words[words.index("--xds-address") + 1]
    assert xds_address in (f"{host}:{port}", f"{host}.cluster.local:{port}")


def cluster_role() -> list[dict[str, Any]]:
    """The server's ClusterRole (deploy/rbac.yaml)."""
    for _, doc in all_documents():
        if doc["kind"] == "ClusterRole" and doc["metadata"]["name"] == "egress-xds":
            rules: list[dict[str, Any]] = doc["rules"]
            return rules
    raise AssertionError("no ClusterRole")


def needed_permission(method: str, path: str, query: dict[str, str]) -> tuple[str, str, str]:
    """(apiGroup, resource, verb) the API server's authorizer checks for a request."""
    parts = [part for part in path.split("/") if part]
    group = "" if parts[0] == "api" else parts[1]
    rest = parts[2:] if parts[0] == "api" else parts[3:]
    if rest[0] == "namespaces":
        rest = rest[2:]
    resource = rest[0] + (f"/{rest[2]}" if len(rest) > 2 else "")
    if method == "PATCH":
        return group, resource, "patch"
    if len(rest) > 1:
        return group, resource, "get"
    return group, resource, "watch" if query.get("watch") in ("1", "true") else "list"


async def test_the_cluster_role_grants_exactly_what_the_server_uses(
    api: FakeApiServer, start_source: StartSource
) -> None:
    api.apply(egress_proxy("corp", "shop", httpsProxy="http://proxy:3128"))
    api.apply({"apiVersion": API_VERSION, "kind": "ClusterEgressProxy", "metadata": {"name": "d"},
               "spec": {"httpsProxy": "http://proxy:3128"}})  # fmt: skip
    await start_source()
    await eventually(lambda: len(api.requests_for("PATCH", "/status")) == 2 and api.open_watches() == 3, "all used")
    used = {needed_permission(r.method, r.path, r.query) for r in api.requests}
    granted = {
        (group, resource, verb)
        for rule in cluster_role()
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert used == granted
    assert {group for group, _, _ in granted} == {GROUP, ""}


# README "Sizing the server", from bench/ads_fanout.py: what the server's memory request and limit must hold.
BASE_MEMORY_BYTES = 50 * 2**20
STREAM_MEMORY_BYTES = 34 * 2**10
STREAMS_PER_REPLICA = 2_500  # the request: its own Envoys, and the other replica's after a failure
STREAMS_AT_LIMIT = 10_000


def quantity_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    for suffix, size in units.items():
        if text.endswith(suffix):
            return int(text[: -len(suffix)]) * size
    return int(text)


def server_deployment() -> dict[str, Any]:
    (deployment,) = [
        doc for _, doc in all_documents() if doc["kind"] == "Deployment" and doc["metadata"]["name"] == "egress-xds"
    ]
    return deployment


def test_replicas_survive_a_drain_and_spread_over_nodes_and_zones() -> None:
    deployment = server_deployment()
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    (budget,) = [
        doc
        for _, doc in all_documents()
        if doc["kind"] == "PodDisruptionBudget" and doc["metadata"]["name"] == deployment["metadata"]["name"]
    ]
    assert budget["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["maxUnavailable"] == 1 and deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    spread = {c["topologyKey"]: c for c in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]}
    assert spread["kubernetes.io/hostname"]["whenUnsatisfiable"] == "DoNotSchedule"
    assert spread["topology.kubernetes.io/zone"]["whenUnsatisfiable"] == "ScheduleAnyway"  # soft
    for constraint in spread.values():
        assert constraint["maxSkew"] == 1 and constraint["labelSelector"]["matchLabels"].items() <= labels.items()
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]  # a rollout's new pods are not blocked


def test_server_resources_hold_the_measured_streams() -> None:
    server = containers(server_deployment())["egress-xds"]
    resources = server["resources"]
    request = quantity_bytes(resources["requests"]["memory"])
    limit = quantity_bytes(resources["limits"]["memory"])
    assert request >= BASE_MEMORY_BYTES + 2 * STREAMS_PER_REPLICA * STREAM_MEMORY_BYTES
    assert limit >= BASE_MEMORY_BYTES + STREAMS_AT_LIMIT * STREAM_MEMORY_BYTES
    assert "cpu" in resources["requests"] and "cpu" not in resources.get("limits", {})  # no throttled fan-out
    text = (DEPLOY / "server.yaml").read_text()
    assert "+34 KB per ADS stream" in text and "RSS 50 MB with no stream" in text  # the figures, beside them

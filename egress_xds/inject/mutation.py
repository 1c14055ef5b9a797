"""The one sidecar mutation: a pod (`{"metadata": ..., "spec": ...}`, a Pod object or a workload's pod template)
in, the pod with egress-xds' sidecar out. Pure (no I/O, the input is never changed) and idempotent: injecting an
injected pod returns it unchanged. `egress-xds inject` and `egress-xds webhook` both call `inject_pod`.

What is added (the shape of deploy/examples/app.yaml), in front of the pod's own init containers so that those
already have their egress through Envoy:

1. `egress-capture`: `egress-xds capture` (root with NET_ADMIN and NET_RAW only) installs the iptables rules;
2. `egress-bootstrap`: `egress-xds bootstrap` writes Envoy's bootstrap from the Downward API (pod name,
   namespace, labels) into an emptyDir;
3. `egress-envoy`: Envoy as a native sidecar (`restartPolicy: Always`, Kubernetes 1.29+) as the Envoy uid with
   a read-only root filesystem. The kubelet starts the next init container only after its startup probe passed.

Unusual pods:

- `hostNetwork: true`: never captured (the rules would change the node's own network); the pod is left as it
  is except for the status annotation saying why, and a warning.
- the opt-out annotation `egress.egress-xds.dev/inject: "false"`: left exactly as it is.
- a pod that already has a container or volume by one of our names (injected before, or a hand-made sidecar
  like deploy/examples/app.yaml): left as it is (a warning when it was not injected by us).
- a container running as the Envoy uid bypasses capture: injected, with a warning.
"""

from __future__ import annotations

import copy
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from egress_xds.inject.settings import InjectSettings, exclude_cidrs, exclude_ports

ANNOTATION_PREFIX = "egress.egress-xds.dev/"
INJECT_ANNOTATION = f"{ANNOTATION_PREFIX}inject"  # "false" (or "disabled"): never inject this pod
STATUS_ANNOTATION = f"{ANNOTATION_PREFIX}status"  # written by us: "injected" or "skipped: WHY"
EXCLUDE_CIDRS_ANNOTATION = f"{ANNOTATION_PREFIX}exclude-cidrs"  # "10.0.0.0/8,192.168.1.5": not captured
EXCLUDE_PORTS_ANNOTATION = f"{ANNOTATION_PREFIX}exclude-ports"  # "5432,6379": not captured
OPT_OUT_VALUES = ("false", "disabled", "no")
INJECTED = "injected"
SKIPPED_HOST_NETWORK = "skipped: hostNetwork pods are not captured (iptables rules would change the node's network)"

CAPTURE_CONTAINER = "egress-capture"
BOOTSTRAP_CONTAINER = "egress-bootstrap"
ENVOY_CONTAINER = "egress-envoy"
CONFIG_VOLUME = "egress-envoy-config"
PODINFO_VOLUME = "egress-podinfo"
ADMIN_VOLUME = "egress-envoy-admin"
SPIFFE_VOLUME = "egress-spiffe"
CONTAINER_NAMES = (CAPTURE_CONTAINER, BOOTSTRAP_CONTAINER, ENVOY_CONTAINER)
VOLUME_NAMES = (CONFIG_VOLUME, PODINFO_VOLUME, ADMIN_VOLUME, SPIFFE_VOLUME)

CONFIG_DIR = "/etc/envoy"
CONFIG_FILE = f"{CONFIG_DIR}/envoy.yaml"
PODINFO_DIR = "/etc/podinfo"
LABELS_FILE = f"{PODINFO_DIR}/labels"
SPIFFE_DIR = "/var/run/secrets/egress-xds/spiffe"  # csi-driver-spiffe writes tls.crt, tls.key, ca.crt
BOOTSTRAP_UID = 65532
SPIFFE_FS_GROUP_ATTRIBUTE = "spiffe.csi.cert-manager.io/fs-group"  # csi-driver-spiffe's key, whatever the driver name


class InjectionError(ValueError):
    """The pod asks for something that cannot be done (a malformed exclusion annotation); `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class Injection:
    """The result: the pod (a new object), whether the sidecar was added now, and what a human should know."""

    pod: dict[str, Any]
    injected: bool
    reason: str
    warnings: tuple[str, ...] = ()


def inject_pod(pod: Mapping[str, Any], settings: InjectSettings) -> Injection:
    """The pod with the sidecar (see the module text for every case). Raises InjectionError for a bad
    exclusion annotation: injecting without the exclusion would capture traffic the owner asked to keep out."""
    result = copy.deepcopy(dict(pod))
    spec = result.get("spec")
    if not isinstance(spec, dict):
        return Injection(copy.deepcopy(dict(pod)), False, "no pod spec", ("not a pod: it has no spec",))
    if result.get("metadata") is None:
        result["metadata"] = {}
    metadata = result["metadata"]
    if not isinstance(metadata, dict):
        raise InjectionError("metadata", "expected a mapping")
    for where, value in (
        ("metadata.annotations", metadata.get("annotations")),
        ("spec.securityContext", spec.get("securityContext")),
    ):
        if value is not None and not isinstance(value, dict):
            raise InjectionError(where, "expected a mapping")
    for key in ("initContainers", "containers", "volumes"):
        items = spec.get(key)
        if items is not None and not (isinstance(items, list) and all(isinstance(item, dict) for item in items)):
            raise InjectionError(f"spec.{key}", "expected a list of mappings")
    annotations: dict[str, Any] = metadata.get("annotations") or {}
    if str(annotations.get(INJECT_ANNOTATION, "")).strip().lower() in OPT_OUT_VALUES:
        return Injection(copy.deepcopy(dict(pod)), False, f"opted out ({INJECT_ANNOTATION})")
    if spec.get("hostNetwork") is True:
        metadata["annotations"] = {**annotations, STATUS_ANNOTATION: SKIPPED_HOST_NETWORK}
        return Injection(result, False, SKIPPED_HOST_NETWORK, (f"not injected: {SKIPPED_HOST_NETWORK}",))
    taken = _names(spec.get("initContainers")) | _names(spec.get("containers"))
    taken_volumes = _names(spec.get("volumes"))
    ours = sorted((taken & set(CONTAINER_NAMES)) | (taken_volumes & set(VOLUME_NAMES)))
    if ours:
        if annotations.get(STATUS_ANNOTATION) == INJECTED:
            return Injection(copy.deepcopy(dict(pod)), False, "already injected")
        warning = f"not injected: the pod already has {', '.join(ours)} (a sidecar added by hand?); left as it is"
        return Injection(copy.deepcopy(dict(pod)), False, "has containers or volumes by our names", (warning,))

    pod_settings = replace(
        settings,
        exclude_cidrs=tuple(dict.fromkeys(settings.exclude_cidrs + _annotation_cidrs(annotations))),
        exclude_ports=tuple(dict.fromkeys(settings.exclude_ports + _annotation_ports(annotations))),
    )
    spec["initContainers"] = [*sidecar_init_containers(pod_settings), *(spec.get("initContainers") or [])]
    spec["volumes"] = [*(spec.get("volumes") or []), *sidecar_volumes(pod_settings)]
    metadata["annotations"] = {**annotations, STATUS_ANNOTATION: INJECTED}
    return Injection(result, True, INJECTED, tuple(_uid_warnings(spec, settings.envoy_uid)))


def sidecar_init_containers(settings: InjectSettings) -> list[dict[str, Any]]:
    """capture, bootstrap, Envoy: in this order, in front of the pod's own init containers."""
    return [_capture_container(settings), _bootstrap_container(settings), _envoy_container(settings)]


def sidecar_volumes(settings: InjectSettings) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [
        {"name": CONFIG_VOLUME, "emptyDir": {"sizeLimit": "1Mi"}},
        {
            "name": PODINFO_VOLUME,
            "downwardAPI": {"items": [{"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}}]},
        },
    ]
    if settings.admin_socket is not None:  # mounted into Envoy only: no other container can reach the socket
        volumes.append({"name": ADMIN_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}})
    if settings.mtls:
        volumes.append(
            {
                "name": SPIFFE_VOLUME,
                "csi": {
                    "driver": settings.spiffe_csi_driver,
                    "readOnly": True,
                    # the key file's group: Envoy's (runAsGroup), so Envoy can read it and nothing else in the pod
                    "volumeAttributes": {SPIFFE_FS_GROUP_ATTRIBUTE: str(settings.envoy_uid)},
                },
            }
        )
    return volumes


# --- the command lines: the one place that knows the flags of `capture`, `bootstrap` and Envoy ----------------


def capture_arguments(settings: InjectSettings) -> list[str]:
    """`egress-xds capture` flags (all on main)."""
    arguments = ["capture", "--port", str(settings.capture_port), "--envoy-uid", str(settings.envoy_uid)]
    for cidr in settings.exclude_cidrs:
        arguments += ["--exclude-cidr", cidr]
    for port in settings.exclude_ports:
        arguments += ["--exclude-port", str(port)]
    return arguments


def bootstrap_arguments(settings: InjectSettings) -> list[str]:
    """`egress-xds bootstrap` flags. `$(POD_NAME)` / `$(POD_NAMESPACE)` are expanded by the kubelet."""
    arguments = [
        "bootstrap",
        "--node-id",
        "$(POD_NAME).$(POD_NAMESPACE)",
        "--xds-address",
        settings.xds_address,
        "--pod-labels-file",
        LABELS_FILE,
    ]
    if settings.delta:
        arguments.append("--delta")
    arguments += admin_arguments(settings) + mtls_arguments(settings)
    return arguments


def admin_arguments(settings: InjectSettings) -> list[str]:
    """Admin on a unix socket (in a directory only Envoy's container mounts), a listener that answers only /ready."""
    arguments: list[str] = []
    if settings.admin_socket is not None:
        arguments += ["--admin-socket", settings.admin_socket]
    if settings.readiness_port is not None:
        arguments += ["--readiness-port", str(settings.readiness_port)]
    return arguments


def mtls_arguments(settings: InjectSettings) -> list[str]:
    """xDS over mTLS with the pod's SPIFFE certificate (csi-driver-spiffe's volume, mounted into Envoy only): the
    bootstrap names the files and writes the two SDS files that point Envoy at them next to its config."""
    if not settings.mtls:
        return []
    return [
        "--sds-dir",
        CONFIG_DIR,
        "--xds-ca",
        f"{SPIFFE_DIR}/ca.crt",
        "--client-cert",
        f"{SPIFFE_DIR}/tls.crt",
        "--client-key",
        f"{SPIFFE_DIR}/tls.key",
        "--xds-server-name",
        settings.server_name,
    ]


def envoy_arguments(settings: InjectSettings) -> list[str]:
    return [
        "-c",
        CONFIG_FILE,
        "--log-level",
        settings.envoy_log_level,
        "--concurrency",
        str(settings.envoy_concurrency),
    ]


def bootstrap_script(settings: InjectSettings) -> str:
    """The bootstrap container's `sh -c` text: the command, quoted, writing the file Envoy reads."""
    return f"{shlex.join(['egress-xds', *bootstrap_arguments(settings)])} > {CONFIG_FILE}"


# --- containers ------------------------------------------------------------------------------------------------


def _capture_container(settings: InjectSettings) -> dict[str, Any]:
    return {
        "name": CAPTURE_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "args": capture_arguments(settings),
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": False,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]},
        },
        "resources": settings.init_resources.as_kubernetes(),
    }


def _bootstrap_container(settings: InjectSettings) -> dict[str, Any]:
    return {
        "name": BOOTSTRAP_CONTAINER,
        "image": settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["sh", "-c"],
        "args": [bootstrap_script(settings)],
        "env": [
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "securityContext": {
            "runAsUser": BOOTSTRAP_UID,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": settings.init_resources.as_kubernetes(),
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR},
            {"name": PODINFO_VOLUME, "mountPath": PODINFO_DIR, "readOnly": True},
        ],
    }


def _envoy_container(settings: InjectSettings) -> dict[str, Any]:
    mounts: list[dict[str, Any]] = [{"name": CONFIG_VOLUME, "mountPath": CONFIG_DIR, "readOnly": True}]
    if settings.admin_socket is not None:
        mounts.append({"name": ADMIN_VOLUME, "mountPath": settings.admin_socket.rsplit("/", 1)[0]})
    if settings.mtls:
        mounts.append({"name": SPIFFE_VOLUME, "mountPath": SPIFFE_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": ENVOY_CONTAINER,
        "image": settings.envoy_image,
        "imagePullPolicy": settings.image_pull_policy,
        "restartPolicy": "Always",
        "args": envoy_arguments(settings),
        "securityContext": {
            "runAsUser": settings.envoy_uid,
            "runAsGroup": settings.envoy_uid,
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": settings.envoy_resources.as_kubernetes(),
        "volumeMounts": mounts,
    }
    if settings.readiness_port is not None:
        # The readiness listener answers /ready and nothing else (no config, no stats, no credentials).
        probe = {"httpGet": {"path": "/ready", "port": settings.readiness_port}}
        container["ports"] = [{"name": "egress-ready", "containerPort": settings.readiness_port}]
        container["startupProbe"] = {**probe, "periodSeconds": 1, "failureThreshold": 60}
        container["readinessProbe"] = {**probe, "periodSeconds": 5}
    else:  # today's bootstrap: the capture listener exists only once it came over xDS
        container["startupProbe"] = {
            "tcpSocket": {"port": settings.capture_port},
            "periodSeconds": 1,
            "failureThreshold": 60,
        }
    return container


# --- reading the pod ---------------------------------------------------------------------------------------------


def _names(items: Any) -> set[str]:
    if not isinstance(items, list):
        return set()
    return {item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str)}


def _annotation_values(annotations: Mapping[str, Any], key: str) -> list[str]:
    value = annotations.get(key)
    if value is None:
        return []
    if not isinstance(value, str):
        raise InjectionError(f"metadata.annotations[{key}]", "expected a string (a comma-separated list)")
    return [item.strip() for item in value.split(",") if item.strip()]


def _annotation_cidrs(annotations: Mapping[str, Any]) -> tuple[str, ...]:
    where = f"metadata.annotations[{EXCLUDE_CIDRS_ANNOTATION}]"
    try:
        return exclude_cidrs(_annotation_values(annotations, EXCLUDE_CIDRS_ANNOTATION), where)
    except ValueError as error:
        raise InjectionError(where, str(error).removeprefix(f"{where}: ")) from None


def _annotation_ports(annotations: Mapping[str, Any]) -> tuple[int, ...]:
    where = f"metadata.annotations[{EXCLUDE_PORTS_ANNOTATION}]"
    try:
        return exclude_ports(list(_annotation_values(annotations, EXCLUDE_PORTS_ANNOTATION)), where)
    except ValueError as error:
        raise InjectionError(where, str(error).removeprefix(f"{where}: ")) from None


def _uid_warnings(spec: Mapping[str, Any], envoy_uid: int) -> list[str]:
    """Containers that would run as Envoy's uid: their traffic is never captured."""
    pod_uid = (spec.get("securityContext") or {}).get("runAsUser")
    warnings = []
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        if not isinstance(container, dict) or container.get("name") in CONTAINER_NAMES:
            continue
        security = container.get("securityContext")
        uid = security.get("runAsUser", pod_uid) if isinstance(security, dict) else pod_uid
        if uid == envoy_uid:
            warnings.append(
                f"container {container.get('name')!r} runs as uid {envoy_uid}, Envoy's uid: its traffic is not captured"
            )
    return warnings

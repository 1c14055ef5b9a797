"""What the injected sidecar looks like: one frozen dataclass, from flags or from a YAML file shared by
`egress-xds inject --config FILE` and `egress-xds webhook --config FILE`.

The file's keys are camelCase (as in Kubernetes); an unknown key, a wrong type or a bad value is a `ConfigError`
naming `file:line: field: message`. Every field has a default, so an empty file (or none) is valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from egress_xds.defaults import CAPTURE_PORT, XDS_PORT
from egress_xds.policy.destinations import DestinationError, parse_address_or_network, parse_host_port, parse_port
from egress_xds.policy.errors import ConfigError, ConfigIssue, describe
from egress_xds.policy.yaml_tree import FieldPath, LocatedDocument, format_path, load_document

DEFAULT_ENVOY_UID = 1337
DEFAULT_XDS_ADDRESS = f"egress-xds.egress-xds.svc.cluster.local:{XDS_PORT}"
DEFAULT_ADMIN_SOCKET = "/var/run/egress-xds/envoy/admin.sock"
DEFAULT_READINESS_PORT = 15021
DEFAULT_SPIFFE_DRIVER = "spiffe.csi.cert-manager.io"
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|M|Mi|G|Gi|T|Ti)?$")
# An image reference (distribution's grammar, lower-case repository): [registry[:port]/]path[:tag][@sha256:digest]
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)
_DNS_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")


class SettingError(ValueError):
    """A bad value of one setting; `key` is its name in the file (camelCase)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key, self.message = key, message


@dataclass(frozen=True)
class Resources:
    """A container's `resources`: requests (cpu, memory) and a memory limit (no CPU limit: throttling a proxy
    adds latency to every connection of the pod)."""

    cpu_request: str = "10m"
    memory_request: str = "32Mi"
    memory_limit: str = "64Mi"

    def as_kubernetes(self) -> dict[str, Any]:
        return {
            "requests": {"cpu": self.cpu_request, "memory": self.memory_request},
            "limits": {"memory": self.memory_limit},
        }


ENVOY_RESOURCES = Resources(cpu_request="50m", memory_request="64Mi", memory_limit="256Mi")


@dataclass(frozen=True)
class InjectSettings:
    """Everything `inject_pod` needs besides the pod. Field names map to file keys by camelCase
    (`xds_address` <- `xdsAddress`); `envoy_resources` and `init_resources` are `resources.envoy` / `.init`."""

    image: str = "egress-xds:0.1.0"
    envoy_image: str = "envoyproxy/envoy:v1.40.0"
    image_pull_policy: str = "IfNotPresent"
    xds_address: str = DEFAULT_XDS_ADDRESS
    delta: bool = False
    envoy_uid: int = DEFAULT_ENVOY_UID
    capture_port: int = CAPTURE_PORT
    exclude_cidrs: tuple[str, ...] = ()
    exclude_ports: tuple[int, ...] = ()
    envoy_log_level: str = "info"
    envoy_concurrency: int = 2
    # Issue 11 (Envoy admin on a unix socket + a /ready-only listener). None: today's bootstrap flags (admin on
    # loopback TCP, Envoy's startup probe a TCP check of the capture port).
    admin_socket: str | None = DEFAULT_ADMIN_SOCKET
    readiness_port: int | None = DEFAULT_READINESS_PORT
    # Issue 11 (mTLS to the server with a SPIFFE certificate from csi-driver-spiffe, mounted into Envoy only).
    mtls: bool = False
    trust_domain: str = "cluster.local"
    xds_server_name: str | None = None  # default: the host of xds_address
    spiffe_csi_driver: str = DEFAULT_SPIFFE_DRIVER
    envoy_resources: Resources = ENVOY_RESOURCES
    init_resources: Resources = field(default_factory=Resources)
    # The webhook's own rule (never applied by `inject`): namespaces it never injects into, besides its own.
    ignored_namespaces: tuple[str, ...] = ("kube-system",)

    @property
    def server_name(self) -> str:
        return self.xds_server_name or parse_host_port(self.xds_address)[0]


_KEYS: dict[str, str] = {
    "image": "image",
    "envoyImage": "envoy_image",
    "imagePullPolicy": "image_pull_policy",
    "xdsAddress": "xds_address",
    "delta": "delta",
    "envoyUid": "envoy_uid",
    "capturePort": "capture_port",
    "excludeCidrs": "exclude_cidrs",
    "excludePorts": "exclude_ports",
    "envoyLogLevel": "envoy_log_level",
    "envoyConcurrency": "envoy_concurrency",
    "adminSocket": "admin_socket",
    "readinessPort": "readiness_port",
    "mtls": "mtls",
    "trustDomain": "trust_domain",
    "xdsServerName": "xds_server_name",
    "spiffeCsiDriver": "spiffe_csi_driver",
    "ignoredNamespaces": "ignored_namespaces",
}
_RESOURCE_KEYS = {"cpuRequest": "cpu_request", "memoryRequest": "memory_request", "memoryLimit": "memory_limit"}
_RESOURCE_FIELDS = {"envoy": "envoy_resources", "init": "init_resources"}
LOG_LEVELS = ("trace", "debug", "info", "warning", "error", "critical", "off")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


def load_settings(path: Path, base: InjectSettings | None = None) -> InjectSettings:
    """Read a settings file (ConfigError with `file:line: field: message` for every problem)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError([ConfigIssue(source, None, "", f"cannot read: {error.strerror or error}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([ConfigIssue(source, None, "", "not UTF-8 text")]) from None
    return settings_from_document(load_document(text, source), base or InjectSettings())


def settings_from_document(document: LocatedDocument, base: InjectSettings) -> InjectSettings:
    issues: list[ConfigIssue] = []

    def issue(path: FieldPath, message: str) -> None:
        issues.append(ConfigIssue(document.source, document.line_of(path), format_path(path), message))

    data = document.value
    if not isinstance(data, dict):
        raise ConfigError(
            [ConfigIssue(document.source, 1, "", f"expected a mapping of settings, got {describe(data)}")]
        )
    changes: dict[str, Any] = {}
    for key, value in data.items():
        if key == "resources":
            _resources(value, base, changes, issue)
        elif key in _KEYS:
            name = _KEYS[key]
            try:
                changes[name] = _convert(name, value)
            except SettingError as error:
                issue((key,), error.message)
            except ValueError as error:
                issue((key,), str(error))
        else:
            issue((key,), f"unknown setting (expected one of {', '.join(sorted([*_KEYS, 'resources']))})")
    if issues:
        raise ConfigError(issues)
    try:
        return check(replace(base, **changes))
    except SettingError as error:
        line = document.line_of((error.key,))
        raise ConfigError([ConfigIssue(document.source, line, error.key, error.message)]) from None


def _resources(value: Any, base: InjectSettings, changes: dict[str, Any], issue: Any) -> None:
    if not isinstance(value, dict):
        issue(("resources",), f"expected a mapping with `envoy` and/or `init`, got {describe(value)}")
        return
    for which, entry in value.items():
        if which not in _RESOURCE_FIELDS:
            issue(("resources", which), "unknown container kind (expected `envoy` or `init`)")
            continue
        if not isinstance(entry, dict):
            issue(("resources", which), f"expected a mapping, got {describe(entry)}")
            continue
        current: Resources = getattr(base, _RESOURCE_FIELDS[which])
        updates: dict[str, str] = {}
        for key, quantity in entry.items():
            if key not in _RESOURCE_KEYS:
                issue(("resources", which, key), f"unknown key (expected one of {', '.join(_RESOURCE_KEYS)})")
            elif (
                not isinstance(quantity, str | int) or isinstance(quantity, bool) or not _QUANTITY.match(str(quantity))
            ):
                issue(("resources", which, key), f"{describe(quantity)} is not a quantity (e.g. 50m, 64Mi)")
            else:
                updates[_RESOURCE_KEYS[key]] = str(quantity)
        changes[_RESOURCE_FIELDS[which]] = replace(current, **updates)


def _convert(name: str, value: Any) -> Any:
    """A file value as the dataclass field wants it; ValueError with a message for humans."""
    kind = {item.name: item.type for item in fields(InjectSettings)}[name]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {describe(value)}")
        return value
    if name in ("readiness_port", "admin_socket", "xds_server_name") and value is None:
        return None
    if name in ("envoy_uid", "envoy_concurrency", "capture_port", "readiness_port"):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"expected a number, got {describe(value)}")
        return value
    if name in ("exclude_cidrs", "exclude_ports", "ignored_namespaces"):
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {describe(value)}")
        if name == "exclude_ports":
            return exclude_ports(value, _camel(name))
        if not all(isinstance(item, str) for item in value):
            raise ValueError("expected a list of strings")
        return exclude_cidrs(value, _camel(name)) if name == "exclude_cidrs" else tuple(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {describe(value)}")
    return value


def check(settings: InjectSettings) -> InjectSettings:
    """Validate every field (ValueError naming the setting); returns the settings with CIDRs normalized."""
    for name in ("image", "envoy_image"):
        if not _IMAGE.match(getattr(settings, name)):
            raise SettingError(_camel(name), f"{describe(getattr(settings, name))} is not an image reference")
    if settings.image_pull_policy not in PULL_POLICIES:
        raise SettingError("imagePullPolicy", f"expected one of {', '.join(PULL_POLICIES)}")
    if settings.envoy_log_level not in LOG_LEVELS:
        raise SettingError("envoyLogLevel", f"expected one of {', '.join(LOG_LEVELS)}")
    try:
        parse_host_port(settings.xds_address)
    except DestinationError as error:
        raise SettingError("xdsAddress", f"{error}") from None
    if not 1 <= settings.envoy_uid <= 2**31 - 1:
        raise SettingError("envoyUid", f"expected 1-{2**31 - 1} (uid 0 would exempt every root process from capture)")
    if not 1 <= settings.envoy_concurrency <= 64:
        raise SettingError("envoyConcurrency", "expected 1-64")
    for name in ("capture_port", "readiness_port"):
        value = getattr(settings, name)
        if value is not None:
            try:
                parse_port(value)
            except DestinationError as error:
                raise SettingError(_camel(name), str(error)) from None
    if settings.readiness_port is not None and settings.readiness_port == settings.capture_port:
        raise SettingError("readinessPort", "must differ from capturePort")
    cidrs = exclude_cidrs(settings.exclude_cidrs, "excludeCidrs")
    ports = exclude_ports(settings.exclude_ports, "excludePorts")
    if settings.admin_socket is not None and not (
        settings.admin_socket.startswith("/")
        and settings.admin_socket.count("/") >= 2
        and " " not in settings.admin_socket
    ):
        raise SettingError(
            "adminSocket", "expected an absolute path in a directory of its own (e.g. /var/run/x/admin.sock)"
        )
    if not _DNS_NAME.match(settings.trust_domain):
        raise SettingError("trustDomain", f"{describe(settings.trust_domain)} is not a DNS name")
    if settings.xds_server_name is not None and not _DNS_NAME.match(settings.xds_server_name):
        raise SettingError("xdsServerName", f"{describe(settings.xds_server_name)} is not a DNS name")
    for namespace in settings.ignored_namespaces:
        if not re.fullmatch(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", namespace):
            raise SettingError("ignoredNamespaces", f"{describe(namespace)} is not a namespace name")
    return replace(settings, exclude_cidrs=cidrs, exclude_ports=ports)


def exclude_cidrs(values: tuple[str, ...] | list[str], where: str) -> tuple[str, ...]:
    """IP addresses or CIDRs (what `egress-xds capture --exclude-cidr` takes), normalized; ValueError."""
    found: list[str] = []
    for value in values:
        try:
            network = parse_address_or_network(value.strip())
        except DestinationError as error:
            raise SettingError(where, f"{error}") from None
        if str(network) not in found:
            found.append(str(network))
    return tuple(found)


def exclude_ports(values: tuple[object, ...] | list[object], where: str) -> tuple[int, ...]:
    found: list[int] = []
    for value in values:
        try:
            port = parse_port(value.strip() if isinstance(value, str) else value)
        except DestinationError as error:
            raise SettingError(where, f"{error}") from None
        if port not in found:
            found.append(port)
    return tuple(found)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)

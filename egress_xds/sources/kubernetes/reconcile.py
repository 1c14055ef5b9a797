"""The resources and Secrets held now -> the ordered policy set and the status each resource should show.

Pure and single-threaded (it runs on the event loop): the watch threads only hand it events. Precedence, as a
first-match order over `PolicySet` (a node gets the first policy whose selector matches it):

1. EgressProxy with a `workloadSelector` or `serviceAccounts` (the pod's namespace, labels, service account match)
2. EgressProxy without one: the default of its namespace
3. ClusterEgressProxy with a `workloadSelector` or `serviceAccounts` (pods in any namespace)
4. ClusterEgressProxy without one: the cluster-wide default

Within a tier the oldest resource wins (creation time, then namespace and name), as Istio does for overlapping
Sidecar resources, so that creating a new resource never silently takes pods away from an existing one.

An invalid resource keeps its last valid policy (with the selector it had then) in its place, so the workloads it
covered keep their configuration while its status says what is wrong. That memory lives in this process: after a
restart an invalid resource serves nothing until it is fixed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.model import EgressPolicy, PolicySet
from egress_xds.sources.kubernetes.api import Kind, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.conditions import DesiredStatus, shows
from egress_xds.sources.kubernetes.convert import has_workload_selector, policy_from_resource, referenced_secrets

Resource = dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What the held resources mean now: the policies in precedence order, and the status writes still needed."""

    policies: PolicySet
    statuses: tuple[DesiredStatus, ...]


@dataclass(frozen=True)
class _Converted:
    key: tuple[Any, ...]  # what the result depends on: uid, generation, the named Secrets' resourceVersions
    policy: EgressPolicy | None
    error: ConfigError | None


def resource_ref(kind: Kind, resource: Mapping[str, Any]) -> ResourceRef:
    metadata = resource.get("metadata") or {}
    namespace = str(metadata.get("namespace") or "") if kind.namespaced else ""
    return ResourceRef(kind, namespace, str(metadata.get("name", "")))


def secret_key(secret: Mapping[str, Any]) -> SecretKey:
    metadata = secret.get("metadata") or {}
    return (str(metadata.get("namespace", "")), str(metadata.get("name", "")))


class Reconciler:
    """Holds the latest resources and Secrets; `outcome()` says what they mean."""

    def __init__(self) -> None:
        self._resources: dict[ResourceRef, Resource] = {}
        self._secrets: dict[SecretKey, Resource] = {}
        self._converted: dict[ResourceRef, _Converted] = {}
        self._last_good: dict[ResourceRef, tuple[EgressPolicy, int]] = {}

    # -- inputs (from list and watch) ----------------------------------------------------------------------------

    def replace_resources(self, kind: Kind, items: Iterable[Resource]) -> None:
        """A (re)list: the complete set of one kind. Resources absent from it were deleted meanwhile."""
        fresh = {resource_ref(kind, item): item for item in items}
        for ref in [ref for ref in self._resources if ref.kind is kind and ref not in fresh]:
            self._forget(ref)
        self._resources.update(fresh)

    def resource_event(self, kind: Kind, event_type: str, resource: Resource) -> None:
        ref = resource_ref(kind, resource)
        if event_type == "DELETED":
            self._forget(ref)
        else:
            self._resources[ref] = resource

    def replace_secrets(self, items: Iterable[Resource]) -> None:
        self._secrets = {secret_key(item): item for item in items}

    def secret_event(self, event_type: str, secret: Resource) -> None:
        if event_type == "DELETED":
            self._secrets.pop(secret_key(secret), None)
        else:
            self._secrets[secret_key(secret)] = secret

    # -- output ----------------------------------------------------------------------------------------------------

    def outcome(self) -> Outcome:
        policies: list[EgressPolicy] = []
        statuses: list[DesiredStatus] = []
        for ref in sorted(self._resources, key=lambda ref: _precedence(ref, self._resources[ref])):
            resource = self._resources[ref]
            generation = int((resource.get("metadata") or {}).get("generation") or 0)
            converted = self._convert(ref, resource, generation)
            if converted.policy is not None:
                self._last_good[ref] = (converted.policy, generation)
                desired = DesiredStatus(ref, generation, True, "serving this generation to the workloads it selects")
            else:
                assert converted.error is not None
                desired = DesiredStatus(ref, generation, False, self._invalid_message(ref, converted.error))
            if ref in self._last_good:
                policies.append(self._last_good[ref][0])
            if not shows(resource, desired):
                statuses.append(desired)
        return Outcome(PolicySet(tuple(policies)), tuple(statuses))

    def resource(self, ref: ResourceRef) -> Resource | None:
        return self._resources.get(ref)

    # -- internals -------------------------------------------------------------------------------------------------

    def _convert(self, ref: ResourceRef, resource: Resource, generation: int) -> _Converted:
        metadata = resource.get("metadata") or {}
        secrets = sorted(referenced_secrets(ref, resource))
        key = (
            metadata.get("uid"),
            generation,
            metadata.get("resourceVersion") if not generation else None,  # no generation: any change counts
            tuple((secret, _resource_version(self._secrets.get(secret))) for secret in secrets),
        )
        cached = self._converted.get(ref)
        if cached is not None and cached.key == key:
            return cached
        try:
            converted = _Converted(key, policy_from_resource(ref, resource, self._secrets), None)
        except ConfigError as error:
            converted = _Converted(key, None, error)
        self._converted[ref] = converted
        return converted

    def _invalid_message(self, ref: ResourceRef, error: ConfigError) -> str:
        problems = "; ".join(
            f"{issue.path}: {issue.message}" if issue.path else issue.message for issue in error.issues
        )
        if ref in self._last_good:
            return f"{problems} (still serving generation {self._last_good[ref][1]}, the last valid one)"
        return f"{problems} (nothing is served from this resource)"

    def _forget(self, ref: ResourceRef) -> None:
        self._resources.pop(ref, None)
        self._converted.pop(ref, None)
        self._last_good.pop(ref, None)


def _precedence(ref: ResourceRef, resource: Mapping[str, Any]) -> tuple[int, str, str, str]:
    tier = (0 if ref.kind.namespaced else 2) + (0 if has_workload_selector(resource) else 1)
    created = str((resource.get("metadata") or {}).get("creationTimestamp") or "")
    return (tier, created, ref.namespace, ref.name)


def _resource_version(resource: Mapping[str, Any] | None) -> str | None:
    return None if resource is None else str((resource.get("metadata") or {}).get("resourceVersion"))

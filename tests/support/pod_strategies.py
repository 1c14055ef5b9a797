"""Hypothesis strategies for Kubernetes pods as users write them: with or without init containers, native
sidecars of their own, volumes, hostNetwork, a pod or container uid, and egress-xds' annotations (opt-out,
exclusions); and workload documents of every kind `inject` knows, plus kinds it must leave alone."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from egress_xds.inject.mutation import (
    EXCLUDE_CIDRS_ANNOTATION,
    EXCLUDE_PORTS_ANNOTATION,
    INJECT_ANNOTATION,
)

NAMES = st.sampled_from(["app", "web", "worker", "db-migrate", "istio-proxy", "log-shipper", "vault-agent", "x1"])
IMAGES = st.sampled_from(["curlimages/curl:8.11.1", "nginx:1.27", "busybox"])


@st.composite
def containers(draw: st.DrawFn, *, count: tuple[int, int], init: bool) -> list[dict[str, Any]]:
    names = draw(st.lists(NAMES, min_size=count[0], max_size=count[1], unique=True))
    result = []
    for name in names:
        container: dict[str, Any] = {"name": f"{'init-' if init else ''}{name}", "image": draw(IMAGES)}
        if init and draw(st.booleans()):
            container["restartPolicy"] = "Always"  # a native sidecar of the user's own
        if draw(st.booleans()):
            container["securityContext"] = {"runAsUser": draw(st.sampled_from([0, 1000, 1337, 65532]))}
        if draw(st.booleans()):
            container["args"] = draw(st.lists(st.sampled_from(["-v", "serve", "--port=8080"]), max_size=3))
        result.append(container)
    return result


@st.composite
def annotations(draw: st.DrawFn) -> dict[str, str]:
    found: dict[str, str] = {}
    if draw(st.integers(0, 9)) == 0:
        found[INJECT_ANNOTATION] = draw(st.sampled_from(["false", "disabled", "true", "enabled"]))
    if draw(st.booleans()):
        found[EXCLUDE_CIDRS_ANNOTATION] = ",".join(
            draw(st.lists(st.sampled_from(["10.0.0.0/8", "192.168.1.5", " 172.16.0.0/12", "10.1.2.3/16"]), max_size=3))
        )
    if draw(st.booleans()):
        found[EXCLUDE_PORTS_ANNOTATION] = ",".join(
            draw(st.lists(st.sampled_from(["22", "5432", " 6379", "443"]), max_size=3))
        )
    if draw(st.booleans()):
        found["example.com/owner"] = draw(st.sampled_from(["team-a", ""]))
    return found


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    """A `{"metadata", "spec"}` pod (template)."""
    spec: dict[str, Any] = {"containers": draw(containers(count=(1, 3), init=False))}
    init = draw(containers(count=(0, 3), init=True))
    if init:
        spec["initContainers"] = init
    if draw(st.booleans()):
        spec["volumes"] = [{"name": "data", "emptyDir": {}}]
    if draw(st.integers(0, 5)) == 0:
        spec["hostNetwork"] = True
    if draw(st.booleans()):
        spec["securityContext"] = {"runAsUser": draw(st.sampled_from([1000, 1337])), "runAsNonRoot": True}
    if draw(st.booleans()):
        spec["restartPolicy"] = draw(st.sampled_from(["Always", "OnFailure", "Never"]))
    metadata: dict[str, Any] = {}
    if draw(st.booleans()):
        metadata["labels"] = {"app": "x"}
    notes = draw(annotations())
    if notes:
        metadata["annotations"] = notes
    return {"metadata": metadata, "spec": spec} if metadata or draw(st.booleans()) else {"spec": spec}


WORKLOAD_PATHS = {
    "Deployment": ("apps/v1", ("spec", "template")),
    "StatefulSet": ("apps/v1", ("spec", "template")),
    "DaemonSet": ("apps/v1", ("spec", "template")),
    "ReplicaSet": ("apps/v1", ("spec", "template")),
    "Job": ("batch/v1", ("spec", "template")),
    "CronJob": ("batch/v1", ("spec", "jobTemplate", "spec", "template")),
}


def nest(path: tuple[str, ...], value: Any) -> Any:
    for key in reversed(path):
        value = {key: value}
    return value


@st.composite
def workloads(draw: st.DrawFn) -> dict[str, Any]:
    """A Pod or a workload with a pod template (a Pod gets `apiVersion`, `kind` and a name)."""
    pod = draw(pods())
    kind = draw(st.sampled_from(["Pod", *WORKLOAD_PATHS]))
    if kind == "Pod":
        metadata = {**pod.get("metadata", {}), "name": "p", "namespace": "shop"}
        return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod["spec"]}
    api_version, path = WORKLOAD_PATHS[kind]
    return {"apiVersion": api_version, "kind": kind, "metadata": {"name": "w"}, **nest(path, pod)}


OTHER_DOCUMENTS = st.sampled_from(
    [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"spec": "template"}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}},
        {"apiVersion": "example.com/v1", "kind": "PodLike", "spec": {"template": {"spec": {"containers": []}}}},
        {"kind": "Deployment"},  # no template: left as it is
        "just a string",
        [1, 2, 3],
    ]
)

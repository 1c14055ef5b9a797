"""`status --kubernetes` / `--service NAME.NAMESPACE`: every ready replica behind the server's Service.

The replicas are read from the Service's EndpointSlices (discovery.k8s.io/v1, label `kubernetes.io/service-name`)
with the official client, configured exactly as `serve --kubernetes` configures it (in-cluster, or a kubeconfig:
sources/kubernetes/client.py). An endpoint counts unless its `ready` condition is false (the API says an unset
condition means ready); its port is the slice's port named as the Service's xDS port in deploy/ (`grpc-xds`), or the
slice's only port. The pod name (`targetRef`) goes with each address, so a replica that does not answer is still
named by its pod.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from egress_xds.admin.replicas import Replica
from egress_xds.sources.kubernetes.client import ClientSettings, api_client

DEFAULT_SERVICE = "egress-xds.egress-xds"  # deploy/server.yaml
XDS_PORT_NAME = "grpc-xds"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
REQUEST_TIMEOUT_SECONDS = 10.0


class ReplicasNotFound(Exception):
    """The API server could not be asked, or the Service has no ready replica; the message says which and why."""


def parse_service(text: str) -> tuple[str, str]:
    """`NAME.NAMESPACE` -> (name, namespace); ValueError otherwise."""
    name, dot, namespace = text.partition(".")
    if not dot or not name or not namespace or "." in namespace or "/" in text:
        raise ValueError(f"{text!r}: expected NAME.NAMESPACE (the Service of the egress-xds replicas)")
    return name, namespace


def service_replicas(service: str, settings: ClientSettings) -> list[Replica]:
    """Every ready replica of `service` (NAME.NAMESPACE), each once, sorted by address. Raises ConfigError (no
    usable kubeconfig / in-cluster configuration) or ReplicasNotFound."""
    name, namespace = parse_service(service)
    with api_client(settings, os.environ) as api:
        try:
            slices = client.DiscoveryV1Api(api).list_namespaced_endpoint_slice(
                namespace,
                label_selector=f"{SERVICE_NAME_LABEL}={name}",
                _request_timeout=REQUEST_TIMEOUT_SECONDS,
            )
        except ApiException as error:
            raise ReplicasNotFound(
                f"cannot list the EndpointSlices of service {service}: {error.status} {error.reason}"
            ) from None
        except HTTPError as error:
            raise ReplicasNotFound(
                f"cannot reach the Kubernetes API server at {api.configuration.host}: {_why(error)}"
            ) from None
    replicas = ready_replicas(slices.items or [])
    if not replicas:
        raise ReplicasNotFound(f"service {service} has no ready replica (no ready endpoint in its EndpointSlices)")
    return replicas


def _why(error: HTTPError) -> str:
    """urllib3's reason without its object reprs: `MaxRetryError(... NewConnectionError('<...>: Failed to establish
    a new connection: [Errno 111] Connection refused'))` -> `Failed to establish a new connection: [Errno 111] ...`."""
    reason = getattr(error, "reason", None) or error
    text = str(reason)
    return text.split(">: ", 1)[-1] if ">: " in text else f"{type(reason).__name__}: {text}"


def ready_replicas(slices: Iterable[Any]) -> list[Replica]:
    """The ready endpoints of EndpointSlices (the client's V1EndpointSlice models), each address once, sorted."""
    found = {replica.address: replica for replica in _ready(slices)}
    return [found[address] for address in sorted(found)]


def _ready(slices: Iterable[Any]) -> Iterable[Replica]:
    for endpoint_slice in slices:
        ports = endpoint_slice.ports or []
        named = [port.port for port in ports if port.name == XDS_PORT_NAME and port.port]
        port = named[0] if named else (ports[0].port if len(ports) == 1 else None)
        if port is None:
            continue
        for endpoint in endpoint_slice.endpoints or []:
            conditions = endpoint.conditions
            if conditions is not None and conditions.ready is False:
                continue
            if not endpoint.addresses:
                continue
            host = endpoint.addresses[0]
            reference = endpoint.target_ref
            pod = reference.name if reference is not None and reference.kind == "Pod" else ""
            yield Replica(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", pod or "")

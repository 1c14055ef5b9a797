"""Objects as `kubectl apply` would send them, for the fake API server."""

from __future__ import annotations

import base64
from typing import Any

from egress_xds.sources.kubernetes.api import API_VERSION, CREDENTIALS_LABEL


def egress_proxy(name: str, namespace: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "EgressProxy", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}  # fmt: skip


def cluster_egress_proxy(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "ClusterEgressProxy", "metadata": {"name": name}, "spec": spec}


def secret(name: str, namespace: str, *, labelled: bool = True, **values: str) -> dict[str, Any]:
    labels = {CREDENTIALS_LABEL: "true"} if labelled else {}
    data = {key: base64.b64encode(value.encode()).decode() for key, value in values.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "type": "Opaque",
        "data": data,
    }


def kubeconfig_text(server: str, token: str, ca_file: str | None = None) -> str:
    cluster = f"server: {server}" + (f"\n      certificate-authority: {ca_file}" if ca_file else "")
    return f"""apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster:
      {cluster}
users:
  - name: tester
    user:
      token: {token}
contexts:
  - name: fake
    context: {{cluster: fake, user: tester}}
current-context: fake
"""


def endpoint_slice(name: str, service: str, endpoints: list[tuple[str, int, str, bool]]) -> dict[str, Any]:
    """An EndpointSlice as the endpoint-slice controller writes it: (ip, port, pod, ready) per endpoint; one port
    per slice, so each slice here holds the endpoints of one port."""
    ports = sorted({port for _, port, _, _ in endpoints})
    assert len(ports) == 1
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": "egress-xds", "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "grpc-xds", "port": ports[0], "protocol": "TCP"}],
        "endpoints": [
            {
                "addresses": [ip],
                "conditions": {"ready": ready},
                "targetRef": {"kind": "Pod", "name": pod, "namespace": "egress-xds"},
            }
            for ip, _, pod, ready in endpoints
        ],
    }

"""The benchmark's policy, and the versions egress-xds gives its nodes for it (computed, as they are content hashes).

Every simulated Envoy is a sidecar of this one policy, so all streams share one snapshot.
"""

from __future__ import annotations

import functools
from typing import Any

CDS = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
LDS = "type.googleapis.com/envoy.config.listener.v3.Listener"
TYPES = (CDS, LDS)

_PROXIES = ("corp", "partner", "eu", "lab")
SIDECARS = ("default", "sidecar")  # the (policy, mode) of every simulated Envoy


def policy_text(step: int) -> str:
    """One realistic policy at change `step` (0: the first): step k adds proxies `audit-1` .. `audit-k` and sends
    the first k proxy rules through them, so CDS and LDS both change at every step.

    NO_PROXY holds domain and host:port entries but no CIDR (bench/README.md, listener size).
    """
    lines = [
        "proxies:",
        "  corp:",
        "    endpoints:",
        "      - {url: 'http://proxy-a.corp.example:3128', priority: 0}",
        "      - {url: 'http://proxy-b.corp.example:3128', priority: 1}",
        "  partner: https://partner-proxy.example:443",
        "  eu: http://proxy.eu.corp.example:8080",
        "  lab: http://10.20.30.40:3128",
    ]
    lines += [f"  audit-{index}: http://audit-{index}.corp.example:3128" for index in range(1, step + 1)]
    lines += ["httpProxy: corp", "httpsProxy: corp", "rawTcp: tunnel", "noProxy:"]
    lines += [f"  - .svc{index}.internal.example" for index in range(90)]
    lines += [f"  - host{index}.corp.example:{8000 + index}" for index in range(10)]
    lines.append("rules:")
    audited = 0
    for index in range(30):
        if index < 3:
            rule = f"cidrs: [192.0.{index}.0/24], ports: [5432, 6379], action: direct"
        elif index % 3 == 0:
            rule = f"domains: [blocked{index}.example, '*.blocked{index}.example'], action: deny"
        else:
            audited += 1
            proxy = f"audit-{audited}" if audited <= step else _PROXIES[index % len(_PROXIES)]
            domains = f"['*.saas{index}.example', api.saas{index}.example]"
            rule = f"domains: {domains}, ports: [443], action: {{proxy: {proxy}}}"
        lines.append(f"  - {{name: rule-{index}, {rule}}}")
    return "\n".join(lines) + "\n"


def build_snapshot(text: str, name: str) -> Any:
    """The snapshot egress-xds serves every simulated Envoy for policy `text`, built as `serve` builds it."""
    from egress_xds.policy.node import NodeMode, PolicyGroup
    from egress_xds.policy.parse import parse_document
    from egress_xds.policy.yaml_tree import load_document
    from egress_xds.publish import PolicyPublisher
    from egress_xds.xds.cache import SnapshotCache

    cache = SnapshotCache(lambda node: None)
    PolicyPublisher(cache).publish(parse_document(load_document(text, name)))
    snapshot = cache.get(PolicyGroup(SIDECARS[0], NodeMode(SIDECARS[1])))
    if snapshot is None:
        raise RuntimeError(f"{name}: no snapshot for {SIDECARS}: {cache.keys()}")
    return snapshot


@functools.cache
def versions(step: int) -> dict[str, str]:
    """The versions of CDS and LDS every simulated Envoy holds once it converged on `policy_text(step)`."""
    snapshot = build_snapshot(policy_text(step), "bench")
    return {type_url: snapshot.versions[type_url] for type_url in TYPES}


def describe(step: int = 0) -> str:
    """Resource counts and sizes of the snapshot, for the report."""
    snapshot = build_snapshot(policy_text(step), "bench")
    parts = []
    for type_url in TYPES:
        resources = snapshot.resources(type_url)
        size = len(resources.sotw_body) / 1024
        parts.append(f"{type_url.rsplit('.', 1)[-1]}: {len(resources)} resources, {size:.1f} KiB")
    return ", ".join(parts)

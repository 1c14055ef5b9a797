"""The names egress-xds uses in the Kubernetes API; `deploy/` and the tests use the same ones.

The group is a DNS subdomain under the project's own name rather than under `k8s.io` (reserved for APIs reviewed by
the Kubernetes project) or a generic word (an `EgressProxy` kind in `networking.example` could collide with another
operator's). See the README's Kubernetes section.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

GROUP = "egress.egress-xds.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
# Only Secrets carrying this label are ever read: the server never loads the other Secrets of the cluster.
CREDENTIALS_LABEL = f"{GROUP}/proxy-credentials"
CREDENTIALS_LABEL_SELECTOR = f"{CREDENTIALS_LABEL}=true"
CONDITION_ACCEPTED = "Accepted"


class Kind(enum.Enum):
    """The two custom resource kinds. The value is the kind; `plural` is the URL segment."""

    EGRESS_PROXY = "EgressProxy"
    CLUSTER_EGRESS_PROXY = "ClusterEgressProxy"

    @property
    def plural(self) -> str:
        return self.value.lower().replace("proxy", "proxies")

    @property
    def namespaced(self) -> bool:
        return self is Kind.EGRESS_PROXY


@dataclass(frozen=True)
class ResourceRef:
    """One custom resource: kind, namespace ("" for the cluster-scoped kind) and name."""

    kind: Kind
    namespace: str
    name: str

    @property
    def where(self) -> str:
        """`namespace/name`, or `name` for the cluster-scoped kind."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    def __str__(self) -> str:
        return f"{self.kind.value} {self.where}"

    @property
    def policy_name(self) -> str:
        """Unique across kinds and namespaces, and never a valid file-format policy name (it has '/')."""
        return f"{self.kind.value.lower()}/{self.where}"


SecretKey = tuple[str, str]  # (namespace, name)

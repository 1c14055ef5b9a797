"""The policy set `serve` publishes when Kubernetes is combined with a policy file or the environment.

The resources come first: a node gets a file (or environment) policy only when no EgressProxy or
ClusterEgressProxy selects it. Kubernetes policies select only nodes that name a namespace, so VMs and standalone
Envoys (no namespace in their metadata) always fall through to the file. Kept free of the `kubernetes` client so
that `serve` without `--kubernetes` does not import it.
"""

from __future__ import annotations

from egress_xds.policy.model import PolicySet


class PolicyLayers:
    def __init__(self, static: PolicySet) -> None:
        self.static = static
        self.kubernetes = PolicySet(())

    def current(self) -> PolicySet:
        return PolicySet(self.kubernetes.policies + self.static.policies)

    def with_static(self, policies: PolicySet) -> PolicySet:
        self.static = policies
        return self.current()

    def with_kubernetes(self, policies: PolicySet) -> PolicySet:
        self.kubernetes = policies
        return self.current()

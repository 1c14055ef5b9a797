"""Envoy nodes as the policy layer sees them, and which policy a node gets."""

from __future__ import annotations

import enum
import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from egress_xds.policy.model import EgressPolicy, NodeSelector, PolicySet

MODE_METADATA_KEY = "mode"


class NodeMode(enum.Enum):
    """A sidecar captures all outbound TCP on port 15001; a standalone node has explicit listeners only."""

    SIDECAR = "sidecar"
    STANDALONE = "standalone"


@dataclass(frozen=True)
class Node:
    """An Envoy node: its id and its metadata flattened to strings (nested keys joined with '.')."""

    id: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.id, tuple(sorted(self.metadata.items()))))

    @property
    def mode(self) -> NodeMode:
        value = self.metadata.get(MODE_METADATA_KEY, NodeMode.SIDECAR.value)
        try:
            return NodeMode(value)
        except ValueError:
            return NodeMode.SIDECAR


def selector_matches(selector: NodeSelector, node: Node) -> bool:
    if not fnmatch.fnmatchcase(node.id, selector.id_glob):
        return False
    return all(node.metadata.get(key) == value for key, value in selector.metadata.items())


def select_policy(policies: PolicySet, node: Node) -> EgressPolicy | None:
    """The first policy whose selector matches the node, or None (the node then gets no configuration)."""
    for policy in policies.policies:
        if selector_matches(policy.selector, node):
            return policy
    return None

"""Envoy nodes as the policy layer sees them, and which policy a node gets."""

from __future__ import annotations

import enum
import fnmatch
import logging
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

from egress_xds.policy.model import EgressPolicy, MetadataRequirement, NodeSelector, PolicySet, SelectorOperator

MODE_METADATA_KEY = "mode"
# What a Kubernetes sidecar says about itself (written by `egress-xds bootstrap`, read by workload selectors).
NAMESPACE_METADATA_KEY = "namespace"
POD_METADATA_KEY = "pod"
# The pod's Kubernetes service account (a claim, unless a verified client certificate says it: xds/identity.py).
SERVICE_ACCOUNT_METADATA_KEY = "serviceAccount"
LABEL_METADATA_PREFIX = "labels."

_log = logging.getLogger("egress_xds.policy.node")


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
        """The node's mode; sidecar when it says none. A node whose mode is unknown (`mode_error`) gets no policy
        (`select_policy`), so this default never reaches Envoy for it."""
        mode = known_mode(self.metadata.get(MODE_METADATA_KEY, NodeMode.SIDECAR.value))
        return NodeMode.SIDECAR if mode is None else mode

    @property
    def mode_error(self) -> str | None:
        """Why the node's `mode` metadata is not one of the modes, or None when it is (or is absent)."""
        value = self.metadata.get(MODE_METADATA_KEY)
        if value is None or known_mode(value) is not None:
            return None
        return unknown_mode_message(value)


def known_mode(value: str) -> NodeMode | None:
    """The mode spelled exactly `value` (like a Kubernetes enum: `Standalone` is not `standalone`), or None."""
    try:
        return NodeMode(value)
    except ValueError:
        return None


def unknown_mode_message(value: str) -> str:
    accepted = " or ".join(repr(mode.value) for mode in NodeMode)
    return f"unknown {MODE_METADATA_KEY} {value!r}: expected {accepted} (exact, lowercase)"


@dataclass(frozen=True)
class PolicyGroup:
    """The nodes that share one snapshot: those one policy selects, in one mode (the cache's group key)."""

    policy: str
    mode: NodeMode

    def __str__(self) -> str:
        return f"{self.policy}/{self.mode.value}"


def selector_matches(selector: NodeSelector, node: Node) -> bool:
    if not fnmatch.fnmatchcase(node.id, selector.id_glob):
        return False
    if selector.service_account_glob is not None and not fnmatch.fnmatchcase(
        node.metadata.get(SERVICE_ACCOUNT_METADATA_KEY, ""), selector.service_account_glob
    ):
        return False
    if not all(node.metadata.get(key) == value for key, value in selector.metadata.items()):
        return False
    return all(requirement_matches(requirement, node.metadata) for requirement in selector.requirements)


def requirement_matches(requirement: MetadataRequirement, metadata: Mapping[str, str]) -> bool:
    """Kubernetes label-selector semantics: `NotIn` and `DoesNotExist` hold for an absent key."""
    value = metadata.get(requirement.key)
    operator = requirement.operator
    if operator is SelectorOperator.EXISTS:
        return value is not None
    if operator is SelectorOperator.DOES_NOT_EXIST:
        return value is None
    if operator is SelectorOperator.IN:
        return value is not None and value in requirement.values
    return value is None or value not in requirement.values


def select_policy(policies: PolicySet, node: Node) -> EgressPolicy | None:
    """The first policy whose selector matches the node, or None (the node then gets no configuration).

    This is the one place where what a node says about itself (its id and metadata: `namespace`, `labels.*`)
    decides which policy, and so which proxy credentials, it receives. Without client certificates those are
    *claims*: any node can say any namespace. With `serve --client-ca`, `xds/identity.py` hands this function a
    `Node` whose `namespace` and `serviceAccount` come from the verified certificate (the rest stays a claim).

    A node whose `mode` is unknown gets none: a sidecar's capture listener (or a standalone node's listeners)
    given to an Envoy that asked for something else would be a guess. It is logged once per Node object, that is
    once per xDS stream (each stream builds its own from its first request).
    """
    if node.mode_error is not None:
        _warn_once(node, node.mode_error)
        return None
    for policy in policies.policies:
        if selector_matches(policy.selector, node):
            return policy
    return None


# The nodes already warned about, by object identity (equal nodes on two streams are two warnings); an entry goes
# when its stream's node is collected.
_warned: weakref.WeakValueDictionary[int, Node] = weakref.WeakValueDictionary()


def _warn_once(node: Node, problem: str) -> None:
    if _warned.get(id(node)) is node:
        return
    _warned[id(node)] = node
    _log.warning("node %s gets no configuration: %s", node.id or "-", problem)

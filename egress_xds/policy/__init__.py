"""The egress policy: model, parsing, NO_PROXY semantics, and which policy a node gets."""

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import (
    Action,
    ActionKind,
    EgressPolicy,
    PolicySet,
    Proxy,
    ProxyEndpoint,
    RawTcpMode,
    Rule,
    Scheme,
)
from egress_xds.policy.node import Node, NodeMode, select_policy

__all__ = [
    "Action",
    "ActionKind",
    "ConfigError",
    "ConfigIssue",
    "EgressPolicy",
    "Node",
    "NodeMode",
    "PolicySet",
    "Proxy",
    "ProxyEndpoint",
    "RawTcpMode",
    "Rule",
    "Scheme",
    "select_policy",
]

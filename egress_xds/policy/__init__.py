"""The egress policy: model, parsing, NO_PROXY semantics, and which policy a node gets."""

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.policy.model import (
    Action,
    Deny,
    Direct,
    EgressPolicy,
    PolicySet,
    Proxy,
    ProxyEndpoint,
    RawTcpMode,
    Rule,
    Scheme,
    ViaProxy,
)
from egress_xds.policy.node import Node, NodeMode, select_policy

__all__ = [
    "Action",
    "ConfigError",
    "ConfigIssue",
    "Deny",
    "Direct",
    "EgressPolicy",
    "Node",
    "NodeMode",
    "PolicySet",
    "Proxy",
    "ProxyEndpoint",
    "RawTcpMode",
    "Rule",
    "Scheme",
    "ViaProxy",
    "select_policy",
]

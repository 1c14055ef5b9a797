"""Envoy's `Node` message as the policy layer sees it: an id and flat string metadata."""

from __future__ import annotations

from collections.abc import Iterator

from envoy.config.core.v3.base_pb2 import Node as NodeMessage
from google.protobuf.struct_pb2 import Struct, Value

from egress_xds.policy.node import Node


def node_from_proto(node: object | None) -> Node:
    """Convert `envoy.config.core.v3.Node`; nested metadata keys are joined with '.'.

    Values become the strings a policy selector compares with (booleans `true`/`false`, integral numbers without
    a fraction, lists comma-separated). A missing node (a client that sent none on its first request) is the
    anonymous node with an empty id.
    """
    if node is None:
        return Node(id="")
    node_id = str(getattr(node, "id", ""))
    metadata = getattr(node, "metadata", None)
    flat = dict(_flatten(metadata, "")) if isinstance(metadata, Struct) else {}
    return Node(id=node_id, metadata=flat)


def node_identity(node: object | None) -> bytes:
    """The identity part of an `envoy.config.core.v3.Node`, serialized, for CSDS to hand back.

    Envoy's node also lists every extension compiled in (a few KiB); only who the node is is kept per stream.
    """
    if not isinstance(node, NodeMessage):
        return b""
    trimmed = NodeMessage(
        id=node.id,
        cluster=node.cluster,
        user_agent_name=node.user_agent_name,
        user_agent_version=node.user_agent_version,
    )
    for name in ("metadata", "locality", "user_agent_build_version"):
        if node.HasField(name):
            getattr(trimmed, name).CopyFrom(getattr(node, name))
    return bytes(trimmed.SerializeToString(deterministic=True))


def _flatten(struct: Struct, prefix: str) -> Iterator[tuple[str, str]]:
    for key in sorted(struct.fields):
        value = struct.fields[key]
        if value.WhichOneof("kind") == "struct_value":
            yield from _flatten(value.struct_value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _text(value)


def _text(value: Value) -> str:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "number_value":
        number = value.number_value
        return str(int(number)) if number.is_integer() else repr(number)
    if kind == "list_value":
        return ",".join(_text(item) for item in value.list_value.values)
    if kind == "struct_value":
        return ",".join(f"{key}={text}" for key, text in _flatten(value.struct_value, ""))
    return ""

"""CSDS `node_matchers`: which connected nodes a `ClientStatusRequest` asks about.

Envoy's `NodeMatcher` is `node_id` (a StringMatcher) AND every `node_metadatas` entry (a StructMatcher: a path
into the node's metadata Struct and a ValueMatcher); several matchers in one request are ORed. Supported: every
StringMatcher form except `custom` (`safe_regex` with Python's `re`, which accepts the RE2 syntax people write),
and the ValueMatchers `string_match`, `bool_match`, `present_match`, `null_match`, `double_match` and `or_match`.
Anything else raises `UnsupportedMatcher`, answered with INVALID_ARGUMENT rather than a silently wrong list.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from envoy.config.core.v3.base_pb2 import Node as NodeMessage
from envoy.type.matcher.v3.node_pb2 import NodeMatcher
from envoy.type.matcher.v3.string_pb2 import StringMatcher
from envoy.type.matcher.v3.struct_pb2 import StructMatcher
from envoy.type.matcher.v3.value_pb2 import ValueMatcher
from google.protobuf.struct_pb2 import Value


class UnsupportedMatcher(ValueError):
    """A matcher this server cannot evaluate."""


def check_matchers(matchers: Sequence[NodeMatcher]) -> None:
    """Raise UnsupportedMatcher for a matcher this server cannot evaluate, whether or not any node is connected
    (a bad regex was answered INVALID_ARGUMENT only while some stream was there to match it against)."""
    for matcher in matchers:
        if matcher.HasField("node_id"):
            string_matches(matcher.node_id, "")
        for entry in matcher.node_metadatas:
            value_matches(entry.value, None)
            value_matches(entry.value, Value(string_value=""))


def any_matches(matchers: Sequence[NodeMatcher], node: NodeMessage) -> bool:
    """No matchers: every node. Otherwise the node must match at least one."""
    return not matchers or any(node_matches(matcher, node) for matcher in matchers)


def node_matches(matcher: NodeMatcher, node: NodeMessage) -> bool:
    if matcher.HasField("node_id") and not string_matches(matcher.node_id, node.id):
        return False
    return all(struct_matches(entry, node) for entry in matcher.node_metadatas)


def string_matches(matcher: StringMatcher, value: str) -> bool:
    pattern = matcher.WhichOneof("match_pattern")
    if pattern == "safe_regex":
        try:
            return re.fullmatch(matcher.safe_regex.regex, value) is not None
        except re.error as error:
            raise UnsupportedMatcher(f"safe_regex {matcher.safe_regex.regex!r}: {error}") from None
    if pattern not in ("exact", "prefix", "suffix", "contains"):
        raise UnsupportedMatcher(f"StringMatcher {pattern or '(empty)'} is not supported")
    expected = str(getattr(matcher, pattern))
    if matcher.ignore_case:
        expected, value = expected.lower(), value.lower()
    if pattern == "exact":
        return value == expected
    if pattern == "prefix":
        return value.startswith(expected)
    if pattern == "suffix":
        return value.endswith(expected)
    return expected in value


def struct_matches(matcher: StructMatcher, node: NodeMessage) -> bool:
    value: Value | None = None
    fields = node.metadata.fields
    for index, segment in enumerate(matcher.path):
        if segment.key not in fields:
            value = None
            break
        value = fields[segment.key]
        if index < len(matcher.path) - 1:
            if value.WhichOneof("kind") != "struct_value":
                value = None
                break
            fields = value.struct_value.fields
    return value_matches(matcher.value, value)


def value_matches(matcher: ValueMatcher, value: Value | None) -> bool:
    pattern = matcher.WhichOneof("match_pattern")
    kind = value.WhichOneof("kind") if value is not None else None
    if pattern == "present_match":
        return (value is not None) == bool(matcher.present_match)
    if pattern == "null_match":
        return kind == "null_value"
    if value is None:
        return False
    if pattern == "string_match":
        return kind == "string_value" and string_matches(matcher.string_match, value.string_value)
    if pattern == "bool_match":
        return kind == "bool_value" and bool(value.bool_value == matcher.bool_match)
    if pattern == "double_match":
        if kind != "number_value":
            return False
        double = matcher.double_match
        if double.WhichOneof("match_pattern") == "exact":
            return bool(value.number_value == double.exact)
        return bool(double.range.start <= value.number_value < double.range.end)
    if pattern == "or_match":
        return any(value_matches(alternative, value) for alternative in matcher.or_match.value_matchers)
    raise UnsupportedMatcher(f"ValueMatcher {pattern or '(empty)'} is not supported")

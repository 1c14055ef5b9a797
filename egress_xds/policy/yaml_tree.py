"""Load YAML or JSON into plain Python values while remembering the line of every value.

PyYAML's composer gives each node a start mark; we walk the node graph ourselves so that an error can name the
line of the offending field, and so that duplicate keys (which PyYAML silently collapses) are reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from egress_xds.policy.errors import ConfigError, ConfigIssue

PathElement = str | int
FieldPath = tuple[PathElement, ...]


def format_path(path: FieldPath) -> str:
    """`("rules", 2, "action")` -> `rules[2].action`."""
    text = ""
    for element in path:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            text += f".{element}" if text else element
    return text


@dataclass
class LocatedDocument:
    """The parsed value plus the 1-based line of every field path in it."""

    source: str
    value: Any
    lines: dict[FieldPath, int] = field(default_factory=dict)

    def line_of(self, path: FieldPath) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = path[:-1]


def load_document(text: str, source: str) -> LocatedDocument:
    """Parse YAML (JSON is a subset) and record lines. Raises ConfigError on syntax errors or duplicate keys."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([ConfigIssue(source, line, "", f"not valid YAML/JSON: {problem}")]) from None
    document = LocatedDocument(source, None)
    if root is None:
        document.value = {}
        return document
    issues: list[ConfigIssue] = []
    document.value = _convert(root, (), document, issues)
    if issues:
        raise ConfigError(issues)
    return document


def _convert(node: yaml.Node, path: FieldPath, document: LocatedDocument, issues: list[ConfigIssue]) -> Any:
    document.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node)
            key_text = str(key)
            if key_text in result:
                issues.append(
                    ConfigIssue(
                        document.source,
                        key_node.start_mark.line + 1,
                        format_path((*path, key_text)),
                        "duplicate key (each key may appear once)",
                    )
                )
                continue
            result[key_text] = _convert(value_node, (*path, key_text), document, issues)
            document.lines[(*path, key_text)] = key_node.start_mark.line + 1
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, index), document, issues) for index, item in enumerate(node.value)]
    return _scalar(node)


def _scalar(node: yaml.Node) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return str(node.value)
    constructor = yaml.SafeLoader("")
    return constructor.construct_object(node, deep=True)

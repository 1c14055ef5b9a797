"""Load YAML or JSON into plain Python values while remembering the line of every value, within fixed bounds.

The document is built from the parser's events (libyaml's when available) by a loop with an explicit stack, not
by PyYAML's recursive composer: so the nesting depth is a limit we choose, not the interpreter's recursion limit,
and an error can name the line of the offending field. Duplicate keys (which PyYAML silently collapses) are
reported. What a policy may hold is bounded, so that any input is rejected or accepted within a second:

- at most `MAX_DOCUMENT_BYTES` (512 KiB: the example policy is 1 KB, a NO_PROXY list of 10,000 names 200 KB;
  the slowest file of that size to accept or reject takes about 0.5 s);
- at most `MAX_DEPTH` levels of nesting (the policy format itself needs 6);
- at most `MAX_VALUES` values (scalars, lists and mappings; a comma-separated NO_PROXY string is one value);
- no anchors or aliases (`&name`, `*name`, `<<: *name`): policies do not need them, and each alias level
  multiplies the document (a few lines become 10^7 values);
- only the plain YAML types (string, integer, float, boolean, null) and the standard `!!str`, `!!int`,
  `!!float`, `!!bool`, `!!null`, `!!map`, `!!seq` tags; a date-like scalar stays a string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from egress_xds.policy.errors import ConfigError, ConfigIssue
from egress_xds.redact import redact_value

PathElement = str | int
FieldPath = tuple[PathElement, ...]

MAX_DOCUMENT_BYTES = 512 * 1024
MAX_DEPTH = 64
MAX_VALUES = 50_000

_STANDARD = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_STANDARD}{name}" for name in ("str", "int", "float", "bool", "null")}
_STR_TAG = f"{_STANDARD}str"
_COLLECTION_TAGS: dict[type[yaml.Event], str] = {
    yaml.MappingStartEvent: f"{_STANDARD}map",
    yaml.SequenceStartEvent: f"{_STANDARD}seq",
}
_Loader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()


def format_path(path: FieldPath) -> str:
    """`("rules", 2, "action")` -> `rules[2].action`. A key is shown like a value (`redact_value`): a mistaken
    key may be a URL with a password."""
    text = ""
    for element in path:
        if isinstance(element, int):
            text += f"[{element}]"
        else:
            key = redact_value(element)
            text += f".{key}" if text else key
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


class _Refused(Exception):
    """Ends the walk: the document is beyond a limit, or a construct is refused."""

    def __init__(self, line: int | None, path: FieldPath, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message


@dataclass
class _Collection:
    path: FieldPath
    value: dict[str, Any] | list[Any]
    keep: bool  # False for the value of a duplicate key: walked (to find its end) but not stored
    key: str | None = None  # a mapping whose key was read and whose value comes next
    key_pending: bool = False
    shown_key: str = ""  # that key also when it is a duplicate (None above): the path of an error in its value


def load_document(text: str, source: str) -> LocatedDocument:
    """Parse YAML (JSON is a subset) and record lines. Raises ConfigError (only ConfigError) for anything wrong."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise ConfigError([ConfigIssue(source, None, "", too_large_message())])
    document = LocatedDocument(source, None)
    issues: list[ConfigIssue] = []
    try:
        document.value = _build(text, document, issues)
    except _Refused as refused:
        raise ConfigError([ConfigIssue(source, refused.line, format_path(refused.path), refused.message)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(source, *_syntax_error(exc, text))]) from None
    except UnicodeError:  # a lone surrogate in a str given by a caller (files are decoded strictly before this)
        raise ConfigError([ConfigIssue(source, None, "", "not valid text (a lone surrogate character)")]) from None
    if issues:
        raise ConfigError(issues)
    if document.value is None:
        document.value = {}
    return document


def tree_limit_problem(value: Any) -> tuple[FieldPath, str] | None:
    """For a tree that did not come from `load_document` (a Kubernetes resource): the path and message of the
    first place beyond `MAX_DEPTH` or `MAX_VALUES`, or None. Iterative: any depth is safe to check."""
    pending: list[tuple[FieldPath, Any]] = [((), value)]
    count = 0
    while pending:
        path, item = pending.pop()
        count += 1
        if count > MAX_VALUES:
            return path, f"more than {MAX_VALUES} values; a policy is small"
        if not isinstance(item, dict | list):
            continue
        if len(path) >= MAX_DEPTH:
            return path, f"nested deeper than {MAX_DEPTH} levels"
        children = item.items() if isinstance(item, dict) else enumerate(item)
        pending.extend(((*path, key if isinstance(key, int) else str(key)), child) for key, child in children)
    return None


def too_large_message() -> str:
    return f"larger than {MAX_DOCUMENT_BYTES // 1024} KiB (a policy is small; is this the right file?)"


def _build(text: str, document: LocatedDocument, issues: list[ConfigIssue]) -> Any:
    stack: list[_Collection] = []
    root: Any = None
    documents = 0
    values = 0
    for event in yaml.parse(text, Loader=_Loader):
        kind = type(event)
        if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
            finished = stack.pop()
            if stack:
                _store(stack[-1], finished.value, finished.keep)
            else:
                root = finished.value
            continue
        if kind is yaml.DocumentStartEvent:
            documents += 1
            if documents > 1:
                raise _Refused(_line(event), (), "more than one YAML document ('---'); a policy file holds one")
            continue
        if kind not in _NODE_EVENTS:
            continue  # stream and document boundaries
        assert isinstance(event, yaml.NodeEvent)
        parent = stack[-1] if stack else None
        path, keep = _child_path(parent)
        if kind is yaml.AliasEvent or event.anchor is not None:
            raise _Refused(
                _line(event),
                path,
                "YAML anchors and aliases (&name, *name) are not supported in a policy; write the value out",
            )
        values += 1
        if values > MAX_VALUES:
            raise _Refused(_line(event), path, f"more than {MAX_VALUES} values; a policy is small")
        if parent is not None and not parent.key_pending and type(parent.value) is dict:
            _read_key(event, parent, document, issues)
            continue
        if keep:
            document.lines.setdefault(path, _line(event))
        if isinstance(event, yaml.ScalarEvent):
            value = _scalar(event, path)
            if parent is None:
                root = value
            else:
                _store(parent, value, keep)
            continue
        _check_collection_tag(event, path)
        if len(stack) >= MAX_DEPTH:
            raise _Refused(_line(event), path, f"nested deeper than {MAX_DEPTH} levels")
        container: dict[str, Any] | list[Any] = {} if kind is yaml.MappingStartEvent else []
        stack.append(_Collection(path, container, keep))
    return root


_NODE_EVENTS = frozenset({yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent, yaml.AliasEvent})


def _child_path(parent: _Collection | None) -> tuple[FieldPath, bool]:
    if parent is None:
        return (), True
    if isinstance(parent.value, list):
        return (*parent.path, len(parent.value)), parent.keep
    if parent.key_pending:
        return (*parent.path, parent.shown_key), parent.keep and parent.key is not None
    return parent.path, parent.keep


def _read_key(
    event: yaml.NodeEvent, mapping: _Collection, document: LocatedDocument, issues: list[ConfigIssue]
) -> None:
    if not isinstance(event, yaml.ScalarEvent):
        kind = "a mapping" if isinstance(event, yaml.MappingStartEvent) else "a list"
        raise _Refused(_line(event), mapping.path, f"a key must be a string, got {kind}")
    key = str(_scalar(event, mapping.path))
    assert isinstance(mapping.value, dict)
    mapping.key_pending = True
    mapping.shown_key = key
    if key in mapping.value:
        if mapping.keep:
            issues.append(
                ConfigIssue(
                    document.source,
                    _line(event),
                    format_path((*mapping.path, key)),
                    "duplicate key (each key may appear once)",
                )
            )
        mapping.key = None  # the value is read and dropped
        return
    mapping.key = key
    if mapping.keep:
        document.lines[(*mapping.path, key)] = _line(event)


def _store(parent: _Collection, value: Any, keep: bool) -> None:
    if isinstance(parent.value, list):
        parent.value.append(value)
        return
    if keep and parent.key is not None:
        parent.value[parent.key] = value
    parent.key, parent.key_pending = None, False


def _scalar(event: yaml.ScalarEvent, path: FieldPath) -> Any:
    tag = event.tag
    if tag is None or tag == "!":
        if not event.implicit[0]:  # quoted: a string
            return event.value
        tag = _resolve(event)
    elif tag not in _SCALAR_TAGS:
        raise _Refused(_line(event), path, _tag_message(tag))
    if tag == _STR_TAG or tag not in _SCALAR_TAGS:  # not in: an implicit timestamp (`2024-01-01`) stays a string
        return event.value
    node = yaml.ScalarNode(tag, event.value, style=event.style)
    try:
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
    # `!!int ''` raises IndexError, `!!bool x` KeyError, `!!int 99...9` ValueError (Python's digit limit)
    except (ValueError, LookupError, TypeError, ArithmeticError, yaml.YAMLError) as exc:
        name = tag.removeprefix(_STANDARD)
        reason = "the number is too large" if "limit" in str(exc) else f"not a valid !!{name}"
        raise _Refused(_line(event), path, f"{reason}: {redact_value(event.value)!r}") from None


def _check_collection_tag(event: yaml.NodeEvent, path: FieldPath) -> None:
    tag = getattr(event, "tag", None)
    if tag not in (None, "!", _COLLECTION_TAGS.get(type(event))):
        raise _Refused(_line(event), path, _tag_message(str(tag)))


def _tag_message(tag: str) -> str:
    shown = f"!!{tag.removeprefix(_STANDARD)}" if tag.startswith(_STANDARD) else tag
    return f"unsupported YAML tag {redact_value(shown)!r} (a policy holds plain strings, numbers, lists and mappings)"


def _line(event: yaml.Event) -> int:
    mark: Any = event.start_mark
    return int(mark.line) + 1 if mark is not None else 1


def _resolve(event: yaml.ScalarEvent) -> str:
    """The tag of an untagged plain scalar, as YAML 1.1 implicit resolution says (`80` int, `yes` bool)."""
    resolve: Any = _RESOLVER.resolve
    return str(resolve(yaml.ScalarNode, event.value, event.implicit))


def _syntax_error(exc: yaml.YAMLError, text: str) -> tuple[int | None, str, str]:
    """(line, path, message) of a parser error; never the parser's quote of the offending line."""
    if isinstance(exc, yaml.reader.ReaderError):
        line = _line_at(text, exc.position) if isinstance(exc.position, int) else None
        character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        return line, "", f"not valid YAML/JSON: control character U+{character:04X} (is this a text file?)"
    mark = getattr(exc, "problem_mark", None)
    line = mark.line + 1 if mark is not None else None
    problem = getattr(exc, "problem", None) or "syntax error"
    if "nesting depth" in str(problem):  # PyYAML >= 6.0.4 has a depth limit of its own, which may trip first
        return line, "", f"nested deeper than {MAX_DEPTH} levels"
    return line, "", f"not valid YAML/JSON: {problem}"


def _line_at(text: str, position: int) -> int:
    """The line of a reader error's position: libyaml counts bytes of the UTF-8 text, PyYAML characters."""
    if _Loader is yaml.SafeLoader:
        return text.count("\n", 0, position) + 1
    return text.encode("utf-8", "surrogatepass")[:position].count(b"\n") + 1

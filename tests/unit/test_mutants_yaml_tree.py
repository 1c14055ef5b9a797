"""The YAML loader's contract, exactly: `file:line: field: message` for every refusal, the line of every value, the
limits at their boundaries, and the tags (found by mutation testing, scripts/mutation.sh yaml_tree).
"""

from __future__ import annotations

from typing import Any

import pytest

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.yaml_tree import (
    MAX_DEPTH,
    MAX_DOCUMENT_BYTES,
    MAX_VALUES,
    LocatedDocument,
    format_path,
    load_document,
    too_large_message,
    tree_limit_problem,
)

_NO_ALIASES = "YAML anchors and aliases (&name, *name) are not supported in a policy; write the value out"


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_document(text, "p.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_format_path() -> None:
    assert format_path(()) == ""
    assert format_path(("rules", 2, "action")) == "rules[2].action"
    assert format_path((0, "a", 1, 2)) == "[0].a[1][2]"
    # A mistaken key may be a URL with a password.
    assert format_path(("proxies", "http://alice:S3cret@p:1")) == "proxies.http://<redacted>@p:1"


def test_lines_of_every_value() -> None:
    text = "a: 1\nb:\n  - x\n  -\n    c: 2\n    d: [3, 4]\ne: {f: 5}\n"
    document = load_document(text, "p.yaml")
    assert document.value == {"a": 1, "b": ["x", {"c": 2, "d": [3, 4]}], "e": {"f": 5}}
    assert document.lines == {
        (): 1,
        ("a",): 1,
        ("b",): 2,
        ("b", 0): 3,
        ("b", 1): 5,
        ("b", 1, "c"): 5,
        ("b", 1, "d"): 6,
        ("b", 1, "d", 0): 6,
        ("b", 1, "d", 1): 6,
        ("e",): 7,
        ("e", "f"): 7,
    }
    assert document.line_of(("b", 1, "d", 1)) == 6
    assert document.line_of(("b", 1, "missing", 3)) == 5  # the nearest ancestor that has a line
    assert document.line_of(("b", 1, "missing")) == 5
    assert document.line_of(("b", 9)) == 2
    assert LocatedDocument("x", {}).line_of(("a", "b")) is None


def test_empty_and_scalar_documents() -> None:
    assert load_document("", "p.yaml").value == {}
    assert load_document("# only a comment\n", "p.yaml").value == {}
    assert load_document("just text\n", "p.yaml").value == "just text"
    assert load_document('{"a": [1, "2"]}', "p.yaml").value == {"a": [1, "2"]}  # JSON is YAML


def test_duplicate_keys_are_reported_where_they_are_and_the_first_value_kept() -> None:
    text = "a:\n  b: 1\n  c: 2\n  b: 3\nd: x\n"
    assert errors(text) == ["p.yaml:4: a.b: duplicate key (each key may appear once)"]
    # Inside a duplicate's value (dropped whole) nothing more is reported; the document goes on after it.
    text = "a: 1\na:\n  x: 1\n  x: 2\nb: 1\nb: 2\n"
    assert errors(text) == [
        "p.yaml:2: a: duplicate key (each key may appear once)",
        "p.yaml:6: b: duplicate key (each key may appear once)",
    ]


def test_an_error_inside_a_duplicate_keys_value_names_that_key() -> None:
    # The duplicate's value is dropped, but a refusal inside it still says where it is (it once said `b`).
    assert errors("a: 1\na: {b: &x 1}\n") == [f"p.yaml:2: a.b: {_NO_ALIASES}"]
    assert errors("a: 1\na: !!set {x}\n") == [
        "p.yaml:2: a: unsupported YAML tag '!!set' (a policy holds plain strings, numbers, lists and mappings)"
    ]


def test_a_key_with_a_bad_tag_names_its_mapping() -> None:
    assert errors("a:\n  !!int x: 1\n") == ["p.yaml:2: a: not a valid !!int: 'x'"]


def test_scalar_keys_are_strings() -> None:
    assert load_document("80: x\ntrue: y\n", "p.yaml").value == {"80": "x", "True": "y"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("? [a]\n: b\n", "p.yaml:1: a key must be a string, got a list"),
        ("x:\n  ? {a: 1}\n  : b\n", "p.yaml:2: x: a key must be a string, got a mapping"),
        (
            "a: 1\nb: &anchor 2\n",
            f"p.yaml:2: b: {_NO_ALIASES}",
        ),
        (
            "a: [1]\nb: [*x]\n",
            f"p.yaml:2: b[0]: {_NO_ALIASES}",
        ),
        ("a: 1\n---\nb: 2\n", "p.yaml:2: more than one YAML document ('---'); a policy file holds one"),
        (
            "a:\n  b: !!set {x}\n",
            "p.yaml:2: a.b: unsupported YAML tag '!!set' (a policy holds plain strings, numbers, lists and mappings)",
        ),
        (
            "a: !!seq {x: 1}\n",
            "p.yaml:1: a: unsupported YAML tag '!!seq' (a policy holds plain strings, numbers, lists and mappings)",
        ),
        (
            "a: !custom 1\n",
            "p.yaml:1: a: unsupported YAML tag '!custom' (a policy holds plain strings, numbers, lists and mappings)",
        ),
        ("a:\n  - !!int x1\n", "p.yaml:2: a[0]: not a valid !!int: 'x1'"),
        ("a: !!float one\n", "p.yaml:1: a: not a valid !!float: 'one'"),
        (
            "a: !!int " + "9" * 5000 + "\n",
            "p.yaml:1: a: the number is too large: '" + "9" * 120 + "... (5000 characters)'",
        ),
        ("a: 1\nb: \x07\n", "p.yaml:2: not valid YAML/JSON: control character U+0007 (is this a text file?)"),
        ("a: 1\n\nb: é\x08\n", "p.yaml:3: not valid YAML/JSON: control character U+0008 (is this a text file?)"),
    ],
)
def test_refusals(text: str, message: str) -> None:
    assert errors(text) == [message]


def test_a_syntax_error_names_its_line_and_never_quotes_it() -> None:
    (message,) = errors("a: 1\nb: [1, 2\n")
    assert message.startswith("p.yaml:3: not valid YAML/JSON: ")
    (message,) = errors("a: 1\nb: 'http://alice:S3cret@p\n")
    assert message.startswith("p.yaml:") and "S3cret" not in message


def test_a_control_character_after_multibyte_text_is_on_its_own_line() -> None:
    # libyaml counts bytes, Python characters: é is 2 bytes, so a count in characters would run into later lines.
    text = "a: " + "é" * 20 + "\nb: \x07\nc: 1\nd: 2\ne: 3\n"
    assert errors(text) == ["p.yaml:2: not valid YAML/JSON: control character U+0007 (is this a text file?)"]


def test_a_lone_surrogate_is_not_text() -> None:
    assert errors("a: \ud800\n") == ["p.yaml: not valid text (a lone surrogate character)"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: !!str 80", "80"),
        ("a: '80'", "80"),
        ("a: 80", 80),
        ("a: !!int '7'", 7),
        ("a: !!float 1", 1.0),
        ("a: !!null ''", None),
        ("a: !!bool yes", True),
        ("a: yes", True),
        ("a: ! 80", 80),  # the non-specific tag resolves as if absent, as PyYAML does
        ("a: 2024-01-01", "2024-01-01"),  # a date-like scalar stays a string
        ("a: !!map {b: 1}", {"b": 1}),
        ("a: !!seq [1]", [1]),
        ("a: ! [1]", [1]),
    ],
)
def test_tags(text: str, value: Any) -> None:
    assert load_document(text, "p.yaml").value == {"a": value}


def test_document_size_boundary() -> None:
    at_limit = "#" + "x" * (MAX_DOCUMENT_BYTES - 2) + "\n"
    assert len(at_limit) == MAX_DOCUMENT_BYTES
    assert load_document(at_limit, "p.yaml").value == {}
    assert errors(at_limit + "\n") == [f"p.yaml: {too_large_message()}"]
    assert too_large_message() == "larger than 512 KiB (a policy is small; is this the right file?)"


def test_depth_boundary() -> None:
    assert load_document("[" * MAX_DEPTH + "]" * MAX_DEPTH, "p.yaml").value is not None
    (message,) = errors("a:\n  " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n")
    # The root mapping and 63 lists are MAX_DEPTH levels: the 64th list is one too many.
    assert message == "p.yaml:2: a" + "[0]" * (MAX_DEPTH - 1) + ": nested deeper than 64 levels"


def test_value_count_boundary() -> None:
    # The root list is one value: MAX_VALUES - 1 items fill the limit exactly.
    at_limit = "[" + ",".join(["0"] * (MAX_VALUES - 1)) + "]"
    assert len(load_document(at_limit, "p.yaml").value) == MAX_VALUES - 1
    # Keys count too: the root, `a`, 1, `b` and the list are 5 values before the first item.
    over = "a: 1\nb: [" + ",".join(["0"] * (MAX_VALUES - 2)) + "]\n"
    assert errors(over) == [f"p.yaml:2: b[{MAX_VALUES - 5}]: more than 50000 values; a policy is small"]


def test_tree_limit_problem_boundaries() -> None:
    deep: Any = []
    tree = deep
    for _ in range(MAX_DEPTH - 1):
        deep.append([])
        deep = deep[0]
    assert tree_limit_problem(tree) is None  # MAX_DEPTH lists deep
    deep.append({"k": []})
    assert tree_limit_problem(tree) == ((0,) * MAX_DEPTH, "nested deeper than 64 levels")
    assert tree_limit_problem({"a": list(range(MAX_VALUES - 2))}) is None  # with the root and the list
    problem = tree_limit_problem({"a": list(range(MAX_VALUES - 1))})
    assert problem is not None and problem[1] == "more than 50000 values; a policy is small"
    assert tree_limit_problem({1: {"x": [None]}}) is None
    # Keys of mappings and positions in lists make the path.
    nested: Any = []
    lists = nested
    for _ in range(MAX_DEPTH - 2):
        lists.append([])
        lists = lists[0]
    problem = tree_limit_problem({"spec": {"k": nested}})
    assert problem == (("spec", "k", *(0,) * (MAX_DEPTH - 2)), "nested deeper than 64 levels")
    assert tree_limit_problem("scalar") is None

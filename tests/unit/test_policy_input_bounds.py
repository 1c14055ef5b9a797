"""Malformed policy input ends in a `file:line: field: message` ConfigError, quickly, whatever the file holds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.yaml_tree import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_VALUES
from egress_xds.sources.file import load_policy_file

PROXY = "httpProxy: http://proxy.corp.test:3128\n"
# A few lines that expand to 10^7 values when aliases are followed (each level repeats the one before 10 times).
ALIAS_BOMB = 'a: &a ["x","x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f"{name}: &{name} [{','.join(['*' + previous] * 10)}]\n" for previous, name in zip("abcdef", "bcdefg", strict=True)
)


def issues_of(tmp_path: Path, content: str | bytes) -> list[str]:
    path = tmp_path / "policy.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_policy_file(path)
    return [str(issue).removeprefix(f"{tmp_path}/") for issue in caught.value.issues]


@contextlib.contextmanager
def at_most(seconds: float) -> Iterator[None]:
    """The block costs at most `seconds` of this process's CPU. CPU time, not wall time: other work on a shared
    machine (CI, parallel jobs) stretches the wall clock, while the defects this guards against (an alias bomb, a
    quadratic parse) cost CPU seconds to minutes."""
    start = time.process_time()
    yield
    elapsed = time.process_time() - start
    assert elapsed < seconds, f"took {elapsed:.2f}s of CPU (at most {seconds}s)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (PROXY + "noProxy: [localhost, 8080]\n", "policy.yaml:2: noProxy[1]: expected a string, got the number 8080"),
        (PROXY + "noProxy: [~]\n", "policy.yaml:2: noProxy[0]: expected a string, got nothing"),
        (PROXY + "rules: [{action: {proxy: [a]}}]\n", "policy.yaml:2: rules[0].action.proxy: expected a proxy name"),
        (
            PROXY + "rules: [{action: [direct]}]\n",
            "rules[0].action: expected direct, deny or {proxy: NAME}, got a list",
        ),
        ("httpProxy: !foo http://proxy.corp.test:3128\n", "policy.yaml:1: httpProxy: unsupported YAML tag '!foo'"),
        ("httpProxy: !!int abc\n", "policy.yaml:1: httpProxy: not a valid !!int"),
        ("httpProxy: !!int\n", "policy.yaml:1: httpProxy: not a valid !!int: ''"),
        ("httpProxy: !!bool maybe\n", "policy.yaml:1: httpProxy: not a valid !!bool: 'maybe'"),
        ("http://alice:S3cretPw: 1\n", "policy.yaml:1: http://alice:<redacted>: unknown key 'http://alice:<redacted>'"),
        ("httpProxy: !!binary aGVsbG8=\n", "policy.yaml:1: httpProxy: unsupported YAML tag"),
        (PROXY + "rawTcp: !!python/object:os.system ls\n", "policy.yaml:2: rawTcp: unsupported YAML tag"),
        (PROXY + "nodes: !!set {a, b}\n", "policy.yaml:2: nodes: unsupported YAML tag '!!set'"),
        (PROXY + "ports: " + "9" * 5000 + "\n", "policy.yaml:2: ports: the number is too large"),
        (PROXY + "nodes: {id: [a]}\n", "policy.yaml:2: nodes.id: expected a non-empty string, got a list"),
        (PROXY + "rules: [{name: [a], action: direct}]\n", "rules[0].name: expected a non-empty string, got a list"),
        (
            PROXY + "proxies: {p: {url: 'http://p:3128', healthCheck: {interval: " + "9" * 400 + "s}}}\n",
            "proxies.p.healthCheck.interval: a duration must be at most 1h",
        ),
        ("httpProxy: http://p:\u0661\u0662\u0663\n", "policy.yaml:1: httpProxy: the port is not a number"),
        (
            PROXY + "proxies: {p: {url: 'http://p:3128', healthCheck: {unhealthyThreshold: 1099511627776}}}\n",
            "proxies.p.healthCheck.unhealthyThreshold: expected a whole number 1-4294967295",
        ),
        (PROXY + "? [a, b]\n: c\n", "policy.yaml:2: a key must be a string, got a list"),
        (PROXY + "---\n" + PROXY, "policy.yaml:2: more than one YAML document"),
    ],
)
def test_malformed_values_are_config_errors(tmp_path: Path, text: str, expected: str) -> None:
    assert any(expected in issue for issue in issues_of(tmp_path, text)), issues_of(tmp_path, text)


def test_deep_nesting_is_refused_at_the_depth_limit(tmp_path: Path) -> None:
    with at_most(1.0):
        issues = issues_of(tmp_path, PROXY + "rules: " + "[" * 3000 + "]" * 3000 + "\n")
    ours = f"policy.yaml:2: rules{'[0]' * (MAX_DEPTH - 1)}: nested deeper than {MAX_DEPTH} levels"
    pyyaml_limit = f"policy.yaml:2: nested deeper than {MAX_DEPTH} levels"  # PyYAML >= 6.0.4 stops the parse first
    assert issues in ([ours], [pyyaml_limit])


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    with at_most(1.0):
        issues = issues_of(tmp_path, ALIAS_BOMB)
    assert issues == [
        "policy.yaml:1: a: YAML anchors and aliases (&name, *name) are not supported in a policy; write the value out"
    ]


def test_a_file_larger_than_the_limit_is_refused_unread(tmp_path: Path) -> None:
    entries = ",".join(f"host{index}.example.com" for index in range(60 * MAX_DOCUMENT_BYTES // 20))
    with at_most(1.0):
        issues = issues_of(tmp_path, PROXY + f"noProxy: [{entries}]\n")
    assert issues == [
        f"policy.yaml: larger than {MAX_DOCUMENT_BYTES // 1024} KiB (a policy is small; is this the right file?)"
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"httpProxy: http://p:3128\nnoProxy: \xff\xfe\n", "policy.yaml:2: not UTF-8 text (invalid byte 0xff)"),
        (
            b"httpProxy: http://p:3128\x00\n",
            "policy.yaml:1: not valid YAML/JSON: control character U+0000 (is this a text file?)",
        ),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "policy.yaml:1: not UTF-8 text (invalid byte 0x89)"),
        (
            b"httpProxy: http://p:3128\nnoProxy: \x07\n",
            "policy.yaml:2: not valid YAML/JSON: control character U+0007 (is this a text file?)",
        ),
    ],
)
def test_binary_content_is_a_config_error(tmp_path: Path, content: bytes, expected: str) -> None:
    assert issues_of(tmp_path, content) == [expected]


def test_the_largest_file_allowed_is_read_within_a_second(tmp_path: Path) -> None:
    """Worst case within the limits: as many values as fit, every one of them wrong."""
    filler = "[" + ",".join(["0"] * (MAX_DOCUMENT_BYTES // 2 - 100)) + "]"
    with at_most(1.0):
        issues = issues_of(tmp_path, PROXY + f"noProxy: {filler}\n")
    assert issues[-1].endswith(f"more than {MAX_VALUES} values; a policy is small"), issues[-1]

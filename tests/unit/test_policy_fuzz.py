"""Fuzzing the policy parser: whatever a file, a value tree or the environment holds, the answer is a policy or a
ConfigError (never another exception), within a second, and no message carries a piece of a password.

An accepted policy also translates to Envoy resources for both node modes (that `envoy --mode validate` accepts
them is checked with the real Envoy elsewhere, on a sample of the same documents).
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from egress_xds.policy import NodeMode, PolicySet
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.no_proxy import parse_no_proxy
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import LocatedDocument
from egress_xds.sources.environment import load_environment_policy
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate
from tests.support.policy_strategies import (
    leaked_secret,
    mutated_policy_documents,
    passwords,
    plain_text,
    secret_shapes,
    valid_policy_documents,
)

pytestmark = pytest.mark.fuzz

SECONDS = 1.0


def outcome(load: Any) -> PolicySet | ConfigError:
    """Run a loader; a policy or a ConfigError is fine, anything else fails the test. Also bounds its CPU time
    (not wall time, which other work on a shared machine stretches)."""
    start = time.process_time()
    try:
        result: PolicySet | ConfigError = load()
    except ConfigError as error:
        result = error
    elapsed = time.process_time() - start
    assert elapsed < SECONDS, f"took {elapsed:.2f}s of CPU"
    if isinstance(result, ConfigError):
        text = str(result)
        assert leaked_secret(text) is None, text
        assert result.issues and all(issue.message for issue in result.issues)
    return result


def translates(policies: PolicySet) -> None:
    for policy in policies.policies:
        for mode in NodeMode:
            translate(policy, mode)


def from_tree(value: Any) -> PolicySet:
    return parse_document(LocatedDocument("fuzz.yaml", value))


def write(tmp_path: Path, content: str | bytes) -> Path:
    path = tmp_path / "policy.yaml"
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return path


@given(valid_policy_documents())
def test_valid_documents_are_accepted_and_translate(document: dict[str, Any]) -> None:
    result = outcome(lambda: from_tree(document))
    assert isinstance(result, PolicySet), str(result)
    translates(result)


@given(valid_policy_documents(), st.sampled_from(["block", "flow", "json"]))
def test_valid_documents_read_from_a_file_are_the_same(tmp_path: Path, document: dict[str, Any], style: str) -> None:
    if style == "json":
        text = json.dumps(document, indent=1)
    else:
        text = yaml.safe_dump(document, default_flow_style=style == "flow", allow_unicode=True)
    from_file = outcome(lambda: load_policy_file(write(tmp_path, text)))
    assert isinstance(from_file, PolicySet), str(from_file)
    assert [replace(policy, source="") for policy in from_file.policies] == [
        replace(policy, source="") for policy in from_tree(document).policies
    ]


@given(mutated_policy_documents())
def test_mutated_documents_give_a_policy_or_a_config_error(document: dict[str, Any]) -> None:
    result = outcome(lambda: from_tree(document))
    if isinstance(result, PolicySet):
        translates(result)


@given(mutated_policy_documents(), st.sampled_from(["block", "flow"]))
def test_mutated_documents_in_a_file(tmp_path: Path, document: dict[str, Any], style: str) -> None:
    text = yaml.safe_dump(document, default_flow_style=style == "flow", allow_unicode=True, width=2**20)
    result = outcome(lambda: load_policy_file(write(tmp_path, text)))
    if isinstance(result, PolicySet):
        translates(result)


@given(valid_policy_documents(), st.data())
def test_damaged_files_give_a_policy_or_a_config_error(tmp_path: Path, document: dict[str, Any], data: Any) -> None:
    """A file caught half-written, or with a character lost, added or replaced (a truncated URL never leaks)."""
    text = yaml.safe_dump(document, default_flow_style=data.draw(st.booleans()), width=2**20)
    position = data.draw(st.integers(0, len(text)))
    damage = data.draw(st.sampled_from(["cut", "delete", "insert", "replace"]))
    character = data.draw(st.characters(codec="utf-8"))
    damaged = {
        "cut": text[:position],
        "delete": text[:position] + text[position + 1 :],
        "insert": text[:position] + character + text[position:],
        "replace": text[:position] + character + text[position + 1 :],
    }[damage]
    result = outcome(lambda: load_policy_file(write(tmp_path, damaged)))
    if isinstance(result, PolicySet):
        translates(result)


YAML_PIECES = [
    "{", "}", "[", "]", ": ", ",", "- ", "\n", "  ", "'", '"', "&a ", "*a", "!!int ", "!!str ", "!foo ", "!!set ",
    "---\n", "? ", "<<: ", "~", "1", "1e999", "0x1F", "99999999999999999999", ".nan", "yes", "2024-13-45",
    "httpProxy", "httpsProxy", "noProxy", "proxies", "rules", "action", "proxy", "http://u:Zq9Xw7Kv@h:1",
    "http://p:3128", "localhost", "%", "\t", "#", "|", ">", "\\", "\x00", "\ufeff", "é",
]  # fmt: skip


@given(st.lists(st.sampled_from(YAML_PIECES), max_size=40).map("".join))
def test_yaml_token_soup(tmp_path: Path, text: str) -> None:
    result = outcome(lambda: load_policy_file(write(tmp_path, text)))
    if isinstance(result, PolicySet):
        translates(result)


@given(st.one_of(plain_text(), st.binary()))
def test_random_text_and_bytes(tmp_path: Path, content: str | bytes) -> None:
    outcome(lambda: load_policy_file(write(tmp_path, content)))


_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), plain_text(max_size=20),
    passwords.flatmap(lambda password: st.sampled_from(secret_shapes(password))),
)  # fmt: skip
random_trees = st.recursive(
    _SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(
            st.one_of(st.sampled_from(["httpProxy", "noProxy", "proxies", "rules", "policies", "url"]), plain_text()),
            children,
            max_size=4,
        ),
    ),
    max_leaves=30,
)


@given(random_trees)
def test_random_trees(tree: Any) -> None:
    result = outcome(lambda: from_tree(tree))
    if isinstance(result, PolicySet):
        translates(result)


@given(plain_text())
def test_random_no_proxy_strings_never_raise(value: str) -> None:
    no_proxy, errors = parse_no_proxy(value)
    written = [part.strip() for part in value.split(",") if part.strip()]
    assert len(no_proxy.entries) + len(errors) + written.count("*") == len(written)
    assert no_proxy.everything == ("*" in written)
    for entry in no_proxy.entries:
        no_proxy.match(entry.raw, None, 443)


@given(plain_text(), st.sampled_from(["NO_PROXY", "no_proxy"]))
def test_the_environment_applies_what_it_can_of_any_no_proxy(value: str, variable: str) -> None:
    loaded = load_environment_policy({"HTTPS_PROXY": "http://10.0.0.1:3128", variable: value})
    _, errors = parse_no_proxy(value)
    assert len(loaded.warnings) == len(errors)
    assert all(warning.path == variable and " ignored: " in warning.message for warning in loaded.warnings)
    translates(loaded.policies)


@given(
    st.one_of(
        plain_text(), passwords.flatmap(lambda password: st.sampled_from([*secret_shapes(password), f"u:{password}"]))
    ),
    st.sampled_from(["HTTP_PROXY", "https_proxy"]),
)
def test_the_environment_never_leaks_a_proxy_password(value: str, variable: str) -> None:
    result = outcome(lambda: load_environment_policy({variable: value}).policies)
    if isinstance(result, PolicySet):
        translates(result)

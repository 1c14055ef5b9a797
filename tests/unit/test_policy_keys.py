"""One table of policy keys (egress_xds/policy/keys.py): the parser, the Kubernetes conversion and both CRD
schemas agree with it. A key added to the parser and forgotten in a CRD (or the reverse) fails here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from egress_xds.policy import keys
from egress_xds.policy.errors import ConfigError
from egress_xds.policy.parse import parse_document
from egress_xds.policy.yaml_tree import LocatedDocument

CRDS = sorted((Path(__file__).resolve().parents[2] / "deploy" / "crds").glob("*.yaml"))


def spec_schema(path: Path) -> dict[str, Any]:
    crd = yaml.safe_load(path.read_text())
    (version,) = [version for version in crd["spec"]["versions"] if version.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    return schema


def properties(schema: dict[str, Any], *path: str) -> set[str]:
    """The property names at `path` ("*" steps into additionalProperties, "[]" into items)."""
    for step in path:
        schema = {"*": schema.get("additionalProperties"), "[]": schema.get("items")}.get(step) or schema["properties"][
            step
        ]
    return set(schema["properties"])


@pytest.mark.parametrize("crd", CRDS, ids=lambda path: path.name)
def test_each_crd_schema_holds_the_spec_keys_of_the_table(crd: Path) -> None:
    schema = spec_schema(crd)
    assert properties(schema) == keys.SPEC_KEYS
    assert properties(schema, "proxies", "*") == keys.SPEC_PROXY_KEYS
    assert properties(schema, "proxies", "*", "endpoints", "[]") == keys.ENDPOINT_KEYS
    assert properties(schema, "proxies", "*", "healthCheck") == keys.HEALTH_CHECK_KEYS
    assert properties(schema, "rules", "[]") == keys.SPEC_RULE_KEYS


def test_there_are_crds_to_check() -> None:
    assert len(CRDS) == 2


def _unknown_key_errors(document: dict[str, Any]) -> list[str]:
    try:
        parse_document(LocatedDocument("policy.yaml", document))
    except ConfigError as error:
        return [issue.path for issue in error.issues if issue.message.startswith("unknown key")]
    return []


@pytest.mark.parametrize(
    ("level", "allowed", "document"),
    [
        ("policy", keys.POLICY_KEYS, lambda key: {key: None, "httpsProxy": "http://p:1"}),
        ("proxy", keys.PROXY_KEYS, lambda key: {"proxies": {"p": {"url": "http://p:1", key: None}}}),
        ("rule", keys.RULE_KEYS, lambda key: {"httpsProxy": "http://p:1", "rules": [{"action": "direct", key: None}]}),
        ("standalone", keys.STANDALONE_KEYS, lambda key: {"httpsProxy": "http://p:1", "standalone": {key: None}}),
    ],
)
def test_the_parser_accepts_the_keys_of_the_table_and_no_other(
    level: str, allowed: frozenset[str], document: Any
) -> None:
    for key in allowed:
        assert _unknown_key_errors(document(key)) == [], (level, key)
    assert _unknown_key_errors(document("notAKey")) != [], level

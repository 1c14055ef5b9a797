"""Every policy we ship is checked the way a new user would use it: `check`, then `render --static` for a sidecar
and a standalone node, handed to the real `envoy --mode validate`.

What counts as shipped: `examples/*.yaml`, the Kubernetes resources in `deploy/examples/` (turned into a policy by
the server's own converter, with the Secrets of that directory or placeholders), and every ```yaml block of
README.md: a block with `apiVersion`/`kind` is a Kubernetes resource, any other is a policy file. The bootstraps
in `envoy/` are validated (and compared with their generator) by `test_cli_and_envoy_files.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from egress_xds.policy.model import EgressPolicy
from egress_xds.policy.node import NodeMode
from egress_xds.sources.kubernetes.api import Kind, ResourceRef, SecretKey
from egress_xds.sources.kubernetes.convert import policy_from_resource, referenced_secrets
from egress_xds.translate import translate
from egress_xds.translate.bootstrap import static_bootstrap
from tests.support.egress import egress_xds, render_static, write_policy
from tests.support.envoy import validate_config

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MODES = ("sidecar", "standalone")
YAML_BLOCK = re.compile(r"^```yaml\n(.*?)^```$", re.MULTILINE | re.DOTALL)
PLACEHOLDER_SECRET = {"stringData": {"username": "example-user", "password": "example-password"}}


@dataclass(frozen=True)
class Example:
    """One shipped example: where it is (for the test id and messages) and its text."""

    where: str
    text: str

    def documents(self) -> list[dict[str, Any]]:
        return [doc for doc in yaml.safe_load_all(self.text) if doc]

    @property
    def is_kubernetes(self) -> bool:
        return any("apiVersion" in doc and "kind" in doc for doc in self.documents())

    def secrets(self) -> dict[SecretKey, dict[str, Any]]:
        """The Secrets among the documents, in the form the converter reads."""
        return {
            (doc["metadata"]["namespace"], doc["metadata"]["name"]): {"stringData": doc.get("stringData") or {}}
            for doc in self.documents()
            if doc.get("kind") == "Secret"
        }


def readme_yaml_blocks() -> list[Example]:
    text = README.read_text()
    return [
        Example(f"README.md:{text.count(chr(10), 0, match.start()) + 2}", match.group(1))
        for match in YAML_BLOCK.finditer(text)
    ]


def policy_examples() -> list[Example]:
    files = [Example(str(path.relative_to(REPO)), path.read_text()) for path in sorted((REPO / "examples").glob("*"))]
    return files + [block for block in readme_yaml_blocks() if not block.is_kubernetes]


def deploy_examples() -> list[Example]:
    files = sorted((REPO / "deploy" / "examples").glob("*.yaml"))
    return [
        Example(str(path.relative_to(REPO)), path.read_text()) for path in files if path.name != "kustomization.yaml"
    ]


def kubernetes_examples() -> list[Example]:
    """The examples holding an EgressProxy or a ClusterEgressProxy."""
    custom = {kind.value for kind in Kind}
    candidates = deploy_examples() + [block for block in readme_yaml_blocks() if block.is_kubernetes]
    return [example for example in candidates if any(doc.get("kind") in custom for doc in example.documents())]


def ids(example: Example) -> str:
    return example.where


def assert_valid_for_envoy(bootstrap: dict[str, Any], what: str) -> None:
    result = validate_config(bootstrap)
    assert result.returncode == 0, f"{what}: envoy --mode validate failed:\n{result.stdout}{result.stderr}"


@pytest.mark.parametrize("example", policy_examples(), ids=ids)
def test_policy_example_checks_and_renders_for_envoy(example: Example, tmp_path: Path) -> None:
    path = write_policy(tmp_path, example.text)
    checked = egress_xds("check", "--config", str(path), check=False)
    assert checked.returncode == 0, f"{example.where}: check failed:\n{checked.stderr}"
    for mode in MODES:
        assert_valid_for_envoy(render_static(path, mode=mode), f"{example.where} ({mode})")


def kubernetes_policies(example: Example) -> list[tuple[str, EgressPolicy]]:
    """The policy of every EgressProxy / ClusterEgressProxy in the example, as the server would build it.

    Secrets come from all of `deploy/examples/` (they live in their own files); a Secret shipped nowhere, as in
    the README's example, gets placeholder credentials.
    """
    secrets: dict[SecretKey, dict[str, Any]] = {}
    for shipped in deploy_examples():
        secrets |= shipped.secrets()
    policies = []
    for doc in example.documents():
        if doc["kind"] not in {kind.value for kind in Kind}:
            continue
        kind = Kind(doc["kind"])
        namespace = doc["metadata"].get("namespace", "") if kind.namespaced else ""
        ref = ResourceRef(kind, namespace, doc["metadata"]["name"])
        available = {key: PLACEHOLDER_SECRET for key in referenced_secrets(ref, doc)} | secrets
        policies.append((f"{kind.value} {doc['metadata']['name']}", policy_from_resource(ref, doc, available)))
    return policies


@pytest.mark.parametrize("example", kubernetes_examples(), ids=ids)
def test_kubernetes_example_renders_for_envoy(example: Example) -> None:
    for name, policy in kubernetes_policies(example):
        for mode in MODES:
            bootstrap = static_bootstrap(translate(policy, NodeMode(mode)), node_id=f"example-{mode}")
            assert_valid_for_envoy(bootstrap, f"{example.where}: {name} ({mode})")

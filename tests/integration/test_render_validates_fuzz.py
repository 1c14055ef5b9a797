"""Property: a policy that `check` accepts renders (`render --static`) into a bootstrap the real Envoy accepts,
for a sidecar and for a standalone node.

Policies come from `tests.support.policy_strategies.valid_policy_documents()`. Each is loaded with the loader
`check` uses (`load_policy_file`); every policy of the file is translated for both modes and handed to
`envoy --mode validate` (the validations of one example run two at a time).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings

from egress_xds.policy.errors import ConfigError
from egress_xds.policy.node import NodeMode
from egress_xds.sources.file import load_policy_file
from egress_xds.translate import translate
from egress_xds.translate.bootstrap import static_bootstrap
from tests.support.envoy import validate_config
from tests.support.policy_strategies import valid_policy_documents

pytestmark = [pytest.mark.integration, pytest.mark.fuzz]


def as_text(document: Any) -> str:
    return document if isinstance(document, str) else json.dumps(document, indent=1)


# Each example runs two `envoy --mode validate` (0.3-1 s each), so the CI profile's 100 examples would take minutes:
# 15 keeps this module within its time budget. `--hypothesis-profile=long` does not raise an explicit setting, so
# a long run is `pytest ... --hypothesis-seed=N` repeated, or this number raised locally.
@settings(max_examples=15)
@given(document=valid_policy_documents())
def test_an_accepted_policy_renders_into_a_bootstrap_envoy_accepts(document: Any, tmp_path_factory: Any) -> None:
    path = Path(tmp_path_factory.mktemp("fuzz-policy")) / "policy.yaml"
    path.write_text(as_text(document))
    try:
        policies = load_policy_file(path)
    except ConfigError as error:  # the strategy promises documents `check` accepts
        pytest.fail(f"the strategy made a policy `check` rejects:\n{path.read_text()}\n{error}")
    bootstraps = [
        (f"{policy.name} {mode.value}", static_bootstrap(translate(policy, mode), node_id=f"fuzz-{mode.value}"))
        for policy in policies.policies
        for mode in NodeMode
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda item: validate_config(item[1]), bootstraps))
    for (what, _), result in zip(bootstraps, results, strict=True):
        assert result.returncode == 0, f"{what}: envoy rejects the render of\n{path.read_text()}\n{result.stderr}"

"""The translator's output for every golden input and shipped example equals the kept file in `out/`
(regenerate with ./scripts/update-golden.sh after an intended change; see render.py)."""

from __future__ import annotations

import difflib

import pytest

from egress_xds.translate import translate
from egress_xds.translate.bootstrap import static_bootstrap
from tests.golden.render import OUTPUT_DIR, REPOSITORY, GoldenCase, cases, policy_of, rendered
from tests.support.envoy import validate_config

CASES = list(cases())


def test_every_input_has_cases_and_no_output_is_orphaned() -> None:
    assert len({case.source for case in CASES}) >= 5
    kept = set(OUTPUT_DIR.glob("*.yaml"))
    assert kept == {case.output for case in CASES}, "run ./scripts/update-golden.sh"


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.output.name)
def test_rendered_resources_match_the_golden_file(case: GoldenCase) -> None:
    expected = case.output.read_text() if case.output.exists() else ""
    actual = rendered(case)
    if actual != expected:
        name = str(case.output.relative_to(REPOSITORY))
        diff = "".join(difflib.unified_diff(expected.splitlines(True), actual.splitlines(True), name, "translated"))
        pytest.fail(f"{name} differs from the translator's output (./scripts/update-golden.sh):\n{diff[:20000]}")


@pytest.mark.integration
@pytest.mark.parametrize("case", CASES, ids=lambda case: case.output.name)
def test_envoy_accepts_what_the_golden_file_shows(case: GoldenCase) -> None:
    """A golden file only helps if it is valid Envoy config: each case, as a static bootstrap, passes Envoy's
    own `--mode validate` (credentials included, as Envoy would get them)."""
    resources = translate(policy_of(case), case.mode)
    bootstrap = static_bootstrap(resources, node_id="golden", node_metadata={"mode": case.mode.value})
    result = validate_config(bootstrap)
    assert result.returncode == 0, result.stdout + result.stderr

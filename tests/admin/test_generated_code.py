"""The committed code generated from protos/ is what scripts/generate-protos.sh produces now."""

from __future__ import annotations

import filecmp
import os
import re
import sys
from pathlib import Path

from tests.support.egress import REPO_ROOT
from tests.support.processes import run_bounded

SCRIPT = REPO_ROOT / "scripts" / "generate-protos.sh"


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    result = run_bounded([str(SCRIPT), str(tmp_path)], timeout=120, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stderr
    generated = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    assert generated, "the script generated nothing"
    committed = sorted(
        path.relative_to(REPO_ROOT)
        for path in (REPO_ROOT / "egress_xds").rglob("*_pb2*")
        if path.suffix in (".py", ".pyi") and path.is_file()
    )
    assert generated == committed, "generated files and committed files differ in names"
    stale = [str(path) for path in generated if not filecmp.cmp(tmp_path / path, REPO_ROOT / path, shallow=False)]
    assert not stale, f"stale generated code, run scripts/generate-protos.sh: {stale}"


def test_the_script_and_the_test_extra_pin_the_same_generator() -> None:
    script_pin = re.search(r'GRPCIO_TOOLS_VERSION="([^"]+)"', SCRIPT.read_text())
    extra_pin = re.search(r'"grpcio-tools==([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text())
    assert script_pin and extra_pin and script_pin.group(1) == extra_pin.group(1)

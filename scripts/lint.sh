#!/usr/bin/env bash
# The linters CI enforces: ruff (lint and format) over the whole tree, mypy (strict) over the package.
# They run from the virtual environment that scripts/install-test-deps.sh made (.venv, or VENV=DIR), else python3.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VENV:-.venv}"
PYTHON=python3
if [ -x "$VENV/bin/python" ]; then PYTHON="$VENV/bin/python"; fi
"$PYTHON" -m ruff check .
"$PYTHON" -m ruff format --check .
"$PYTHON" -m mypy

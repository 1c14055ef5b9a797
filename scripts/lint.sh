#!/usr/bin/env bash
# The linters CI enforces: ruff (lint and format) over the whole tree, mypy (strict) over the package.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m ruff check .
python3 -m ruff format --check .
python3 -m mypy

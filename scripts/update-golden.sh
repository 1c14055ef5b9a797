#!/usr/bin/env bash
# Regenerate the translator's golden files (tests/golden/out/) from tests/golden/in/ and examples/; review the diff.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" -m tests.golden.render --write

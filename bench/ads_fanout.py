"""Thin entry point, kept for ``python bench/ads_fanout.py ...``: the benchmark is the package `bench.fanout`
(``python -m bench.fanout --help``; bench/README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.fanout.cli import main

if __name__ == "__main__":
    sys.exit(main())

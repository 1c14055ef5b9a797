"""``python -m bench.fanout``: see `bench.fanout.cli`."""

import sys

from bench.fanout.cli import main

sys.exit(main())

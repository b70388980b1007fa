"""``python -m slamfront``: the same command line as ``slamfront``."""

from __future__ import annotations

import sys

from slamfront.cli import main

sys.exit(main())

"""``certgate`` / ``python -m certgate``: the composition root's entry point."""

from __future__ import annotations

import sys

from certgate.cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m thermocheck``: the same command line as ``thermocheck``."""

import sys

from thermocheck.cli import main

if __name__ == "__main__":
    sys.exit(main())

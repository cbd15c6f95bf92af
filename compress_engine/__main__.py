"""`python -m compress_engine ...`: the command line (compress_engine.playground.cli)."""

import sys

from compress_engine.playground.cli import main

if __name__ == "__main__":
    sys.exit(main())

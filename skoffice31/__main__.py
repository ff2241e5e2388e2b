"""``python -m skoffice31`` runs the command line (see :mod:`skoffice31.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m venvsmith.cli``."""

import sys

from venvsmith.cli import main

sys.exit(main())

"""``python -m bodega``."""

import sys

from bodega.cli import main

sys.exit(main())

"""``python -m wanbatch.simulator``."""

import sys

from wanbatch.simulator.cli import main

sys.exit(main())

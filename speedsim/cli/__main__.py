"""``python -m speedsim.cli``."""

import sys

from speedsim.cli import main

sys.exit(main())

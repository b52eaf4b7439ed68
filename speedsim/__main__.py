"""``python -m speedsim``."""

import sys

from speedsim.cli import main

sys.exit(main())

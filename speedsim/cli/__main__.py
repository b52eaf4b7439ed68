"""``python -m speedsim.cli``."""

from speedsim.cli import console

console()

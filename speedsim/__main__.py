"""``python -m speedsim``."""

from speedsim.cli import console

console()

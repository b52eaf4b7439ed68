"""Human units for the terminal: a value is shown in the prefix that keeps 1 ≤ |mantissa| < 1000.

``human(0.0002434, "J")`` is ``243.4 µJ``; bytes use binary prefixes
(``human(3.4e12, "B")`` is ``3.092 TiB``). Values that appear together in one
cell (``DRAM / SRAM / compute``) share the prefix and the decimals of the
largest, so they read as comparable numbers. Four significant digits; beyond the largest prefix the
digits are grouped (``12,345 J``).
"""

from __future__ import annotations

import math
from typing import Sequence

DECIMAL = [(1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G"),
           (1e12, "T")]
BINARY = [(1.0, ""), (2.0 ** 10, "Ki"), (2.0 ** 20, "Mi"), (2.0 ** 30, "Gi"), (2.0 ** 40, "Ti")]
SMALL_ONLY = {"s", "J"}  # no kJ or ks in a decode report: seconds and joules stop at the unit


def scale(magnitude: float, unit: str) -> tuple[float, str]:
    """(divisor, prefix) that puts ``magnitude`` in [1, 1000) (or the nearest prefix)."""
    steps = BINARY if unit == "B" else DECIMAL
    if unit in SMALL_ONLY:
        steps = [s for s in steps if s[0] <= 1.0]
    if unit == "":
        steps = [s for s in steps if s[0] >= 1.0]
    if not math.isfinite(magnitude) or magnitude == 0:
        return 1.0, ""
    magnitude = float(f"{abs(magnitude):.4g}")  # 999.96 µs reads 1 ms, not 1000 µs
    fitting = [s for s in steps if abs(magnitude) >= s[0]]
    return fitting[-1] if fitting else steps[0]


def _digits(x: float) -> str:
    if not math.isfinite(x):
        return str(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"


def human(value: float, unit: str) -> str:
    div, prefix = scale(value, unit)
    return f"{_digits(value / div)} {prefix}{unit}".rstrip()


def human_many(values: Sequence[float], unit: str, sep: str = " / ") -> str:
    """Several values in the prefix of the largest, with its decimals: ``56.72 / 2.49 / 0.13 mJ``."""
    top = max((abs(v) for v in values), default=0.0)
    div, prefix = scale(top, unit)
    lead = top / div
    decimals = max(0, 3 - int(math.floor(math.log10(lead)))) if 0 < lead < 1000 else 0
    return f"{sep.join(f'{v / div:,.{decimals}f}' for v in values)} {prefix}{unit}".rstrip()

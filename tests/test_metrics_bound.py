"""What bounds decode: exact shares on hand-made logs."""

import pandas as pd
import pytest

from speedsim.config.hw import UNITS
from speedsim.metrics.bound import bound_by

NAMES = tuple(u.name for u in UNITS)


def log(*rows):
    """Rows (unit, start, end[, busy cycles]); busy defaults to the whole span."""
    rows = [r if len(r) == 4 else (*r, r[2] - r[1]) for r in rows]
    return pd.DataFrame(rows, columns=["unit", "start_cycle", "end_cycle", "busy_cycles"])


def test_each_cycle_goes_to_the_most_utilized_resource():
    # dram busy [0, 80), array [20, 70), vector [90, 95); idle [80, 90), [95, 100)
    shares = bound_by(log(("dram", 0, 60), ("dram", 60, 80), ("array", 20, 70),
                          ("vector", 90, 95)), 0, 100, NAMES)
    assert shares == pytest.approx({"dram": 0.8, "array": 0.0, "vector": 0.05, "latency": 0.15})


def test_a_merged_row_counts_its_busy_cycles_not_its_span():
    # a weight stream logged as one row over [0, 100) moved data 40 cycles of it; the array
    # computed 90 cycles of [0, 100): array-bound, the rest is latency
    shares = bound_by(log(("dram", 0, 100, 40), ("array", 0, 100, 90)), 0, 100, NAMES)
    assert shares == pytest.approx({"dram": 0.0, "array": 0.9, "vector": 0.0, "latency": 0.1})


def test_rows_outside_the_window_are_clipped():
    shares = bound_by(log(("dram", 0, 1000, 500)), 400, 500, NAMES)
    assert shares["dram"] == pytest.approx(0.5) and shares["latency"] == pytest.approx(0.5)
    assert bound_by(log(), 5, 5, NAMES)["latency"] == 0.0

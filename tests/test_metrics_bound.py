"""What bounds decode: exact shares on a hand-made log."""

import pandas as pd
import pytest

from speedsim.metrics.bound import bound_by


def log(*rows):
    return pd.DataFrame(rows, columns=["unit", "start_cycle", "end_cycle"])


def test_each_cycle_goes_to_the_busiest_resource_busy_in_it():
    # dram busy [0, 80) (80), array [20, 70) (50), vector [90, 95) (5); idle [80, 90), [95, 100)
    shares = bound_by(log(("dram", 0, 60), ("dram", 50, 80), ("array", 20, 70),
                          ("vector", 90, 95)), 0, 100)
    assert shares == pytest.approx({"dram": 0.8, "array": 0.0, "vector": 0.05, "latency": 0.15})


def test_an_array_bound_window_with_dram_in_its_gaps():
    # array 3 x 30 = 90 busy beats dram (2 x 10 = 20): dram counts only where the array idles
    shares = bound_by(log(("array", 0, 30), ("array", 35, 65), ("array", 70, 100),
                          ("dram", 25, 35), ("dram", 65, 75)), 0, 100)
    assert shares == pytest.approx({"dram": 0.10, "array": 0.90, "vector": 0.0, "latency": 0.0})


def test_rows_outside_the_window_are_clipped():
    shares = bound_by(log(("dram", 0, 1000)), 400, 500)
    assert shares["dram"] == 1.0 and bound_by(log(), 5, 5)["latency"] == 0.0

"""Pinned results of every shipped workload and hardware: a change of the simulated
cycles or energy of any of them is a decision, never an accident.

Each workload runs at 8 new tokens (seconds for all of them; the schedule, tiling
and residency paths are the full-size ones) (the README's headline run at full size is
the golden run, tests/test_golden.py). Cycles are exact; energy is pinned to nine
significant digits (it is a float sum). Values live in tests/data/shipped_results.json, written by tests/make_golden.py
(with the golden run); regenerate them deliberately when a result moves on purpose.
"""

import json

import pytest

from make_golden import SHIPPED, measured, shipped_cases

PINNED = json.loads(SHIPPED.read_text())


def test_every_shipped_workload_and_hardware_is_pinned():
    assert set(PINNED) == {f"{hw}|{wl}" for hw, wl in shipped_cases()}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_shipped_result_is_unchanged(case):
    hw, wl = case.split("|")
    assert measured(hw, wl) == {n: tuple(v) for n, v in PINNED[case].items()}, \
        "regenerate deliberately: .venv/bin/python tests/make_golden.py"

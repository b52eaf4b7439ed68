"""The golden end-to-end run: ``gen`` on ``edge`` pinned to the cycle.

Expected values live in tests/data/golden_edge_gen.json, written by
tests/make_golden.py. A change that moves any of them on purpose regenerates
that file (``.venv/bin/python tests/make_golden.py``) in the same commit.
"""

from __future__ import annotations

import json

import pytest

from make_golden import GOLDEN, golden

EXACT = ("total_cycles", "ttft_cycles", "decode_cycles", "commit_cycles", "committed_tokens",
         "launched", "dram_bytes_by_kind", "macs", "vector_ops")


@pytest.fixture(scope="module")
def runs():
    return golden()["strategies"], json.loads(GOLDEN.read_text())["strategies"]


@pytest.mark.parametrize("key", EXACT)
def test_golden_run_is_unchanged(runs, key):
    got, want = runs
    assert set(got) == set(want)
    for name in want:
        assert got[name][key] == want[name][key], f"{name}.{key} (regenerate: tests/make_golden.py)"


def test_golden_energy_parts(runs):
    got, want = runs
    for name in want:  # floating-point sums of the same numbers in the same order
        assert got[name]["energy_j"] == pytest.approx(want[name]["energy_j"], rel=1e-12), name

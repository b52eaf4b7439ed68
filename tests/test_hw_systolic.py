"""The array model agrees with SCALE-Sim 3.0.0 exactly (DESIGN §10)."""

import csv
from pathlib import Path

import pytest

from speedsim.hw.systolic import array_gemm_cycles, gemm_cycles

REFERENCE = Path(__file__).parent / "scalesim" / "reference.csv"
ROWS = list(csv.DictReader(REFERENCE.open()))


def test_reference_covers_the_promised_grid():
    shapes = {(r["m"], r["k"], r["n"]) for r in ROWS}
    arrays = {(r["rows"], r["cols"]) for r in ROWS}
    assert len(shapes) >= 30 and len(arrays) >= 3
    assert {r["dataflow"] for r in ROWS} == {"ws", "os", "is"}
    assert any(int(m) <= 8 for m, _, _ in shapes) and any(int(m) >= 64 for m, _, _ in shapes)


def test_gemm_cycles_equal_scalesim_for_every_reference_row():
    mismatches = [
        (r, got) for r in ROWS
        if (got := gemm_cycles(int(r["m"]), int(r["k"]), int(r["n"]),
                               int(r["rows"]), int(r["cols"]), r["dataflow"])) != int(r["cycles"])
    ]
    assert mismatches == []


def test_closed_forms_by_hand():
    # ws: folds = ceil(K/R)*ceil(N/C) = 8*8; fold = 2R + C + M - 2 = 23
    assert gemm_cycles(1, 64, 64, 8, 8, "ws") == 64 * 23 - 1
    # os: folds = ceil(M/R)*ceil(N/C) = 1*2; fold = R + C + K - 2 = 46
    assert gemm_cycles(4, 32, 16, 8, 8, "os") == 2 * 46 - 1
    # is: folds = ceil(K/R)*ceil(M/C) = 4*1; fold = 2R + C + N - 2 = 38
    assert gemm_cycles(4, 32, 16, 8, 8, "is") == 4 * 38 - 1


@pytest.mark.parametrize("bad", [dict(M=0), dict(K=-1), dict(rows=0), dict(N=2.5)])
def test_bad_arguments_raise_naming_the_argument(bad):
    args = dict(M=1, K=8, N=8, rows=4, cols=4, dataflow="ws") | bad
    name = next(iter(bad))
    with pytest.raises(ValueError, match=name):
        gemm_cycles(**args)


def test_unknown_dataflow_raises():
    with pytest.raises(ValueError, match="dataflow"):
        gemm_cycles(1, 8, 8, 4, 4, "rs")


def test_ganged_arrays_split_columns_or_share_gemms():
    one = gemm_cycles(1, 64, 16, 8, 8, "ws")
    # 4 arrays, one GEMM: N = 64 split into 4 x 16 columns
    assert array_gemm_cycles(1, 64, 64, 1, 8, 8, "ws", arrays=4) == one
    # 8 GEMMs on 4 arrays: two rounds
    assert array_gemm_cycles(1, 64, 16, 8, 8, 8, "ws", arrays=4) == 2 * one


def test_block_split_deals_folds_to_arrays_in_waves():
    """os, 8x8 arrays, M=64, N=24 (K=100): 8 x 3 = 24 folds of 8 + 8 + 100 - 2 = 114 cycles.
    10 arrays take them in ceil(24/10) = 3 waves; the column split gives each of the 10
    arrays ceil(24/10) = 3 columns, so 8 row folds of 114 cycles each."""
    assert array_gemm_cycles(64, 100, 24, 1, 8, 8, "os", arrays=10, split="blocks") == 3 * 114 - 1
    assert array_gemm_cycles(64, 100, 24, 1, 8, 8, "os", arrays=10) == 8 * 114 - 1
    # one array: the folds run back to back, exactly SCALE-Sim's count
    assert array_gemm_cycles(64, 100, 24, 1, 8, 8, "os", arrays=1, split="blocks") == \
        gemm_cycles(64, 100, 24, 8, 8, "os")
    # 2 GEMMs x 24 folds on 48 arrays: one wave
    assert array_gemm_cycles(64, 100, 24, 2, 8, 8, "os", arrays=48, split="blocks") == 114 - 1


@pytest.mark.parametrize("m, n, arrays", [(1, 4096, 528), (16, 12288, 528), (4096, 820, 432),
                                          (64, 24, 7), (8, 8, 3)])
def test_block_split_is_never_slower_than_the_column_split(m, n, arrays):
    cols = array_gemm_cycles(m, 512, n, 1, 16, 32, "os", arrays=arrays)
    blocks = array_gemm_cycles(m, 512, n, 1, 16, 32, "os", arrays=arrays, split="blocks")
    assert blocks <= cols


def test_block_split_needs_output_stationary_arrays():
    with pytest.raises(ValueError, match="split='blocks' needs the os dataflow"):
        array_gemm_cycles(8, 8, 8, 1, 4, 4, "ws", arrays=2, split="blocks")

"""Cycles of a GEMM on a systolic array: SCALE-Sim 3.0.0's compute model in closed form.

The GEMM is ``Y[M,N] = X[M,K] · W[K,N]`` with ``W`` the "filter" operand, as in
a SCALE-Sim GEMM topology row ``name, M, N, K,`` (ifmap M×K, filter K×N,
ofmap M×N). Each dataflow keeps one operand stationary and maps the GEMM onto
the R×C array as spatial rows ``Sr``, spatial columns ``Sc`` and a temporal
extent ``T``:

========  ======  ======  =====  ======================================
dataflow  Sr      Sc      T      cycles of one fold (fill, stream, drain)
========  ======  ======  =====  ======================================
ws        K       N       M      2R + C + T − 2
os        M       N       K      R + C + T − 2
is        K       M       N      2R + C + T − 2
========  ======  ======  =====  ======================================

The operands are folded into ``⌈Sr/R⌉·⌈Sc/C⌉`` folds that run back to back.
SCALE-Sim's "Total Cycles" (COMPUTE_REPORT.csv, no memory stalls) is the
index of the last output-demand line, i.e. ``folds · fold_cycles − 1``.
``tests/test_hw_systolic.py`` checks this against SCALE-Sim runs exactly.

Several arrays (``arrays`` > 1) share a GEMM in one of two ways (``split``):
``columns`` splits each GEMM's output columns evenly over the arrays (no reduction
across arrays); ``blocks`` treats every fold of every GEMM as a unit of work and
deals the folds out to the arrays in waves, ``⌈gemms · folds / arrays⌉ · fold_cycles
− 1``, as a GPU deals output tiles to its SMs (wave quantization). ``blocks`` needs an
output-stationary array, where each fold produces its own outputs and no fold's
partial sums have to meet another's.
"""

from __future__ import annotations

import numbers
from typing import Literal

Dataflow = Literal["ws", "os", "is"]


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def _all_positive_ints(*values) -> bool:
    return all(type(v) is int and v > 0 for v in values)


def gemm_cycles(M: int, K: int, N: int, rows: int, cols: int, dataflow: Dataflow) -> int:
    """Cycles of ``Y[M,N] = X[M,K]·W[K,N]`` on one ``rows``×``cols`` array (SCALE-Sim 3.0.0)."""
    folds, fold = fold_shape(M, K, N, rows, cols, dataflow)
    return folds * fold - 1


def fold_shape(M: int, K: int, N: int, rows: int, cols: int, dataflow: Dataflow) -> tuple[int, int]:
    """(folds, cycles of one fold) of the GEMM on one array."""
    if not _all_positive_ints(M, K, N, rows, cols):  # fast path first; the slow one names the culprit
        _check_positive(M=M, K=K, N=N, rows=rows, cols=cols)
    if dataflow == "ws":
        sr, sc, t, fold = K, N, M, 2 * rows + cols + M - 2
    elif dataflow == "os":
        sr, sc, t, fold = M, N, K, rows + cols + K - 2
    elif dataflow == "is":
        sr, sc, t, fold = K, M, N, 2 * rows + cols + N - 2
    else:
        raise ValueError(f"dataflow must be 'ws', 'os' or 'is', got {dataflow!r}")
    return ceil_div(sr, rows) * ceil_div(sc, cols), fold


def array_gemm_cycles(M: int, K: int, N: int, gemms: int, rows: int, cols: int,
                      dataflow: Dataflow, arrays: int = 1, split: str = "columns") -> int:
    """Cycles of ``gemms`` independent M×K×N GEMMs on ``arrays`` ganged arrays.

    The arrays work as one unit. ``split="columns"``: with at least as many GEMMs
    as arrays, GEMMs go to arrays in rounds of ``arrays``; with fewer, each GEMM's
    output columns ``N`` are split evenly over ``arrays // gemms`` arrays (a column
    split needs no reduction across arrays). ``split="blocks"`` (output-stationary
    only): all folds of all GEMMs are dealt to the arrays in waves.
    """
    if not _all_positive_ints(gemms, arrays):
        _check_positive(gemms=gemms, arrays=arrays)
    if split == "blocks":
        if dataflow != "os":
            raise ValueError(f"split='blocks' needs the os dataflow, got {dataflow!r}")
        folds, fold = fold_shape(M, K, N, rows, cols, dataflow)
        return ceil_div(gemms * folds, arrays) * fold - 1
    if split != "columns":
        raise ValueError(f"split must be 'columns' or 'blocks', got {split!r}")
    if gemms >= arrays:
        return ceil_div(gemms, arrays) * gemm_cycles(M, K, N, rows, cols, dataflow)
    per_gemm = arrays // gemms
    return gemm_cycles(M, K, ceil_div(N, min(per_gemm, N)), rows, cols, dataflow)

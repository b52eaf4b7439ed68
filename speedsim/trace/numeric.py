"""The op trace recorded from a real NumPy run: each op as the decoder executes it.

The decoder reports an ``OpRecord`` (sizes in elements, taken from the arrays
it actually multiplies) for every op of a greedy decoding run; this module
turns them into trace rows. On small models it must equal the shape-only
trace row for row — the test that keeps the closed forms honest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from speedsim.model.decoder import AUTO, OpRecord, generate
from speedsim.trace.schema import COLUMNS, HEAD_SET, NO_WEIGHTS
from speedsim.trace.shape_only import frame

_SETS = {"head": HEAD_SET, "none": NO_WEIGHTS}


def _to_row(phase: str, r: OpRecord, bpe: int) -> tuple:
    gemm = r.m > 0
    return (phase, r.position, r.layer, r.weight_set if r.weights == "set" else _SETS[r.weights],
            r.op, r.early_exit, r.m, r.k, r.n, r.count, r.heads, r.kv_len, r.elements,
            r.weight_elems * bpe, r.act_in_elems * bpe, r.act_out_elems * bpe,
            r.kv_read_elems * bpe, r.kv_write_elems * bpe, r.macs,
            0 if gemm else r.elements)


def numeric_trace(workload, bytes_per_element: int, exit_layer=AUTO, *,
                  params=None) -> pd.DataFrame:
    """Run greedy decoding of ``workload`` and return the ops it executed as the trace.

    ``exit_layer``: as ``speedsim.model.decoder.generate`` (default: the SPEED exit point).
    """
    rows: list[tuple] = []
    generate(workload, exit_layer, params=params,
             recorder=lambda phase, r: rows.append(_to_row(phase, r, bytes_per_element)))
    cols = list(zip(*rows))
    return frame({c: np.array(v, dtype=object if c in ("phase", "op") else None)
                  for c, v in zip(COLUMNS, cols)})


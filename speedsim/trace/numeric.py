"""The op trace recorded from a real NumPy run: each op as the decoder executes it.

The decoder reports an ``OpRow`` (sizes taken from the arrays it actually
multiplies, byte fields at one byte per element) for every op of a greedy
decoding run; this module sets the phase and scales the bytes. On small models it must equal the shape-only
trace row for row — the test that keeps the closed forms honest.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from speedsim.contracts.oprow import OpRow
from speedsim.model.decoder import generate
from speedsim.trace.schema import COLUMNS
from speedsim.trace.shape_only import frame

_BYTE_FIELDS = tuple(f for f in OpRow._fields if f.endswith("_bytes"))


def _to_row(phase: str, r: OpRow, bpe: int) -> OpRow:
    return r._replace(phase=phase, **{f: getattr(r, f) * bpe for f in _BYTE_FIELDS})


def numeric_trace(workload, bytes_per_element: int, *, params=None) -> pd.DataFrame:
    """Run greedy decoding of ``workload`` and return the ops it executed as the trace
    (the early predictions it records are not part of it: see ``speedsim.trace``)."""
    rows: list[tuple] = []
    generate(workload, params=params,
             recorder=lambda phase, r: rows.append(_to_row(phase, r, bytes_per_element)))
    cols = list(zip(*rows))
    return frame({c: np.array(v, dtype=object if c in ("phase", "op") else None)
                  for c, v in zip(COLUMNS, cols)})


"""The op-trace row: one op of one token (all batch sequences) at one layer.

The trace builders emit a DataFrame whose columns are exactly ``OpRow._fields``
(``speedsim.trace.schema.COLUMNS``), in this order; the planner reads rows back
as ``OpRow``. The numeric decoder reports the same ops in elements
as ``OpRow``s at one byte per element; ``speedsim.trace.numeric`` scales the
byte fields by the hardware precision.
"""

from __future__ import annotations

from typing import NamedTuple

HEAD_SET = -2  # weight_set of the tied embedding / LM head and the final norm
NO_WEIGHTS = -1  # weight_set of ops without parameters


class OpRow(NamedTuple):
    """One op of one token execution (all batch sequences) at one layer; bytes at the
    hardware precision. Field meanings: ``speedsim.trace.schema``."""

    phase: str
    position: int
    layer: int
    weight_set: int
    op: str
    m: int = 0
    k: int = 0
    n: int = 0
    count: int = 0
    heads: int = 0
    kv_len: int = 0
    elements: int = 0
    weight_bytes: int = 0
    act_in_bytes: int = 0
    act_out_bytes: int = 0
    kv_read_bytes: int = 0
    kv_write_bytes: int = 0
    macs: int = 0
    vector_ops: int = 0

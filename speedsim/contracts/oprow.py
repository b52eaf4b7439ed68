"""The op-trace row: one op of one token (all batch sequences) at one layer.

The trace builders emit a DataFrame whose columns are exactly ``OpRow._fields``
(``speedsim.trace.schema.COLUMNS``), in this order; the planner reads rows back
as ``OpRow``. The numeric decoder reports the same ops in elements
(``speedsim.model.decoder.OpRecord``), converted to bytes by
``speedsim.trace.numeric``.
"""

from __future__ import annotations

from typing import NamedTuple


class OpRow(NamedTuple):
    """One op of one token execution (all batch sequences) at one layer; bytes at the
    hardware precision. Field meanings: ``speedsim.trace.schema``."""

    phase: str
    position: int
    layer: int
    weight_set: int
    op: str
    early_exit: bool
    m: int
    k: int
    n: int
    count: int
    heads: int
    kv_len: int
    elements: int
    weight_bytes: int
    act_in_bytes: int
    act_out_bytes: int
    kv_read_bytes: int
    kv_write_bytes: int
    macs: int
    vector_ops: int

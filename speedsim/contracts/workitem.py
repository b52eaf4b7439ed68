"""Work items: the contract between a strategy's scheduler and the accelerator.

A strategy turns the op trace into a DAG of ``WorkItem``s; the replay engine
runs them on the SimPy accelerator. The engine knows nothing of SPEED: it sees
shapes, bytes, dependencies and which weight tiles may already be resident.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Hashable, Literal, Optional

Unit = Literal["array", "vector"]


@dataclass(frozen=True, slots=True)
class WorkItem:
    id: int  # unique, and every dep id is smaller (items come in topological order)
    unit: Unit  # "array" for GEMMs (and attention when hw.attention_on == array)
    op: str  # trace op kind (qkv, attn_score, softmax, ...)
    phase: str  # prefill | decode
    deps: tuple[int, ...] = ()
    # GEMM: ``count`` independent Y[m,n] = X[m,k] W[k,n]; W is the stationary operand
    m: int = 0
    k: int = 0
    n: int = 0
    count: int = 0
    # vector unit: elements and which per-element cost applies
    elements: int = 0
    vector_kind: str = ""  # softmax | norm | activation | residual | embed
    # residency key of the weights, e.g. ("set", 3, "qkv"); None: nothing to keep on chip
    weight_key: Optional[Hashable] = None
    weight_bytes: int = 0
    act_in_bytes: int = 0
    act_out_bytes: int = 0
    kv_read_bytes: int = 0
    kv_write_bytes: int = 0
    macs: int = 0
    vector_ops: int = 0
    tokens: tuple[int, ...] = ()  # token-execution ids served (see strategies)
    wasted_fraction: float = 0.0  # share of the work belonging to flushed token executions
    step: int = -1  # scheduler step (decode step or SPEED stage step), for reports
    label: str = field(default="", compare=False)  # human-readable, for timelines

    def __reduce__(self):
        """Pickled as its field values and rebuilt by the constructor: twice as fast as the
        slots dataclass' own state protocol, for the ~100k items of a 7B plan that a
        worker process sends back."""
        return WorkItem, _field_values(self)


_field_values = attrgetter(*(f.name for f in fields(WorkItem)))

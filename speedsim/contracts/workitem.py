"""Work items: the contract between a strategy's scheduler and the accelerator.

A strategy turns the op trace into a DAG of ``WorkItem``s; the replay engine
runs them on the SimPy accelerator. The engine knows nothing of SPEED: it sees
shapes, bytes, dependencies and which weight tiles may already be resident.

A plan holds ~10^5 items, so besides ``WorkItem(...)`` there is a bulk path
with the same result: ``items_from_columns`` builds many items from one
column per field (``FIELDS``), and ``item_columns`` takes them apart again.
Strategies' item builders and plan pickling use it; pickling one item sends
its field values (``__reduce__``), not a per-field state dict.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields
from itertools import repeat
from operator import attrgetter
from typing import Hashable, Optional, Sequence


@dataclass(frozen=True, slots=True)
class WorkItem:
    id: int  # unique, and every dep id is smaller (items come in topological order)
    unit: str  # the compute unit that runs it (``Hardware.placement``: GEMMs on the matrix unit)
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
        return WorkItem, _VALUES(self)


FIELDS: tuple[str, ...] = tuple(f.name for f in fields(WorkItem))  # in ``__init__`` order
_VALUES = attrgetter(*FIELDS)
# a frozen dataclass's __init__ sets each field through object.__setattr__, i.e. through
# the slot's descriptor; these are those descriptors' setters, in FIELDS order
_SETTERS = tuple(getattr(WorkItem, name).__set__ for name in FIELDS)
assert not hasattr(WorkItem, "__post_init__"), "items_from_columns would not call it"


def items_from_columns(columns: Sequence[Sequence]) -> list[WorkItem]:
    """``[WorkItem(*row) for row in zip(*columns)]``, one column per name of ``FIELDS``, in
    that order; each column is set in one pass over the new items, in about two thirds
    of the time of one ``__init__`` call per item. (``WorkItem`` has no ``__post_init__``
    for this to skip; the module asserts so.)"""
    if len(columns) != len(FIELDS):
        raise ValueError(f"need {len(FIELDS)} columns ({', '.join(FIELDS)}), got {len(columns)}")
    n = len(columns[0])
    if any(len(c) != n for c in columns):
        raise ValueError("work-item columns differ in length")
    items = list(map(object.__new__, repeat(WorkItem, n)))
    for setter, column in zip(_SETTERS, columns):
        deque(map(setter, items, column), maxlen=0)  # consumes the map: sets every item
    return items


def item_columns(items: Sequence[WorkItem]) -> list[list]:
    """One list per name of ``FIELDS``: the inverse of ``items_from_columns``."""
    return [list(map(attrgetter(name), items)) for name in FIELDS]


def check_dag(items: Sequence[WorkItem], units: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ids are unique, deps come before their items, every unit
    is one of ``units``, and each weight key has one size (a key names one tensor: its
    tiles are what residency looks up)."""
    seen: set[int] = set()
    sizes: dict[Hashable, int] = {}
    for it in items:
        if it.id in seen:
            raise ValueError(f"work item id {it.id} appears twice")
        if it.unit not in units:
            raise ValueError(f"work item {it.id} runs on {it.unit!r}, not one of {tuple(units)}")
        missing = [d for d in it.deps if d not in seen]
        if missing:
            raise ValueError(f"work item {it.id} depends on {missing[0]}, which does not come before it")
        seen.add(it.id)
        if it.weight_key is not None and sizes.setdefault(it.weight_key, it.weight_bytes) != it.weight_bytes:
            raise ValueError(f"work item {it.id}: weight key {it.weight_key!r} has "
                             f"{it.weight_bytes} bytes here and {sizes[it.weight_key]} before")

"""Pieces both strategies share: the prefill pass and one token's ops, in dependency order."""

from __future__ import annotations

from operator import itemgetter
from typing import Sequence

from speedsim.contracts.oprow import OpRow
from speedsim.strategies.builder import ItemBuilder, TraceIndex

_SLOT_KEY = itemgetter(*(OpRow._fields.index(f) for f in ("op", "layer")))


def with_slots(rows: Sequence[OpRow]) -> list[tuple[OpRow, int]]:
    """Pair each op row with its occurrence index within its layer (norm 0, norm 1, ...).

    The slot is part of the weight residency key, so it must be the same for every
    layer (and every token) that uses a weight set: it restarts at each layer.
    """
    seen: dict[tuple[str, int], int] = {}
    out = []
    for r, key in zip(rows, map(_SLOT_KEY, rows)):
        slot = seen.get(key, 0)
        seen[key] = slot + 1
        out.append((r, slot))
    return out


def chain(builder: ItemBuilder, rows: Sequence[OpRow], dep: int | None, *, tokens: Sequence[int],
          wasted: bool = False, step: int = -1, label: str = "",
          kv_deps: dict[str, int] | None = None, scope: str = "") -> tuple[int, int]:
    """Ops of one execution, each waiting for the previous one; returns (first, last) ids.

    ``kv_deps`` adds, per op kind, an extra dependency (attention on the KV entries
    an older execution wrote).
    """
    first = last = None
    prev = dep
    for row, slot in with_slots(rows):
        deps = [] if prev is None else [prev]
        if kv_deps and row.op in kv_deps:
            deps.append(kv_deps[row.op])
        prev = builder.add([row], deps=deps, tokens=tokens, wasted=[wasted], step=step,
                           slot=slot, label=f"{label}{row.op}", scope=scope)
        first = prev if first is None else first
        last = prev
    assert first is not None and last is not None, "an execution has at least one op"
    return first, last


def prefill(builder: ItemBuilder, index: TraceIndex, n_layers: int, exec_id: int) -> tuple[int, int]:
    """The prompt through embed, all layers and the final head, as one chain."""
    rows = list(index.ops("prefill", 0, -1))
    for layer in range(n_layers):
        rows += index.ops("prefill", 0, layer)
    rows += index.ops("prefill", 0, n_layers)
    return chain(builder, rows, None, tokens=(exec_id,), label="prefill ")

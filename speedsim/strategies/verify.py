"""Work items of draft-and-verify decoding: passes over several positions at once.

A verify pass (and a draft model's catch-up pass) runs t consecutive
positions p .. p+t-1 of one sequence batch through the same layers: the
rows of a layer are ONE work item per op on the simulated hardware.

- dense GEMMs (qkv, out_proj, MLP, LM head) stack: m = t·B rows, weights once;
- attention is one item too: all t queries read the layer's K/V once — the
  longest row's KV (length p+t) is what moves; MACs are the rows' own sums;
- vector ops add their elements; the embedding gathers t·B rows, so its
  "weight" bytes add up too (nothing to keep resident).

Waste. Row j of a step is wasted when its input token was a rejected guess;
an item's ``wasted_fraction`` is the wasted rows' share of it, as SPEED's
flushed executions are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from speedsim.strategies.common import with_slots
from speedsim.contracts.oprow import OpRow
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.trace.schema import ATTENTION_OPS

_ADDITIVE = ("elements", "act_in_bytes", "act_out_bytes", "kv_write_bytes", "macs",
             "vector_ops")


def merged(rows: Sequence[OpRow]) -> list[OpRow]:
    """The rows one item receives: attention and embed rows merged into one, others as is."""
    if len(rows) == 1 or rows[0].op not in ATTENTION_OPS + ("embed",):
        return list(rows)
    longest = max(rows, key=lambda r: r.kv_len)
    sums = {f: sum(getattr(r, f) for r in rows) for f in _ADDITIVE}
    if rows[0].op == "embed":
        sums["weight_bytes"] = sum(r.weight_bytes for r in rows)
        return [longest._replace(**sums)]
    return [longest._replace(m=sum(r.m for r in rows), **sums)]


@dataclass(frozen=True)
class Pass:
    """Who a pass serves: positions, the executions of its rows, which are wasted."""

    positions: tuple[int, ...]
    tokens: tuple[int, ...]  # execution id of each row (a catch-up row may repeat one)
    wasted: tuple[bool, ...]
    step: int
    scope: str = ""  # weight-key scope: "" target, "draft" a separate draft model

    def share(self, n_rows: int) -> list[float]:
        """Per-row waste for ``n_rows`` rows given to one item (1: merged)."""
        if n_rows == len(self.wasted):
            return [float(w) for w in self.wasted]
        return [sum(self.wasted) / len(self.wasted)]


def fused_layers(b: ItemBuilder, index: TraceIndex, pas: Pass, layers: Sequence[int],
                 deps: Sequence[int], label: str) -> tuple[int, int]:
    """``layers`` (-1 embed, 0..N-1, N head) for every position of ``pas``, each op ONE item
    waiting for the previous one (the first for ``deps``). Returns (first, last) item ids."""
    first, prev = None, None
    for layer in layers:
        per_pos = [index.ops("decode", p, layer) for p in pas.positions]
        for o, (row0, slot) in enumerate(with_slots(per_pos[0])):
            rows = merged([ops[o] for ops in per_pos])
            prev = b.add(rows, deps=list(deps) if prev is None else [prev], tokens=sorted(set(pas.tokens)),
                         wasted=pas.share(len(rows)), step=pas.step, slot=slot,
                         label=f"{label} L{layer} {row0.op}", scope=pas.scope)
            first = prev if first is None else first
    assert first is not None, "a pass has at least one op"
    return first, prev


def head_layer(n_layers: int) -> int:
    """The trace's layer index of the final head (norm + tied LM head + pick): N.

    The exit head of early-exit drafting and of the shallow model is the same
    final norm and tied LM head, on the hidden state after layer E - 1: the
    same rows and the same weights (hence the same residency key)."""
    return n_layers

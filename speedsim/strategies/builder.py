"""Building a plan: trace rows grouped for lookup, and fused into work items.

``ItemBuilder`` turns trace rows into work items. Rows of several executions
that use the same weights fuse into one item: GEMM rows stack (``m`` adds up),
the weights are counted once, activations and KV bytes add up.

The pick rows after every LM head (``pick``) are the one place where the hardware
decides whether a row is an item at all: with ``pick: kernel`` a vector item of its
own; with ``pick: fused`` (``Placement.pick`` None) no item, the pick being done as
the head's output drains, so ``add`` answers the LM head item it would have waited
for. Every strategy and the serving iterations build through ``add``: one entrance.
"""

from __future__ import annotations

from operator import itemgetter
from typing import Hashable, Iterable, Sequence

import pandas as pd

from speedsim.config.hw import Placement
from speedsim.contracts.oprow import OpRow
from speedsim.contracts.workitem import FIELDS, WorkItem, items_from_columns
from speedsim.trace.schema import ATTENTION_OPS, GEMM_OPS, NO_WEIGHTS

VECTOR_KIND = {"embed": "embed", "norm": "norm", "softmax": "softmax", "act": "activation",
               "residual": "residual", "pick": "pick"}


class TraceIndex:
    """Trace rows grouped by (phase, position, layer), in op order."""

    def __init__(self, trace: pd.DataFrame):
        self._groups: dict[tuple, list[OpRow]] = {}
        columns = [trace[c].tolist() for c in OpRow._fields]  # plain Python values, fast to zip
        rows = list(map(OpRow._make, zip(*columns)))
        for key, row in zip(map(_GROUP_KEY, rows), rows):
            group = self._groups.get(key)
            if group is None:
                self._groups[key] = [row]
            else:
                group.append(row)

    def ops(self, phase: str, position: int, layer: int) -> list[OpRow]:
        try:
            return self._groups[(phase, position, layer)]
        except KeyError:
            raise KeyError(f"trace has no rows for {phase} position {position} "
                           f"layer {layer}") from None


_GROUP_KEY = itemgetter(*(OpRow._fields.index(f) for f in ("phase", "position", "layer")))


class ItemBuilder:
    """Appends work items with increasing ids; fuses rows that share weights.

    An item is its *shape* (what it computes and moves: every field but the
    per-item ones, ``_PER_ITEM``) plus its place in the DAG. ``add`` records
    both; ``items`` turns what was recorded since its last call into
    ``WorkItem``s in bulk (``items_from_columns``). An item's shape does not
    depend on its rows' positions or layers, so items whose rows differ only
    there (the same op of every token, fused or not) share one shape, worked
    out once; equal residency keys are kept as one object.
    """

    def __init__(self, placement: Placement):
        self._items: list[WorkItem] = []
        # per item added since ``items`` was last read, one list per value: no object per
        # item beyond its own values (the garbage collector would scan each one again)
        self._pending: dict[str, list] = {f: [] for f in _PENDING}
        self._shapes: dict[tuple, tuple] = {}  # (rows sans position and layer, slot, scope)
        self._keys: dict[Hashable, Hashable] = {}
        self.placement = placement  # which unit runs each class of op

    @property
    def items(self) -> list[WorkItem]:
        """The items added so far, in id order."""
        pending = self._pending
        if pending["shape"]:
            start, shapes = len(self._items), pending.pop("shape")
            columns = {**dict(zip(_SHAPE_FIELDS, zip(*shapes))), **pending,
                       "id": range(start, start + len(shapes))}
            self._items += items_from_columns([columns[f] for f in FIELDS])
            self._pending = {f: [] for f in _PENDING}
        return self._items

    def add(self, rows: Sequence[OpRow], *, deps: Iterable[int], tokens: Sequence[int],
            wasted: Sequence[float] | None = None, step: int = -1, slot: int = 0,
            label: str = "", scope: str = "") -> int:
        """One item for ``rows`` (one row per execution served, same op and weights).

        ``wasted``: per row, the share of it that is wasted work (bool or fraction).
        ``scope`` names a model other than the target (a draft model): its weights
        get residency keys of their own. A fused pick (module doc) adds nothing and
        returns its one dependency, the LM head item."""
        first = rows[0]
        if first.op == "pick" and self.placement.pick is None:
            return _fused_pick(deps)
        key = ((_ROW_SHAPE(first),) if len(rows) == 1 else tuple(map(_ROW_SHAPE, rows)), slot, scope)
        shape = self._shapes.get(key)
        if shape is None:
            total = first if len(rows) == 1 else stacked(rows)
            shape = self._shapes[key] = self._shape(first, total, slot, scope)
        pending = self._pending
        item_id = len(self._items) + len(pending["step"])
        pending["shape"].append(shape)
        deps = tuple(deps)
        pending["deps"].append(deps if len(deps) < 2 else tuple(sorted(set(deps))))
        pending["tokens"].append(tuple(tokens))
        pending["wasted_fraction"].append(sum(wasted) / len(rows) if wasted else 0.0)
        pending["step"].append(step)
        pending["label"].append(label or first.op)
        return item_id

    def _shape(self, first: OpRow, total: OpRow, slot: int, scope: str) -> tuple:
        """The ``_SHAPE_FIELDS`` of an item for rows whose first is ``first`` and whose sum
        is ``total`` (``stacked``)."""
        # the summed fields (OpRow order), and k, n: every row's (GEMMs) or the longest KV
        # length (attention); the weights are the first row's
        (phase, _, _, weight_set, op, m, k, n, count, _, _, elements, _,
         act_in_bytes, act_out_bytes, kv_read_bytes, kv_write_bytes, macs, vector_ops) = total
        p = self.placement
        unit = (p.gemm if op in GEMM_OPS else p.attention if op in ATTENTION_OPS
                else p.pick if op == "pick" else p.elementwise)
        on_array = unit in p.matrix  # GEMM-shaped
        weights = weight_set != NO_WEIGHTS and first.weight_bytes > 0
        key = _weight_key(first, slot, scope) if weights else None
        return (
            unit,
            op,
            phase,
            # stacked GEMM rows share the weights; attention stays one GEMM per (sequence, head)
            (m if op in GEMM_OPS else first.m) if on_array else 0,  # m
            k if on_array else 0,  # k
            n if on_array else 0,  # n
            (1 if op in GEMM_OPS else count) if on_array else 0,  # count
            # attention on an elementwise unit costs its MACs (one per lane per cycle), no elements
            0 if on_array else elements,  # elements
            VECTOR_KIND.get(op, "") if not on_array and elements else "",  # vector_kind
            self._keys.setdefault(key, key),  # weight_key
            first.weight_bytes if weights else 0,  # weight_bytes: fetched once for all rows
            act_in_bytes, act_out_bytes, kv_read_bytes, kv_write_bytes, macs,
            0 if on_array else vector_ops,  # vector_ops
        )


# a work item's own fields; its shape is all the others (``ItemBuilder._shape`` order)
_PER_ITEM = ("id", "deps", "tokens", "wasted_fraction", "step", "label")
_SHAPE_FIELDS = tuple(f for f in FIELDS if f not in _PER_ITEM)
_PENDING = ("shape",) + _PER_ITEM[1:]  # what ``add`` records (ids follow from the count)
# an op row's fields but its position and layer: all that an item's shape reads of it
_ROW_SHAPE = itemgetter(*(i for i, f in enumerate(OpRow._fields) if f not in ("position", "layer")))


def _fused_pick(deps: Iterable[int]) -> int:
    """The item a fused pick is part of: the one LM head item it depends on."""
    heads = set(deps)
    if len(heads) != 1:
        raise ValueError(f"a fused pick follows one LM head item, got dependencies {sorted(heads)}")
    return heads.pop()


_ADDITIVE = ("m", "count", "elements", "act_in_bytes", "act_out_bytes", "kv_read_bytes",
             "kv_write_bytes", "macs", "vector_ops")


_ADDITIVE_AT = tuple(OpRow._fields.index(f) for f in _ADDITIVE)


# the attention GEMM dimension that is a token's KV length: batched attention (one item
# for several tokens, each reading its own KV) stacks rows that differ in it
_KV_DIM = {"attn_score": "n", "attn_value": "k"}


def stacked(rows: Sequence[OpRow]) -> OpRow:
    """Rows of several executions as one: additive fields summed, the rest from the first
    (an attention row's KV length: the longest, so no token's keys are cut off)."""
    first = rows[0]
    kv_dim = _KV_DIM.get(first.op)
    key = lambda r: (r.op, r.weight_set, r.weight_bytes, r.k if kv_dim != "k" else 0,
                     r.n if kv_dim != "n" else 0)
    assert all(key(r) == key(first) for r in rows), "only rows of one op on the same weights fuse"
    columns = list(zip(*rows))
    total = first._replace(**{f: sum(columns[i]) for f, i in zip(_ADDITIVE, _ADDITIVE_AT)})
    if kv_dim is None:
        return total
    return total._replace(**{kv_dim: max(getattr(r, kv_dim) for r in rows),
                             "kv_len": max(r.kv_len for r in rows)})


def _weight_key(row: OpRow, slot: int, scope: str = "") -> Hashable:
    """Residency key: the phase, the weight set, the op, and which of the op's uses
    in a layer (the two norms of a layer have different parameters). The embedding
    gathers different rows every time: nothing to keep resident.

    The accelerator keys resident tiles by (this key, tile index). A prefill GEMM,
    with its large activations, is cut into other tiles than the same GEMM in
    decode; the phase keeps a decode tile from matching a prefill tile that holds
    a different slice of the weights. A scope (``draft``) leads the key of another
    model's weights, which never match the target's."""
    if row.op == "embed":
        return None
    key = (row.phase, row.weight_set, row.op, slot)
    return (scope, *key) if scope else key

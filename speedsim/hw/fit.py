"""Whether a run's tiles fit its buffers, checked before the replay starts.

``cost.item_tiles`` cuts an item into tiles no larger than its buffer slot
where it can, but never below one array fold: a GEMM piece streams at least
its rows of one R-deep (or C-wide) fold. Each compute unit (``Hardware.units``)
keeps up to ``cost.slots`` stream tiles in flight in the one activation buffer,
and the units stream at the same time, so a matrix unit's tile over its slot (a
fold minimum) eats into the other units' shares: the buffer must hold ``slots``
of such a tile *plus*, for every other unit, ``slots`` of the largest stream tile
of its items that may stream meanwhile. That is every such item except the array item's
ancestors and descendants, which the dependencies keep apart — but not its
direct deps or direct dependants whose stream is KV reads only: the engine
prefetches those once their deps have *started*. A buffer that cannot hold
that is a property of the configuration, not a bug of the replay: it is
reported as a ``ConfigError`` naming the buffer and the size it needs.
"""

from __future__ import annotations

import math
from typing import Sequence

from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware
from speedsim.hw import cost
from speedsim.contracts.workitem import WorkItem


def _closure(start: int, edges: dict[int, Sequence[int]]) -> set[int]:
    seen, todo = set(), list(edges.get(start, ()))
    while todo:
        i = todo.pop()
        if i not in seen:
            seen.add(i)
            todo.extend(edges.get(i, ()))
    return seen


def _kv_only(it: WorkItem, traffic: dict, hw: Hardware) -> bool:
    return cost.kv_prefetchable(it, traffic[it.id], hw)


def _concurrent_tile(x: WorkItem, others: Sequence[WorkItem], items: Sequence[WorkItem],
                     largest: dict[int, int], traffic: dict, hw: Hardware) -> int:
    """Largest stream tile among ``others`` (one other unit's items) that may stream
    while ``x`` streams."""
    by_id = {it.id: it for it in items}
    children: dict[int, list[int]] = {}
    for it in items:
        for d in it.deps:
            children.setdefault(d, []).append(it.id)
    apart = _closure(x.id, {it.id: it.deps for it in items}) | _closure(x.id, children)
    if _kv_only(x, traffic, hw):
        apart -= set(x.deps)
    apart -= {c for c in children.get(x.id, ()) if _kv_only(by_id[c], traffic, hw)}
    return max((largest[it.id] for it in others if it.id not in apart), default=0)


def check_tiles_fit(items: Sequence[WorkItem], hw: Hardware,
                    costed: cost.CostPlan | None = None) -> None:
    """``ConfigError`` naming ``hw.buffers.activation.size_kib`` when it cannot hold the
    stream slots of every unit full of the largest tiles that may be in flight together
    (``costed``: the items' ``cost.plan``, when it is at hand)."""
    costed = costed if costed is not None else cost.plan(items, hw)
    largest = {it.id: costed.sums[it.id].largest_stream for it in items}
    slots = cost.slots(hw)
    capacity = hw.buffers.activation.size_kib * 1024
    by_unit = {u: [it for it in items if it.unit == u] for u in hw.compute_units}
    unit_max = {u: max((largest[it.id] for it in its), default=0) for u, its in by_unit.items()}
    worst = None  # (bytes needed, item, its tile, {other unit: its tile beside it})
    checked: set[tuple] = set()
    for it in items:
        size = largest[it.id]
        # elementwise items are cut to their slot; a matrix item's fold may be over it
        if not cost.on_matrix(it, hw) or \
                slots * (size + sum(unit_max.values()) - unit_max[it.unit]) <= capacity:
            continue
        key = (size, it.deps, it.id) if it.deps else (size,)
        if key in checked:
            continue
        checked.add(key)
        beside = {u: _concurrent_tile(it, others, items, largest, costed.traffic, hw)
                  for u, others in by_unit.items() if u != it.unit}
        need = slots * (size + sum(beside.values()))
        if need > capacity and (worst is None or need > worst[0]):
            worst = (need, it, size, beside)
    if worst is not None:
        _refuse(hw, slots, *worst)


def _refuse(hw: Hardware, slots: int, need: float, item: WorkItem, tile_bytes: int,
            beside: dict[str, int]) -> None:
    """The ``ConfigError`` of ``check_tiles_fit``: the size the buffer needs. A tile beside
    that fills its unit's slot grows with the buffer: the need is then what leaves room
    for it (its share of the buffer taken off)."""
    also = " and ".join(f"the {u} unit's {b} bytes" for u, b in beside.items() if b)
    also = f", beside {slots} of {also}" if also else ""
    growing = sum(hw.unit(u).stream_share for u, b in beside.items()
                  if b and b >= cost.stream_slot_bytes(hw, u))
    if growing:
        fixed = sum(b for u, b in beside.items() if b < cost.stream_slot_bytes(hw, u))
        need = slots * (tile_bytes + fixed) / (1 - growing)
    raise ConfigError(
        f"{hw.buffers.activation.size_kib:g} KiB cannot hold {slots} stream tile(s) of "
        f"{tile_bytes} bytes ({item.op} in {item.phase}: one array fold of its operands){also}; "
        f"this workload needs at least {math.ceil(need / 1024 * 100) / 100:g} KiB",
        key="hw.buffers.activation.size_kib")

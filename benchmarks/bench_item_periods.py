"""How much of the replay skipping whole periods of items could save (issue #25): a census.

Skipping periods of items means: when the whole machine, at the start of item ``i``, is in the
state it was in at the start of item ``i - p`` (relative to that moment and that item), and the
items from ``i`` on have the shapes of those from ``i - p`` on, the next items do what the last
``p`` did, shifted in time and renamed, so their records, log rows and buffer points could be
copied instead of replayed. This counts, per strategy, the item starts at which no other unit
can act (each waits for an item not yet done, and no SimPy event is pending), those whose state
was seen ``p`` items earlier with the same item shapes, and the most common periods ``p``.

The state (``machine_state``): every unit's wait, relative to the item; the DRAM's ``relative``
and its last issue; each loader's cursor, tiles in flight (unclamped transfer cycles: a log row
keeps a transfer's start), open gates and gated item; the weight buffer and parameter cache in
LRU order, each key named by the offset of the next item that uses it, or None where LRU has
surely evicted it by then (``Uses``); the log rows of the items not started; each buffer trace's
last point. The shape (``item_shape``): unit, tile list, deps within ``WINDOW`` items, traffic,
and the offset of the next item using the same weights (as for keys). A census, not a proof: an
exact skipper must show its key complete (``bench_item_skip.py`` tries one and checks it against
production; ``bench_reuse.py`` counts reuse of one item's tiles, the other route).

    .venv/bin/python benchmarks/bench_item_periods.py [--new-tokens 32] [--strategies sequential,speed]
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict

import speedsim.sim.engine as engine
from bench_reuse import replay_args  # beside this file
from speedsim.api import RunContext, get_strategy, strategy_input, through_cache
from speedsim.config import load_hardware, load_workload
from speedsim.hw import cost
from speedsim.hw.units import BulkTransfer

WINDOW = 24  # items ahead whose shapes and gates are part of the state (loaders look ahead)
ROW_KINDS = (("load", "stream"), ("load", "weight"), ("load", "param"), ("store", "output"))


MARGIN = 3  # buffers' worth of newer keys after which an untouched key is surely evicted


class Uses:
    """Which items use which weights, and how far a key left untouched can still be hit: once
    the distinct keys that items ``pos`` … touch weigh more than ``MARGIN`` buffers, an
    unpinned key resident at ``pos`` has been evicted (LRU evicts it before any of those newer
    ones; the margin covers tiles prefetched before ``pos``). Both buffers are filled in list
    order (the weight loader walks its items so; parameters are the vector unit's, in order)."""

    def __init__(self, r):
        self.ids = defaultdict(list)
        for it in r.items:
            if it.weight_key is not None:
                self.ids[it.weight_key].append(it.id)
        self.param = {it.id: (it.weight_key, it.weight_bytes) for it in r.items
                      if cost.param_resident(it, r.hw)}
        sums = {}
        for e in r.weights.items:  # tile lists are shared by items of one shape
            if id(e.tiles) not in sums:
                sums[id(e.tiles)] = sum(t.weight_bytes for t in e.tiles)
        weights = {e.item.id: (e.item.weight_key or e.item.id, sums[id(e.tiles)])
                   for e in r.weights.items}
        n = len(r.items)
        self.reach = {"weight": _reach(n, weights, MARGIN * r.wbuf.capacity),
                      "param": _reach(n, self.param, MARGIN * r.params.capacity)}

    def next(self, key, pos: int, buffer: str | None = None) -> int | None:
        """Offset from ``pos`` of the first item at or after it using weights ``key``; None if
        none does, or (``buffer`` given: the key unpinned there) not before it is evicted."""
        ids = self.ids.get(key, ())
        q = bisect.bisect_left(ids, pos)
        offset = ids[q] - pos if q < len(ids) else None
        if offset is not None and buffer is not None and offset >= self.reach[buffer][pos]:
            return None
        return offset


def _reach(n: int, touched: dict, capacity: int) -> list:
    """Per position, the items from it whose distinct keys first weigh more than ``capacity``
    (``touched``: item id -> (key, bytes)); infinite where they never do."""
    reach, counts, total, hi = [float("inf")] * (n + 1), Counter(), 0, 0
    for lo in range(n):
        while hi < n and total <= capacity:
            if hi in touched:
                key, b = touched[hi]
                total += b if not counts[key] else 0
                counts[key] += 1
            hi += 1
        if total > capacity:
            reach[lo] = hi - lo
        if lo in touched:
            key, b = touched[lo]
            counts[key] -= 1
            total -= b if not counts[key] else 0
    return reach


def _buffer(buf, uses: Uses, pos: int, name: str) -> tuple:
    """LRU order of ``buf``: (key named by its next use, tile index, bytes, pins) per entry.
    Weight tiles are keyed ``(weight_key, j)`` or ``("anonymous", id, j)``; parameters by key."""
    named, tiled = [], name == "weight"
    for k, b in buf.resident.items():
        pins = buf.pins.get(k, 0)
        use = ("anon", k[1] - pos) if tiled and k[0] == "anonymous" else \
            uses.next(k[0] if tiled else k, pos, None if pins else name)
        named.append((use, k[-1] if tiled else None, b, pins))
    return tuple(named)


def _loader(ld, now: int, pos: int) -> tuple:
    """Cursor (item relative to ``pos``, tile), slots taken, tiles in flight."""
    item = ld.items[ld.i].item.id - pos if ld.i < len(ld.items) else None
    flight = tuple(((iid - pos, j), (v.start - now, v.finish - now, v.arrival - now)
                    if v.__class__ is BulkTransfer else max(v - now, 0))
                   for (iid, j), v in ld.issued.items())
    return item, ld.j, ld.in_flight, flight


def _rows(r, pos: int, now: int) -> tuple:
    """The log rows of the items from ``pos`` on, relative: an item not started has rows only
    for the stream tiles a loader issued it, which it holds until the item takes them."""
    ahead = sorted({pos, *(iid for s in r.streams.values() for iid, _ in s.issued)})
    rows = []
    for iid in ahead:
        for kind in ROW_KINDS:
            row = r.log.rows.get((iid, "dram", *kind, -1))
            if row is not None:
                rows.append((iid - pos, kind, row.start_cycle - now, row.end_cycle - now,
                             row.bytes, row.busy_cycles))
    return tuple(rows)


def machine_state(r, it) -> tuple | None:
    """The replay ``r``'s state at ``it``'s start, relative (module docstring), or None if
    another unit may act or an event is pending."""
    now, pos = r.env.now, it.id
    if r.env.peek() != float("inf"):
        return None
    waits = []
    for unit, dep in r.blocked.items():
        if unit != it.unit:
            if dep is None or (dep != -1 and dep in r.done_at):
                return None
            waits.append((unit, dep if dep == -1 else dep - pos))
    streams = tuple((u, _loader(s, now, pos), None if s.gated is None else s.gated.id - pos,
                     tuple(x - pos for x in range(pos, pos + WINDOW) if x in s.issuing))
                    for u, s in r.streams.items())
    traces = tuple((name, max(t.pts[-2] - now, -1), t.pts[-1], t.pts[-3] if len(t.pts) > 2 else None)
                   for name, t in r.occupancy.traces.items() if t.pts)
    return (it.unit, tuple(waits), r.dram.relative(now), max(r.dram.last_issue - now, 0),
            _loader(r.weights, now, pos), streams, _buffer(r.wbuf, r.uses, pos, "weight"),
            _buffer(r.params, r.uses, pos, "param"), _rows(r, pos, now), traces,
            tuple(x - pos for x in range(pos, pos + WINDOW) if x in r.started))


def item_shape(r, it) -> tuple:
    """What besides the state decides what ``it`` does (module docstring); a dep more than
    ``WINDOW`` items back counts as one (None), done by the time it matters (checked where
    it does: ``bench_item_skip``)."""
    again = None if it.weight_key is None else \
        r.uses.next(it.weight_key, it.id + 1, "param" if it.id in r.uses.param else "weight")
    return (it.unit, id(r.plan.tiles[it.id]),
            tuple(it.id - d if it.id - d <= WINDOW else None for d in it.deps),
            r.plan.traffic[it.id], it.weight_bytes, again)


def census(hw_path: str, wl_path: str, new_tokens: int, strategy: str) -> tuple[int, int, Counter]:
    """(items, item starts where nothing else can act, periods of repeated starts)."""
    hw = load_hardware(hw_path)
    wl = load_workload(wl_path, [("generation.new_tokens", new_tokens)])
    base = strategy_input(hw, wl)
    ctx = RunContext(wl, base, hw.bytes_per_element, None, None)
    items = through_cache(get_strategy(strategy).configure(ctx).plan(base).items, hw)
    states, started = {}, engine._Replay._started

    def observed(r, it):
        r.uses = getattr(r, "uses", None) or Uses(r)
        states[it.id] = machine_state(r, it), item_shape(r, it)
        return started(r, it)

    engine._Replay._started = observed
    try:
        engine.replay(items, hw, costed=cost.plan(items, hw))
    finally:
        engine._Replay._started = started
    return len(items), sum(s is not None for s, _ in states.values()), _periods(states)


def _periods(states: dict) -> Counter:
    """Per period p, the item starts in the state of the start p items before, whose item
    had the same shape."""
    last, periods = {}, Counter()
    for i in sorted(states):
        state, shape = states[i]
        if state is None:
            continue
        j = last.get(state)
        last[state] = i
        if j is not None and states[j][1] == shape:
            periods[i - j] += 1
    return periods


def main() -> None:
    args = replay_args(__doc__)
    for name in args.strategies.split(","):
        n, quiet, periods = census(args.hw, args.workload, args.new_tokens, name)
        print(f"{name}: {n} items; {quiet} start while nothing else can act; "
              f"{sum(periods.values())} of them in the state and shape of an earlier start; "
              f"periods (items: starts) {dict(periods.most_common(6))}")


if __name__ == "__main__":
    main()

"""Route (b) of issue #25 tried outside the core: skip whole periods of items, checked exact.

``ItemSkipping`` is a ``_Replay`` that, at each item start where nothing else can act, takes the
machine's state (``bench_item_periods.machine_state``: cycles relative to now, item ids to the
item, weight keys named by their next use while LRU has not surely evicted them). When it equals
the state at the start ``p`` items before, and the next items have the shapes of those ``p`` (as
far beyond what it skips as the loaders and the named keys look), the
next ``m`` periods do what the last one did, ``P`` cycles later each. It then copies that
period's item records, log rows and fetched bytes ``m`` times, repeats the buffers' points, and
moves every part on as the ``m·p`` items would have left it: the DRAM's cycles after now (and
the transfers in flight whole: they become the renamed items'), the loaders' cursors and tiles in
flight ``m·p`` items on, the buffers' keys renamed to those of the items that next use them (a
key evicted before any use: a fresh one), the rows of items not started moved on; units waiting
for a skipped item wake and move past it.
Once a period was skipped, states are taken only at items of the shape it started at (an
anchor) until that shape stops coming back, so most played items pay no state; a look of
``LOOK`` items that finds no period is followed by a pause twice as long as the last (at most
``MAX_PAUSE`` items), so a run without periods pays little.

Runs ``simulate`` (the workload's acceptance and reference run as in production) with each
strategy's items replayed twice, and prints per strategy: items skipped, replay CPU seconds of
production and of the prototype, and whether the items, log and occupancy frames are equal
(exact: the run stops with an error if not). A prototype to measure the route: it writes the parts' fields from outside, which the core
forbids (``tests/test_core_structure.py``), and is not a production path. Not shown, which a core
version must: that the state is complete, and that a dep far back never decides an item's ready
cycle (both hold on the runs checked here, by the frames' equality).

    .venv/bin/python benchmarks/bench_item_skip.py [--new-tokens 256] [--strategies sequential,speed]
"""

from __future__ import annotations

import time
from collections import OrderedDict
from pathlib import Path

import speedsim.api as api
import speedsim.sim.engine as engine
from bench_reuse import replay_args  # beside this file
from bench_item_periods import ROW_KINDS, WINDOW, Uses, item_shape, machine_state
from speedsim.config import load_hardware, load_workload
from speedsim.hw import cost
from speedsim.hw.units import BulkTransfer
from speedsim.sim.skipper import Period
from speedsim.sim.tables import ItemRecord, Row


LOOK, MAX_PAUSE = 256, 4096  # items a look for a period spans; the longest pause after none


class ItemSkipping(engine._Replay):
    """A replay that skips whole periods of items (module docstring)."""

    def __init__(self, items, hw, costed):
        super().__init__(items, hw, True, False, costed)
        assert all(it.id == n for n, it in enumerate(items)), "item ids must be positions"
        self.uses, self.gone = Uses(self), 0
        self.seen, self.record, self.shapes_ = {}, {}, {}
        self.skipped = self.done_below = 0
        self.anchor, self.anchor_period, self.missed = None, 0, 0
        self.looked = self.resume = self.pause = 0  # where the current look began; back-off
        self.cursors = [{e.item.id: n for n, e in enumerate(ld.items)} for ld in self._loaders()]
        self.created, add = {}, self.log.add

        def add_in_order(unit, it, kind, category, *args, **kw):  # creation order: frame ties
            self.created.setdefault((it.id, unit, kind, category, -1), len(self.created))
            return add(unit, it, kind, category, *args, **kw)

        self.log.add = add_in_order

    def _loaders(self) -> list:
        return [self.weights, *self.streams.values()]

    def shape(self, i: int) -> tuple:
        if i not in self.shapes_:
            self.shapes_[i] = item_shape(self, self.items[i])
        return self.shapes_[i]

    def _unit(self, unit: str):
        """``_Replay._unit``, but an item skipped meanwhile is passed over."""
        overhead, todo, n = self.hw.op_overhead_cycles(unit), self.by_unit[unit], 0
        while n < len(todo):
            it = todo[n]
            if it.id in self.done_at:
                n += 1
                continue
            ready = yield from self._wait_deps(it)
            if it.id in self.done_at:
                continue
            skip = self._try(it)
            if skip:
                yield self.sleep(skip)
                continue
            self._started(it)
            if overhead:
                yield self.sleep(overhead)
            self.weights.launched(it, self.env.now)
            self.streams[unit].launched(it, self.env.now)
            first = yield from self._tiles(unit, it, self._params(it))
            compute_end = self.env.now
            self._finish(it)
            self.record[it.id] = ItemRecord(it, ready, first, compute_end, self.done_at[it.id],
                                            len(self.plan.tiles[it.id]))
            self.records.append(self.record[it.id])
            n += 1
        self.blocked[unit] = -1

    def _try(self, it) -> int:
        """Skip periods from ``it`` on if its start repeats an earlier one: the cycles skipped."""
        i, now, shape = it.id, self.env.now, self.shape(it.id)
        if i < self.resume:  # backing off: no period was found in the last look
            return 0
        if i - self.looked >= LOOK:  # a look of LOOK items found none: pause twice as long
            self.pause = min(2 * self.pause or LOOK, MAX_PAUSE)
            self.resume, self.looked = i + self.pause, i + self.pause
            return 0
        if self.anchor is not None and shape != self.anchor:
            self.missed += 1
            if self.missed > 4 * self.anchor_period:
                self.anchor = None  # that shape stopped coming back: take states everywhere
            return 0
        self.missed, state = 0, machine_state(self, it)
        if state is None:
            return 0
        earlier = self.seen.get((state, shape))
        self.seen[(state, shape)] = i, now, self._marks()
        while self.done_below in self.record:
            self.done_below += 1
        if earlier is None or now <= earlier[1] or self.done_below < i:
            return 0
        j, t0, marks = earlier
        times = self._times(i, i - j, max(WINDOW, *(o + 1 for o in self._next_uses(i) if o is not None)))
        if times < 1:
            return 0
        self._skip(i, j, now - t0, times, marks)
        self.anchor, self.anchor_period = shape, i - j
        self.pause, self.looked = 0, i + times * (i - j)
        return times * (now - t0)

    def _marks(self) -> tuple:
        """Where each trace's period begins (at a point of this cycle, which the cycle's later
        changes still move), (a place kept) and the hits so far."""
        now = self.env.now
        return ({name: len(t.pts) - 2 * (len(t.pts) > 0 and t.pts[-2] == now)
                 for name, t in self.occupancy.traces.items()},
                None, self.weights.hits)

    def _next_uses(self, i: int) -> list:
        """The next-use offsets that name the buffers' keys at item ``i``'s start."""
        return [self.uses.next(k if name == "param" else k[0], i, None if k in buf.pins else name)
                for buf, name in ((self.wbuf, "weight"), (self.params, "param"))
                for k in buf.resident if name == "param" or k[0] != "anonymous"]

    def _times(self, i: int, p: int, ahead: int) -> int:
        """Whole periods of ``p`` items from ``i`` on whose shapes repeat, ``ahead`` short (the
        items the loaders and the buffers' keys look to), and whose deps from before ``i`` (far
        back: ``item_shape``) are done by now."""
        q, n, now, done = 0, len(self.items), self.env.now, self.done_at
        while i + q < n and self.shape(i + q) == self.shape(i - p + q % p) and all(
                d >= i or done.get(d, now + 1) <= now for d in self.items[i + q].deps):
            q += 1
        return (q - ahead) // p if i + q < n else 0

    def _skip(self, i: int, j: int, cycles: int, times: int, marks: tuple) -> None:
        """Items ``i`` … ``i + times·p - 1`` as copies of ``j`` … ``i - 1`` (module docstring)."""
        p, now = i - j, self.env.now
        by, n = times * cycles, times * (i - j)
        ahead = [(k, self.log.rows.pop(k)) for x in range(i, i + WINDOW) for k in self._row_keys(x)
                 if k in self.log.rows]
        fetched = {x: self.weights.fetched.pop(x) for x in range(i, i + WINDOW) if x in self.weights.fetched}
        for q in range(n):
            self._copy(self.items[i + q], self.items[j + q % p], (q // p + 1) * cycles)
        for k, row in ahead:
            self._row(self.items[k[0] + n], k, row, by)
        for x, v in fetched.items():
            self.weights.fetched[x + n] = v
        for name, t in self.occupancy.traces.items():
            self._repeat(t, marks[0].get(name, 0), cycles, times, now)
        self.weights.hits += times * (self.weights.hits - marks[2])
        self._move_parts(i, now, by, n)
        for x in range(i, i + n):  # units waiting for a skipped item wake and pass it
            ev = self.done_ev.get(x)
            if ev is not None and not ev.triggered:
                ev.succeed()
        self.skipped += n

    @staticmethod
    def _repeat(trace, since: int, cycles: int, times: int, now: int) -> None:
        """``times`` copies of the trace's points of the period; a point of this cycle (which
        the copies' first point replaces, as this cycle's changes would move it) comes back at
        the end, ``times · cycles`` later."""
        pts, end = trace.pts, None
        if pts and pts[-2] == now:
            end = (pts[-2] + times * cycles, pts[-1])
            del pts[-2:]
        trace.repeat(since, cycles, times)
        if end is not None:
            pts.extend(end)

    def _row_keys(self, x: int) -> list[tuple]:
        return [(x, "dram", *kind, -1) for kind in ROW_KINDS] + \
            [(x, u, "compute", "", -1) for u in self.by_unit]

    def _copy(self, x, y, shift: int) -> None:
        """Item ``x`` does what ``y`` did, ``shift`` cycles later."""
        r = self.record[y.id]
        self.record[x.id] = ItemRecord(x, r.ready + shift, r.start + shift, r.compute_end + shift,
                                       r.done + shift, r.tiles)
        self.records.append(self.record[x.id])
        self.done_at[x.id] = self.done_at[y.id] + shift
        if y.id in self.weights.fetched:
            self.weights.fetched[x.id] = self.weights.fetched[y.id]
        for k in sorted((k for k in self._row_keys(y.id) if k in self.log.rows), key=self.created.get):
            self._row(x, k, self.log.rows[k], shift)
        self.started.add(x.id)
        if self.weights.per_op:
            self.weights.issued_items.add(x.id)
        for s in self.streams.values():
            s.issuing.add(x.id)

    def _row(self, x, key: tuple, row: Row, shift: int) -> None:
        """``row`` (key ``key``) as item ``x``'s, ``shift`` cycles later."""
        new = (x.id, *key[1:])
        self.created[new] = len(self.created)
        self.log.rows[new] = Row(row.unit, x.id, x.op, row.kind, row.category, row.start_cycle + shift,
                                 row.end_cycle + shift, row.bytes, row.macs, row.vector_ops,
                                 x.wasted_fraction, x.step, -1, row.busy_cycles)

    def _move_parts(self, i: int, now: int, by: int, n: int) -> None:
        """DRAM, transfers in flight, loaders and buffers ``n`` items and ``by`` cycles on, at
        item ``i``'s start."""
        flight = {id(v): v for ld in self._loaders() for v in ld.issued.values()
                  if v.__class__ is BulkTransfer}
        self.dram.skip(None, now, Period(None, 0, 0, by, 1, (0, 0), (False, False)))
        for tr in flight.values():  # the renamed items' transfers: their past cycles move too
            tr.issue += by
            tr.start, tr.finish, tr.arrival, tr.origin = [
                t + by if t <= now else t for t in (tr.start, tr.finish, tr.arrival, tr.origin)]
        for ld, cursor in zip(self._loaders(), self.cursors):
            moved = [((iid + n, j), v + by if v.__class__ is int and v > now else v)
                     for (iid, j), v in ld.issued.items()]
            ld.issued = dict(moved)
            if ld.i < len(ld.items):
                ld.i = cursor[ld.items[ld.i].item.id + n]
        for s in self.streams.values():
            s.gated = None if s.gated is None else self.items[s.gated.id + n]
        for buf, name in ((self.wbuf, "weight"), (self.params, "param")):
            names = {k: self._renamed(k, i, n, name, k in buf.pins) for k in buf.resident}
            buf.resident = OrderedDict((names[k], b) for k, b in buf.resident.items())
            buf.pins = {names[k]: c for k, c in buf.pins.items()}

    def _renamed(self, key: tuple, i: int, n: int, name: str, pinned: bool) -> tuple:
        """A buffer key at item ``i``'s start as the item ``n`` after its next user names it; a
        key no item asks for before it is evicted becomes a fresh one no item asks for."""
        tiled = name == "weight"
        if tiled and key[0] == "anonymous":
            return ("anonymous", key[1] + n, key[2])
        nxt = self.uses.next(key[0] if tiled else key, i, None if pinned else name)
        if nxt is None:
            self.gone += 1
            return ("gone", self.gone, 0) if tiled else ("gone", self.gone)
        wk = self.items[i + nxt + n].weight_key
        return (wk, key[1]) if tiled else wk


def replay(items, hw, costed, skipping: bool):
    """The replay's items, log and occupancy frames, total cycles, items skipped."""
    r = ItemSkipping(items, hw, costed) if skipping else engine._Replay(items, hw, True, False, costed)
    r.run()
    frames = (engine.items_frame(r.records, r.plan.traffic, r.weights.fetched, hw), r.log.frame(),
              engine.occupancy_frame(r.occupancy, hw))
    return frames, int(max(r.done_at.values())), getattr(r, "skipped", 0)


def compare(hw_path: str, wl_path: str, new_tokens: int, strategies: list[str]) -> None:
    """Run ``simulate`` with every strategy's items replayed by production and the prototype
    (the workload's own acceptance and reference run included); print and check each pair."""
    hw = load_hardware(hw_path)
    wl = load_workload(wl_path, [("generation.new_tokens", new_tokens)])

    def both(items, hw_, costed=None, **kw):
        costed = costed if costed is not None else cost.plan(items, hw_)
        runs = []
        for skipping in (False, True):
            t0 = time.process_time()
            runs.append((*replay(items, hw_, costed, skipping), time.process_time() - t0))
        (a, cycles_a, _, s_a), (b, cycles_b, skipped, s_b) = runs
        equal = cycles_a == cycles_b and all(x.equals(y) for x, y in zip(a, b))
        print(f"{Path(hw_path).stem} {Path(wl_path).stem}: {len(items)} items, {skipped} "
              f"skipped; replay CPU {s_a:.2f} s, skipping {s_b:.2f} s ({s_a / s_b:.2f}x); "
              f"frames {'equal' if equal else 'DIFFER'}", flush=True)
        assert equal, "the prototype is not exact"
        return engine.replay(items, hw_, costed=costed, **kw)

    saved, api.replay = api.replay, both
    try:
        api.simulate(hw, wl, strategies)
    finally:
        api.replay = saved


def main() -> None:
    args = replay_args(__doc__, new_tokens=256)
    compare(args.hw, args.workload, args.new_tokens, args.strategies.split(","))


if __name__ == "__main__":
    main()

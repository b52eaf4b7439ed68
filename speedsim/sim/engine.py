"""Replay engine: a work-item DAG → SimPy accelerator → event log.

What is modelled
----------------
Each compute unit of the hardware config (``Hardware.compute_units``: the
**array**, ``hw.array.count`` ganged systolic arrays, and the **vector** unit) is a
SimPy process that runs its items in list (topological) order, one tile
(``speedsim.hw.cost.item_tiles``) at a time. Items on different units overlap.
Behind them sit the DRAM of ``speedsim.hw.units`` (demand and bulk priority
classes, DMA engines), the weight buffer (LRU of weight tiles) and the parameter
cache; the loaders of ``speedsim.sim.loaders`` decide what is issued when.

For each item:

1. it is *ready* when all its deps are done; it *starts* when it is ready and
   its unit is free, and the unit spends ``<unit>.op_overhead_ns`` issuing it;
2. **weight tiles** are bulk transfers issued by the weight loader in list order
   over all items: tile g is issued when tile g − slots finished computing
   (slots = 2 with double buffering, else 1); with ``weight_prefetch: ahead``
   that is all it waits for, so the next item's first tiles load while the
   current one computes; with ``per_op`` it also waits for its item to start.
   A resident tile costs nothing;
3. **stream tiles** (KV reads, spilled activations, parameters too big to stay
   resident) are demand transfers through the unit's stream slots, issued in
   the unit's tile order: tile g waits for tile g − slots of the same unit to
   finish computing, and for its item: an item whose stream is KV reads only
   is *prefetched* (``ahead``) once all its deps have started, since the
   cache rows it reads exist by then (the current token's own row is the dep's
   on-chip output); any other stream tile, and every stream tile under
   ``per_op``, waits for the end of its item's issue overhead;
4. **parameters** of vector items that fit the parameter cache are fetched on
   a miss (a demand transfer at the end of the issue overhead), then resident;
5. tile j computes once its bytes have arrived and tile j − 1 is done;
6. outputs (KV writes, spilled activations) leave as one demand transfer when
   the last tile ends; the item is *done* when they have arrived.

Time is integer cycles. Transfers are booked with the DRAM at the cycle they
are issued, from inside the SimPy processes, so requests reach the memory
controller in time order; a unit waiting for a weight tile re-reads its
arrival cycle on waking, because demand transfers booked meanwhile may have
pushed it back. The DRAM is a priority server computed arithmetically at each
request (``speedsim.hw.units.Dram``); only SimPy's public API is used.

Who owns which state
--------------------
The DRAM owns its bookings and pending bulk transfers; the weight buffer its
resident tiles and pins; the parameter cache its entries; each loader its cursor
and the tiles it issued until they are taken; ``Occupancy`` the bytes held per
buffer; ``Log`` the log rows; this module only the items' progress (started,
issuing, done). No part's fields are written from outside it: parts move on in
whole periods only through the state protocol (``speedsim.hw.units.Periodic``).

Why the cost scales with work items, not tiles
----------------------------------------------
Every tile is one SimPy step by definition of the model, and that is what
``replay(..., closed_form_runs=False)`` plays. The production path plays the same
steps in arithmetic whenever no other unit can act before they end, and skips
whole periods of repeating tiles (weight streams, KV reads) at once: the one
period skipper of ``speedsim.sim.skipper``, exact by construction. What remains
per tile is the transient at each end of a run.

Invariants checked in every run: buffer occupancy never exceeds capacity
(weight buffer at each allocation and over its whole change-point trace),
every item is done after its deps, DRAM requests arrive in time order.
"""

from __future__ import annotations

from typing import Hashable, Sequence

import simpy

from speedsim.config.hw import Hardware
from speedsim.contracts.results import ITEM_COLUMNS, LOG_COLUMNS, OCCUPANCY_COLUMNS, SimResult
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost
from speedsim.hw.cost import CostPlan
from speedsim.hw.units import BulkTransfer, Dram, Occupancy, ParamCache, WeightBuffer
from speedsim.sim.loaders import StreamLoader, WeightLoader
from speedsim.sim.skipper import Shapes, Stretch
from speedsim.sim.tables import ItemRecord, Log, items_frame, occupancy_frame

__all__ = ["ITEM_COLUMNS", "LOG_COLUMNS", "OCCUPANCY_COLUMNS", "SimResult", "replay"]


class _Gates:
    """When an item's stream tiles may be issued; once yes, always (its deps stay
    started, its issue overhead stays ended)."""

    def __init__(self, hw: Hardware, costed: CostPlan, started: set[int]):
        self.hw, self.plan, self.started = hw, costed, started
        self.per_op = hw.weight_prefetch == "per_op"
        self.issuing: set[int] = set()  # items whose issue overhead has ended
        self.open: set[int] = set()
        self.kv_only: dict[int, bool] = {}

    def stream(self, it: WorkItem) -> bool:
        if it.id in self.open:
            return True
        if it.id in self.issuing or not self.per_op and self._prefetchable(it) \
                and self.started.issuperset(it.deps):
            self.open.add(it.id)
            return True
        return False

    def _prefetchable(self, it: WorkItem) -> bool:
        hit = self.kv_only.get(it.id)
        if hit is None:
            hit = self.kv_only[it.id] = cost.kv_prefetchable(it, self.plan.traffic[it.id], self.hw)
        return hit


class _Events(dict):
    """Item id -> its done event, created on first use (most items are never waited for:
    a 7B run has ~100k items, and creating their events cost a third of the set-up)."""

    def __init__(self, env: simpy.Environment):
        super().__init__()
        self.env = env

    def __missing__(self, item_id: int) -> simpy.Event:
        ev = self[item_id] = self.env.event()
        return ev


class _Replay:
    """One replay: a SimPy process per compute unit over the shared parts."""

    def __init__(self, items: Sequence[WorkItem], hw: Hardware, fast: bool, per_tile: bool,
                 costed: CostPlan | None):
        self.hw, self.items, self.env = hw, items, simpy.Environment()
        self.plan = costed if costed is not None else cost.plan(items, hw)
        self.occupancy, self.log, self.dram = Occupancy(), Log(per_tile), Dram(hw)
        params = cost.param_capacity(hw)
        self.wbuf = WeightBuffer(cost.weight_buffer_bytes(hw) - params, self.occupancy)
        self.params = ParamCache(params, self.occupancy)
        self.units = hw.compute_units
        self.by_unit = {u: [it for it in items if it.unit == u] for u in self.units}
        self.weights = WeightLoader(list(items), self.plan.tiles, cost.slots(hw),
                                    hw.weight_prefetch == "per_op", self.dram, self.wbuf)
        self.gates = _Gates(hw, self.plan, self.weights.started)
        held = self.occupancy.trace("activation")
        self.streams = {u: StreamLoader(u, self.by_unit[u], self.plan.tiles, cost.slots(hw),
                                        self.gates.stream, self.dram, self.log, held)
                        for u in self.units}
        self.done_ev, self.done_at = _Events(self.env), {}
        self.records: list[ItemRecord] = []
        self.events, self.fast = 0, fast and not per_tile
        self.blocked: dict[str, int | None] = dict.fromkeys(self.units)
        self.shapes = Shapes()
        # per unit, the stateful parts a stretch of its tiles moves on (``Periodic``)
        self.parts = {u: [self.dram, self.wbuf, self.occupancy, self.log, self.weights,
                          self.streams[u]] for u in self.units}

    def sleep(self, cycles: int):
        """A SimPy timeout of ``cycles``, counted."""
        self.events += 1
        return self.env.timeout(cycles)

    def run(self) -> None:
        self.weights.pump(0)
        for u in self.units:
            self.env.process(self._unit(u))
        self.env.run()
        assert len(self.done_at) == len(self.items), "replay ended with items not done"
        self.gates = self.streams = self.done_ev = self.env = None  # no cycles left to collect

    def _started(self, it: WorkItem) -> None:
        """``it`` has started: prefetches gated on starts may go (weight tiles too under
        ``per_op``). Every other change of a loader's gates or slots (a release, an issue
        overhead ending) pumps that loader where it happens, so a stream loader with a free
        slot is waiting for its next item's gate, which a start opens only if it is one of
        that item's deps: the item the loader's last pump stopped at."""
        self.weights.started.add(it.id)
        if self.weights.per_op:
            self.weights.pump(self.env.now)
        for s in self.streams.values():
            if s.gated is not None and it.id in s.gated.deps:
                s.pump(self.env.now)

    def _wait_deps(self, it: WorkItem):
        """The cycle ``it`` became ready, once all its deps are done (a generator)."""
        ready, done_at = 0, self.done_at
        for d in it.deps:
            if d not in done_at or done_at[d] > self.env.now:
                self.blocked[it.unit] = d
                yield self.done_ev[d]
                self.blocked[it.unit] = None
            ready = max(ready, done_at[d])
        return ready

    def _unit(self, unit: str):
        overhead = self.hw.op_overhead_cycles(unit)
        for it in self.by_unit[unit]:
            # 1. ready, start, issue overhead
            ready = yield from self._wait_deps(it)
            self._started(it)  # prefetches gated on this start go first, its own streams after
            if overhead:
                yield self.sleep(overhead)
            self.gates.issuing.add(it.id)
            self.streams[unit].pump(self.env.now)
            # 2. parameters, then the tiles
            first = yield from self._tiles(unit, it, self._params(it))
            # 3. outputs
            compute_end = self.env.now
            self._finish(it, self._store(it))
            self.records.append(ItemRecord(it, ready, first, compute_end, self.done_at[it.id],
                                           len(self.plan.tiles[it.id])))
        self.blocked[unit] = -1  # finished: waits for nothing, issues nothing

    def _tiles(self, unit: str, it: WorkItem, param_at: int):
        """Play the item's tiles (in arithmetic where ``Stretch`` can); the first compute start."""
        env, log, tiles = self.env, self.log, self.plan.tiles[it.id]
        first, j = None, 0
        while j < len(tiles):
            horizon = self._horizon(unit) if self.fast else -1
            if horizon >= 0 and (first is not None or param_at <= env.now):
                played = Stretch(self, unit, it, tiles, horizon).play(j, env.now)
                if played:
                    first = played[2] if first is None else first
                    yield self.sleep(played[1] - env.now)
                    j = played[0]
                    continue
            t = tiles[j]
            key, at = yield from self._tile_inputs(unit, it, j, t, param_at if j == 0 else 0)
            first = env.now if first is None else first
            if t.cycles:
                yield self.sleep(t.cycles)
            if log.per_tile:
                log.add(unit, it, "compute", "", at, env.now, 0, t.macs, t.vector_ops, j)
            if key is not None:
                self.weights.release(key, env.now)
            if t.stream_bytes:
                self.streams[unit].release(t.stream_bytes, env.now)
            j += 1
        first = env.now if first is None else first
        if not log.per_tile:
            sums = self.plan.sums[it.id]
            log.add(unit, it, "compute", "", first, env.now, 0, sums.macs, sums.vector_ops,
                    busy=sums.cycles)
        return first

    def _horizon(self, unit: str) -> float:
        """The first cycle another unit may act again (each is blocked on a dep), or -1 if
        one may act at any time."""
        horizon = float("inf")
        for other in self.units:
            d = self.blocked[other]
            if other == unit or d == -1:
                continue
            if d is None:
                return -1
            horizon = min(horizon, self.done_at.get(d, float("inf")))
        return horizon if horizon >= self.env.now else -1

    def _params(self, it: WorkItem) -> int:
        """Fetch a vector item's parameters on a miss; the cycle they are on chip."""
        now = self.env.now
        if not cost.param_resident(it, self.hw) or self.params.lookup(it.weight_key, it.weight_bytes, now):
            return now
        start, end, arrival = self.dram.demand(now, it.weight_bytes)
        self.log.add("dram", it, "load", "param", start, end, it.weight_bytes)
        self.weights.fetched[it.id] = it.weight_bytes
        return arrival

    def _tile_inputs(self, unit: str, it: WorkItem, j: int, t: cost.Tile, param_at: int):
        """Wait until tile ``j``'s weights, stream bytes and parameters are on chip."""
        env, key = self.env, None
        if param_at > env.now:
            yield self.sleep(param_at - env.now)
        if t.stream_bytes:
            at = self.streams[unit].take(it, j)
            if at > env.now:
                yield self.sleep(at - env.now)
        if t.weight_bytes:
            key, tr = self.weights.take(it, j)
            if isinstance(tr, BulkTransfer):
                while tr.arrival > env.now:  # demand booked meanwhile may push it back
                    yield self.sleep(tr.arrival - env.now)
                self.log.add("dram", it, "load", "weight", tr.start, tr.finish, tr.bytes_,
                             tile=j, busy=tr.cycles)
        return key, env.now

    def _store(self, it: WorkItem) -> int:
        """Book the item's outputs (one demand transfer); the cycle they have arrived."""
        tr = self.plan.traffic[it.id]
        out, now = tr.kv_write_bytes + tr.act_write_bytes, self.env.now
        if not out:
            return now
        start, end, arrival = self.dram.demand(now, out)
        self.log.add("dram", it, "store", "output", start, end, out)
        return arrival

    def _finish(self, it: WorkItem, done: int) -> None:
        """Mark ``it`` done at cycle ``done``; its event fires then. Done now and not
        waited for yet, it needs no event: a later waiter sees ``done_at`` has passed."""
        self.done_at[it.id] = done
        delay = done - self.env.now
        if delay:
            ev = self.done_ev[it.id]
            self.sleep(delay).callbacks.append(lambda _: ev.succeed())
        elif it.id in self.done_ev:
            self.done_ev[it.id].succeed()


def _check_items(items: Sequence[WorkItem], hw: Hardware) -> None:
    """Ids unique, deps before their items, units the hardware has, and one size per weight
    key (a key names one tensor: its tiles are what residency looks up)."""
    seen: set[int] = set()
    sizes: dict[Hashable, int] = {}
    for it in items:
        if it.id in seen:
            raise ValueError(f"work item id {it.id} appears twice")
        if it.unit not in hw.compute_units:
            raise ValueError(f"work item {it.id} runs on {it.unit!r}, which {hw.name} does not have")
        for d in it.deps:
            if d not in seen:
                raise ValueError(f"work item {it.id} depends on {d}, which does not come before it")
        seen.add(it.id)
        if it.weight_key is not None and sizes.setdefault(it.weight_key, it.weight_bytes) != it.weight_bytes:
            raise ValueError(f"work item {it.id}: weight key {it.weight_key!r} has "
                             f"{it.weight_bytes} bytes here and {sizes[it.weight_key]} before")


def replay(items: Sequence[WorkItem], hw: Hardware, *, closed_form_runs: bool = True,
           log_tiles: bool = False, costed: CostPlan | None = None) -> SimResult:
    """Run ``items`` (a DAG in topological order) on ``hw``; see the module docstring.

    ``closed_form_runs=False`` plays every tile as its own SimPy step instead of in
    arithmetic with whole periods skipped (``speedsim.sim.skipper``): the result is
    identical (the test suite checks it), only slower. ``log_tiles``: one log row per
    tile (column ``tile``) instead of one per item and kind; it plays every tile.
    ``costed``: ``cost.plan(items, hw)`` when the caller has it already.
    """
    if not isinstance(hw, Hardware):
        raise TypeError(f"hw must be a Hardware config, got {type(hw).__name__}")
    _check_items(items, hw)
    r = _Replay(items, hw, closed_form_runs, log_tiles, costed)
    r.run()
    return SimResult(log=r.log.frame(),
                     items=items_frame(r.records, r.plan.traffic, r.weights.fetched, hw),
                     occupancy=occupancy_frame(r.occupancy, hw),
                     total_cycles=int(max(r.done_at.values(), default=0)), events=r.events,
                     roofline=cost.roofline(items, hw, r.plan), hw=hw, costed=r.plan)

"""Replay engine: a work-item DAG → SimPy accelerator → event log.

Each compute unit of the hardware (``Hardware.compute_units``: the array, the
vector unit) is a SimPy process that runs its items in list (topological) order,
one tile (``speedsim.hw.cost.item_tiles``) at a time; items on different units
overlap. For each item (docs/hardware.md has the timing rules):

1. it is *ready* when all its deps are done, *starts* when also its unit is
   free, and the unit spends ``<unit>.op_overhead_ns`` issuing it;
2. its weight tiles come through the weight loader, its stream tiles (KV reads,
   spills, streamed parameters) through its unit's stream loader
   (``speedsim.sim.loaders``: the loader policy), its resident parameters from the
   parameter cache (a demand fetch on a miss, at the end of the issue overhead);
3. tile j computes once its bytes have arrived and tile j − 1 is done;
4. its outputs leave as one demand transfer when the last tile ends; it is
   *done* when they have arrived.

Time is integer cycles. Transfers are booked with the DRAM (``speedsim.hw.units.Dram``)
at the cycle they are issued, so requests reach it in time order; a unit waiting for
a weight tile re-reads its arrival on waking (demand booked meanwhile may push it back).

Who owns which state: the DRAM its bookings and bulk transfers until they arrive; the weight
buffer its resident tiles and pins; the parameter cache its entries; each loader its cursor
and the tiles it issued until computed; ``Occupancy`` and ``Log`` (``speedsim.sim.tables``)
the records; this module only the items' progress (started, issuing, done, and which dep
each unit waits for). No part's fields are written from outside it; parts move on in whole
periods only through the state protocol ``speedsim.hw.units.Periodic``.

The cost scales with work items, not tiles: whenever no other unit can act before they
end, a unit's tiles are played in arithmetic and whole periods of repeating tiles skipped
(``speedsim.sim.skipper``), exactly. Invariants checked in every run: buffer occupancy
never exceeds capacity, items end after their deps, DRAM requests come in time order.
"""

from __future__ import annotations

from typing import Sequence

import simpy

from speedsim.config.hw import Hardware
from speedsim.contracts.results import SimResult
from speedsim.contracts.workitem import WorkItem, check_dag
from speedsim.hw import cost
from speedsim.hw.cost import CostPlan
from speedsim.hw.units import Dram, Periodic, WeightBuffer
from speedsim.sim.loaders import StreamLoader, WeightLoader
from speedsim.sim.skipper import Stretch
from speedsim.sim.tables import ItemRecord, Log, Occupancy, check_capacity, item_columns, items_frame, occupancy_frame


class _Replay:
    """One replay: a SimPy process per compute unit over the shared parts."""

    def __init__(self, items: Sequence[WorkItem], hw: Hardware, fast: bool, per_tile: bool,
                 costed: CostPlan | None):
        self.hw, self.items, self.env = hw, items, simpy.Environment()
        self.plan = costed if costed is not None else cost.plan(items, hw)
        self.occupancy, self.log, self.dram = Occupancy(), Log(per_tile), Dram(hw)
        params = cost.param_capacity(hw)
        self.wbuf = WeightBuffer(cost.weight_buffer_bytes(hw) - params,
                                 self.occupancy.trace("weight", replayed_by_owner=True))
        self.params = WeightBuffer(params, self.occupancy.trace("weight"))
        self.by_unit = {u: [it for it in items if it.unit == u] for u in hw.compute_units}
        self.shapes = cost.TileShapes()
        self.weights = WeightLoader(list(items), self.plan.tiles, self.shapes, cost.slots(hw),
                                    hw.weight_prefetch == "per_op", self.dram, self.wbuf, self.log)
        held = self.occupancy.trace("activation")
        self.started: set[int] = set()  # items started (a stream's gate under ``ahead``)
        self.streams = {u: StreamLoader(self.by_unit[u], self.plan, self.shapes, cost.slots(hw), hw, self.started,
                                        self.dram, self.log, held) for u in self.by_unit}
        self.done_at: dict[int, int] = {}
        # item id -> its done event, made when first waited for (most items never are)
        self.done_ev: dict[int, simpy.Event] = {}
        self.records: list[ItemRecord] = []
        self.events, self.fast = 0, fast and not per_tile
        self.blocked: dict[str, int | None] = dict.fromkeys(self.by_unit)
        # per unit, the stateful parts a stretch of its tiles moves on (``Periodic``)
        self.parts = {u: [self.dram, self.wbuf, self.occupancy, self.log, self.weights,
                          self.streams[u]] for u in self.by_unit}
        self.relatives = {u: [p.relative for p in ps if type(p).relative is not Periodic.relative]
                          for u, ps in self.parts.items()}  # of the parts whose relative state varies

    def sleep(self, cycles: int):
        """A SimPy timeout of ``cycles``, counted."""
        self.events += 1
        return self.env.timeout(cycles)

    def run(self) -> None:
        self.weights.pump(0)
        for u in self.by_unit:
            self.env.process(self._unit(u))
        self.env.run()
        assert len(self.done_at) == len(self.items), "replay ended with items not done"
        self.streams = self.done_ev = self.env = None  # no cycles left to collect

    def _started(self, it: WorkItem) -> None:
        """``it`` has started: stream tiles gated on its start may go (of the item a loader's
        last pump stopped at, if a dep); other gates and slots pump where they change."""
        self.started.add(it.id)
        for s in self.streams.values():
            if s.gated is not None and it.id in s.gated.deps:
                s.pump(self.env.now)

    def _wait_deps(self, it: WorkItem):
        """The cycle ``it`` became ready, once all its deps are done (a generator)."""
        ready, done_at = 0, self.done_at
        for d in it.deps:
            if d not in done_at or done_at[d] > self.env.now:
                self.blocked[it.unit] = d
                yield self.done_ev.get(d) or self.done_ev.setdefault(d, self.env.event())
                self.blocked[it.unit] = None
            ready = max(ready, done_at[d])
        return ready

    def _unit(self, unit: str):
        overhead = self.hw.op_overhead_cycles(unit)
        for it in self.by_unit[unit]:
            # 1. ready, start, issue overhead
            ready = yield from self._wait_deps(it)
            self._started(it)  # prefetches gated on this start go first, its own loads after
            if overhead:
                yield self.sleep(overhead)
            self.weights.launched(it, self.env.now)  # its weights first, then its streams
            self.streams[unit].launched(it, self.env.now)
            # 2. parameters, then the tiles
            first = yield from self._tiles(unit, it, self._params(it))
            # 3. outputs
            compute_end = self.env.now
            self._finish(it)
            self.records.append(ItemRecord(it, ready, first, compute_end, self.done_at[it.id],
                                           len(self.plan.tiles[it.id])))
        self.blocked[unit] = -1  # finished: waits for nothing, issues nothing

    def _tiles(self, unit: str, it: WorkItem, param_at: int):
        """Play the item's tiles (in arithmetic where ``Stretch`` can); the first compute start."""
        env, log, tiles = self.env, self.log, self.plan.tiles[it.id]
        first, j = None, 0
        while j < len(tiles):
            t = tiles[j]  # (a last tile that only computes needs no stretch: it plays as one step)
            bare = j + 1 == len(tiles) and t.cycles and not (t.weight_bytes or t.stream_bytes)
            horizon = self._horizon(unit) if self.fast and not bare else -1
            if horizon >= 0 and (first is not None or param_at <= env.now):
                k, end, start = Stretch(self, unit, it, tiles, horizon).play(j, env.now)
                if k > j:
                    first = start if first is None else first
                    yield self.sleep(end - env.now)
                    j = k
                    continue
            at = yield from self._tile_inputs(unit, it, j, t, param_at if j == 0 else 0)
            first = env.now if first is None else first
            if t.cycles:
                yield self.sleep(t.cycles)
            if log.per_tile:
                log.add(unit, it, "compute", "", at, env.now, 0, t.macs, t.vector_ops, j)
            if t.weight_bytes:
                self.weights.release(it, j, env.now)
            if t.stream_bytes:
                self.streams[unit].release(it, j, t.stream_bytes, env.now)
            j += 1
        first = env.now if first is None else first
        if not log.per_tile:
            sums = self.plan.sums[it.id]
            log.add(unit, it, "compute", "", first, env.now, 0, sums.macs, sums.vector_ops, busy=sums.cycles)
        return first

    def _horizon(self, unit: str) -> float:
        """The first cycle another unit may act again (each is blocked on a dep), or -1 if
        one may act at any time."""
        horizon = float("inf")
        for other, d in self.blocked.items():
            if d is None and other != unit:
                return -1
            if other != unit and d != -1:
                horizon = min(horizon, self.done_at.get(d, horizon))
        return horizon if horizon >= self.env.now else -1

    def _params(self, it: WorkItem) -> int:
        """Fetch a vector item's parameters on a miss; the cycle they are on chip."""
        now = self.env.now
        if not cost.param_resident(it, self.hw):
            return now
        hit = self.params.acquire(it.weight_key, it.weight_bytes, now)
        self.params.release(it.weight_key)  # never pinned: read once the issue overhead ends
        if hit:
            return now
        self.weights.fetched[it.id] = it.weight_bytes
        return self._demand(it, "load", "param", it.weight_bytes)

    def _tile_inputs(self, unit: str, it: WorkItem, j: int, t: cost.Tile, param_at: int):
        """Wait until tile ``j``'s weights, stream bytes and parameters are on chip."""
        env = self.env
        if param_at > env.now:
            yield self.sleep(param_at - env.now)
        if t.stream_bytes:
            at = self.streams[unit].arrival(it, j)
            if at > env.now:
                yield self.sleep(at - env.now)
        if t.weight_bytes:  # demand booked meanwhile may push its arrival back
            while (at := self.weights.arrival(it, j)) > env.now:
                yield self.sleep(at - env.now)
        return env.now

    def _demand(self, it: WorkItem, kind: str, category: str, bytes_: int) -> int:
        """Book and log a demand transfer of ``it``'s ``bytes_`` now; the cycle they arrive."""
        start, end, arrival = self.dram.demand(self.env.now, bytes_)
        self.log.add("dram", it, kind, category, start, end, bytes_)
        return arrival

    def _finish(self, it: WorkItem) -> None:
        """Book the item's outputs (one demand transfer); it is done once they have arrived,
        and its event fires then. Done now and not waited for yet, it needs no event: a later
        waiter sees ``done_at`` has passed."""
        tr = self.plan.traffic[it.id]
        out = tr.kv_write_bytes + tr.act_write_bytes
        done = self.done_at[it.id] = self._demand(it, "store", "output", out) if out else self.env.now
        ev = self.done_ev.get(it.id)
        if done > self.env.now:
            ev = ev or self.done_ev.setdefault(it.id, self.env.event())
            self.sleep(done - self.env.now).callbacks.append(lambda _: ev.succeed())
        elif ev is not None:
            ev.succeed()


def replay(items: Sequence[WorkItem], hw: Hardware, *, closed_form_runs: bool = True,
           log_tiles: bool = False, costed: CostPlan | None = None, frames: bool = True) -> SimResult:
    """Run ``items`` (a DAG in topological order) on ``hw``; see the module docstring.
    ``closed_form_runs=False`` plays every tile as its own SimPy step instead of in
    arithmetic with whole periods skipped (``speedsim.sim.skipper``): the result is
    identical (the test suite checks it), only slower. ``log_tiles``: one log row per
    tile (column ``tile``) instead of one per item and kind; it plays every tile.
    ``costed``: ``cost.plan(items, hw)`` when the caller has it already. ``frames=False``:
    items as columns (``tables.item_columns``), log and occupancy None (capacity checked).
    """
    if not isinstance(hw, Hardware):
        raise TypeError(f"hw must be a Hardware config, got {type(hw).__name__}")
    check_dag(items, hw.compute_units)
    r = _Replay(items, hw, closed_form_runs, log_tiles, costed)
    r.run()
    table = items_frame if frames else item_columns
    return SimResult(log=r.log.frame() if frames else None,
                     items=table(r.records, r.plan.traffic, r.weights.fetched, hw),
                     occupancy=(occupancy_frame if frames else check_capacity)(r.occupancy, hw),
                     total_cycles=int(max(r.done_at.values(), default=0)), events=r.events,
                     roofline=cost.roofline(items, hw, r.plan), hw=hw, costed=r.plan)

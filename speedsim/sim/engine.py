"""Replay engine: a work-item DAG → SimPy accelerator → event log.

What is modelled
----------------
Two compute units, the **array** (``hw.array.count`` ganged systolic arrays)
and the **vector** unit, are SimPy processes that run their items in list
(topological) order, one tile (``speedsim.hw.cost.item_tiles``) at a time.
Items on different units overlap. Behind them sits the DRAM of
``speedsim.hw.units`` (demand and bulk priority classes, DMA engines), the
weight buffer (LRU of weight tiles) and the parameter cache.

For each item:

1. it is *ready* when all its deps are done; it *starts* when it is ready and
   its unit is free, and the unit spends ``<unit>.op_overhead_ns`` issuing it;
2. **weight tiles** (array items) are bulk transfers issued by the weight
   loader in list order over all array items: tile g is issued when tile
   g − slots finished computing (slots = 2 with double buffering, else 1);
   with ``weight_prefetch: ahead`` that is all it waits for, so the next
   item's first tiles load while the current one computes; with ``per_op``
   it also waits for its item to start. A resident tile costs nothing;
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

Why the cost scales with work items, not tiles
----------------------------------------------
Every tile is one SimPy step by definition of the model, and that is what
``replay(..., closed_form_runs=False)`` plays (a check the tests compare
against, besides the separate reference engine). The production path plays the same steps without SimPy events
whenever the other unit cannot act before they end (it waits for an item that
finishes later, so no transfer of its own can interleave):

* a run of identical weight-only tiles on the array (its last tile may compute
  for other cycles: it is only issued within the run, as may be the next weight
  item's first tile when it loads the same bytes), with no demand transfer
  moving past the run's first issue, is the fixed max-plus recurrence of
  ``speedsim.hw.pipeline``:
  stepped until its relative state repeats, then whole periods are added in
  closed form — a 45 MB GEMM of 350 tiles costs a handful of steps;
* tiles without weights (KV reads, vector ops) are played as plain
  arithmetic on the same loaders and DRAM, booking the same transfers at the
  same cycles, up to the other unit's horizon; inside a long periodic stretch of
  them (a KV read of a long context is tens of identical or alternating tiles)
  the relative state of the stream slots and the DRAM repeats within a few
  tiles, and whole periods are then added at once (``_StreamPeriods``).

Both are exact — the suite checks that the two paths give identical items,
logs, cycles, and the whole occupancy trace of every buffer on
hundreds of random DAGs with both units contending for the DRAM, and
``speedsim.sim.reference`` replays every tile in a separate, plainer engine. So a
run costs SimPy events per work item (deps, issue overhead, the boundaries of
runs), not per tile: what remains per tile is the transient at each end of a run.

Invariants checked in every run: buffer occupancy never exceeds capacity
(weight buffer at each allocation and over its whole change-point trace),
every item is done after its deps, DRAM requests arrive in time order.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import Hashable, Sequence

import numpy as np
import pandas as pd
import simpy

from speedsim.config.hw import Hardware
from speedsim.hw import cost
from speedsim.contracts.workitem import WorkItem
from speedsim.hw.cost import CostPlan, Roofline, Tile, Traffic
from speedsim.hw.pipeline import RunState, weight_run
from speedsim.hw.units import BulkTransfer, Dram, Occupancy, ParamCache, WeightBuffer

LOG_COLUMNS = ("unit", "item", "op", "kind", "category", "start_cycle", "end_cycle", "bytes",
               "macs", "vector_ops", "wasted_fraction", "step", "tile", "busy_cycles")
LOG_TEXT_COLUMNS = ("unit", "op", "kind", "category")
ITEM_COLUMNS = ("item", "op", "unit", "phase", "label", "ready_cycle", "start_cycle",
                "compute_end_cycle", "end_cycle", "tokens", "step", "wasted_fraction", "macs",
                "vector_ops", "tiles", "weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes",
                "act_bytes", "weight_sram_bytes", "act_sram_bytes", "acc_sram_bytes",
                "kv_sram_bytes")
OCCUPANCY_COLUMNS = ("buffer", "cycle", "bytes")
FAST_MIN_TILES = 4  # shorter weight runs are played tile by tile


@dataclass(frozen=True)
class SimResult:
    """Everything a replay produced, with the hardware that produced it.

    ``log``: one row per item and interval kind (``LOG_COLUMNS``): its compute
    span on ``array``/``vector`` (kind ``compute``) and its transfers on
    ``dram`` (kind ``load``/``store``, category ``weight``/``stream``/``param``/
    ``output``), each from the first transfer's start to the last one's end.
    ``items``: one row per work item (``ITEM_COLUMNS``); DRAM bytes by
    category; SRAM bytes written into plus read out of each buffer.
    ``occupancy``: bytes held per buffer at each cycle the total changed
    (``OCCUPANCY_COLUMNS``).
    ``events``: SimPy events processed.
    """

    log: pd.DataFrame
    items: pd.DataFrame
    occupancy: pd.DataFrame
    total_cycles: int
    events: int
    roofline: Roofline
    hw: Hardware
    costed: CostPlan | None = None  # the items' ``cost.plan`` (``speedsim.api`` drops it: see there)


def _tile_key(it: WorkItem, j: int) -> Hashable:
    """Residency key of tile ``j`` of array item ``it``; the tile index always comes last."""
    return (it.weight_key, j) if it.weight_key is not None else ("anonymous", it.id, j)


class _Log:
    """Log rows merged per (item, unit, kind, category) — or one per tile with ``per_tile``
    — and per-item fetched weight bytes."""

    def __init__(self, per_tile: bool):
        self.rows: dict[tuple, list] = {}
        self.fetched: dict[int, int] = {}
        self.per_tile = per_tile

    def add(self, unit: str, it: WorkItem, kind: str, category: str, start: int, end: int,
            bytes_: int = 0, macs: int = 0, vops: int = 0, tile: int = -1,
            busy: int | None = None) -> None:
        """``busy``: cycles the unit actually worked within ``[start, end)`` (default: all)."""
        busy = end - start if busy is None else busy
        key = (it.id, unit, kind, category, tile if self.per_tile else -1)
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = [unit, it.id, it.op, kind, category, start, end, bytes_, macs, vops,
                              it.wasted_fraction, it.step, key[-1], busy]
            return
        if start < row[5]:
            row[5] = start
        if end > row[6]:
            row[6] = end
        row[7] += bytes_
        row[8] += macs
        row[9] += vops
        row[13] += busy

    def frame(self) -> pd.DataFrame:
        """The rows (``LOG_COLUMNS``) by start cycle, unit and item, ties in logging order;
        built column by column from the rows transposed (a 7B run logs ~200k rows)."""
        if not self.rows:
            return pd.DataFrame.from_records([], columns=LOG_COLUMNS)
        n = len(self.rows)
        columns = zip(*self.rows.values())  # one tuple per column of LOG_COLUMNS
        cols = {c: np.array(v, dtype=object) if c in LOG_TEXT_COLUMNS
                else np.fromiter(v, _log_dtype(c), n) for c, v in zip(LOG_COLUMNS, columns)}
        rank = {u: r for r, u in enumerate(sorted(set(cols["unit"])))}
        unit_rank = np.fromiter(map(rank.__getitem__, cols["unit"]), np.int64, n)
        order = np.lexsort((cols["item"], unit_rank, cols["start_cycle"]))  # stable
        return pd.DataFrame({c: v[order] for c, v in cols.items()})


def _log_dtype(column: str) -> type:
    return np.float64 if column == "wasted_fraction" else np.int64


def _next_tile(loader, field: int) -> tuple[WorkItem, int, int] | None:
    """Move ``loader``'s cursor (``i``, ``j`` over ``loader.items``: item, tiles and their
    ``_next_index``) to the next tile with bytes in ``Tile`` field number ``field`` and
    return (item, tile index, bytes), or None past the end."""
    items, i, j = loader.items, loader.i, loader.j
    while i < len(items):
        it, tiles, nxt = items[i]
        if j < len(tiles):
            j = nxt[j]
            if j < len(tiles):
                loader.i, loader.j = i, j
                return it, j, tiles[j][field]
        i, j = i + 1, 0
    loader.i, loader.j = i, j
    return None


_WEIGHT_BYTES, _STREAM_BYTES = Tile._fields.index("weight_bytes"), Tile._fields.index("stream_bytes")


def _next_index(cache: dict, tiles: list[Tile], field: str) -> list[int]:
    """Per tile index j, the first index >= j whose tile has ``field`` bytes (cached by
    tile list: items of one shape share theirs)."""
    hit = cache.get(id(tiles))
    if hit is None:
        hit = [len(tiles)] * (len(tiles) + 1)
        for j in range(len(tiles) - 1, -1, -1):
            hit[j] = j if getattr(tiles[j], field) else hit[j + 1]
        cache[id(tiles)] = hit
    return hit


def _cursor_items(items: list[WorkItem], tiles: dict[int, list[Tile]],
                  field: str) -> list[tuple[WorkItem, list[Tile], list[int]]]:
    """A loader's items with their tiles and those tiles' ``_next_index`` for ``field``:
    only items with a tile that has ``field`` bytes (the others give it nothing to issue)."""
    skips: dict[int, list[int]] = {}
    cursor = [(it, tiles[it.id], _next_index(skips, tiles[it.id], field)) for it in items]
    return [c for c in cursor if c[2][0] < len(c[1])]


class _WeightLoader:
    """Issues the array items' weight tiles in list order, ``slots`` ahead of the compute."""

    def __init__(self, array_items: list[WorkItem], tiles: dict[int, list[Tile]], slots: int,
                 per_op: bool, parts: "_Parts"):
        self.items = _cursor_items(array_items, tiles, "weight_bytes")
        self.i = self.j = 0  # the next tile to issue: tile j of items[i]
        self.slots, self.per_op, self.parts = slots, per_op, parts
        self.wbuf, self.dram, self.fetched = parts.wbuf, parts.dram, parts.log.fetched
        self.in_flight = 0
        self.issued: dict[tuple[int, int], tuple[Hashable, BulkTransfer | int]] = {}
        self.started: set[int] = set()

    def skip(self, it: WorkItem, n: int, across: int = 0) -> None:
        """Pass over ``n`` weight tiles of ``it``, issued by a closed-form run, then over
        ``across`` (0 or 1) of the next item's (``following``)."""
        assert _next_tile(self, _WEIGHT_BYTES)[0] is it, "a weight run crossed an item boundary"
        self.j += n
        if across:
            _next_tile(self, _WEIGHT_BYTES)
            self.j += 1

    def following(self, it: WorkItem, n: int) -> tuple[WorkItem, int, int] | None:
        """The tile issued after the next ``n`` of ``it``'s: (item, tile index, bytes), or
        None past the end or when the next tile is not ``it``'s. The cursor stays put."""
        i, j = self.i, self.j
        here, nxt = _next_tile(self, _WEIGHT_BYTES), None
        if here is not None and here[0] is it:
            self.j += n
            nxt = _next_tile(self, _WEIGHT_BYTES)
        self.i, self.j = i, j
        return nxt

    def pump(self, now: int) -> None:
        """Issue every tile whose slot is free and whose item allows it."""
        while self.in_flight < self.slots:
            nxt = _next_tile(self, _WEIGHT_BYTES)
            if nxt is None:
                return
            it, j, bytes_ = nxt
            if self.per_op and it.id not in self.started:
                return
            self.j += 1
            self.in_flight += 1
            key = _tile_key(it, j)
            if self.wbuf.acquire(key, bytes_, now):
                self.issued[(it.id, j)] = (key, now)
            else:
                self.issued[(it.id, j)] = (key, self.dram.bulk(now, bytes_))
                self.fetched[it.id] = self.fetched.get(it.id, 0) + bytes_

    def take(self, it: WorkItem, j: int) -> tuple[Hashable, BulkTransfer | int]:
        return self.issued.pop((it.id, j))

    def release(self, key: Hashable, now: int) -> None:
        self.wbuf.release(key)
        self.in_flight -= 1
        self.pump(now)


class _StreamLoader:
    """Issues one unit's stream tiles in its tile order through ``slots`` stream slots."""

    def __init__(self, unit_items: list[WorkItem], tiles: dict[int, list[Tile]], slots: int,
                 gate, parts: "_Parts"):
        self.items = _cursor_items(unit_items, tiles, "stream_bytes")
        self.i = self.j = 0  # the next tile to issue: tile j of items[i]
        self.slots, self.gate, self.parts = slots, gate, parts
        self.in_flight = 0
        # the item whose closed gate stopped the last pump (before the first: the first item)
        self.gated: WorkItem | None = self.items[0][0] if self.items else None
        self.arrival: dict[tuple[int, int], int] = {}
        self.held = parts.occupancy.trace("activation")
        self.dram, self.log = parts.dram, parts.log

    def pump(self, now: int, freed: int = 0) -> None:
        """Issue every stream tile whose slot is free and whose item's gate is open.
        ``freed``: the bytes of a tile that released its slot just now (what is held
        changes once for both)."""
        delta = -freed
        self.gated = None
        while self.in_flight < self.slots:
            nxt = _next_tile(self, _STREAM_BYTES)
            if nxt is None:
                break
            if not self.gate(nxt[0]):
                self.gated = nxt[0]
                break
            it, j, bytes_ = nxt
            self.j += 1
            self.in_flight += 1
            start, end, arrival = self.dram.demand(now, bytes_)
            self.log.add("dram", it, "load", "stream", start, end, bytes_, 0, 0, j)
            delta += bytes_
            self.arrival[(it.id, j)] = arrival
        if delta:
            self.held.change(now, delta)

    def release(self, bytes_: int, now: int) -> None:
        self.in_flight -= 1
        self.pump(now, bytes_)


class _StreamPeriods:
    """Skips whole periods of a periodic stretch of stream tiles played in arithmetic
    (identical tiles, or a pattern of a few that repeats).

    Between two tiles of such a stretch, what happens next is decided by a handful of
    cycles: the arrivals of the unit's in-flight stream tiles and the DRAM's
    ``Dram.relative`` state, taken relative to now. Every rule of the model is a max
    of sums of cycles, so when that relative state repeats (p tiles and P cycles
    later) the run is periodic: the next p tiles repeat the last p, P cycles later,
    for as long as the tiles repeat with that period and the other unit cannot act. Whole
    periods are then added at once: the DRAM's future shifted (``Dram.shift_future``),
    the occupancy trace repeated (``Occupancy.repeat``), the item's DRAM log row
    extended, the loader moved on. Exact by construction; the suite checks it
    against tile-by-tile replay. Which earlier moment to repeat from: the tiles' own
    period first (``_Replay.pattern``), then the latest moments of the same state.
    """

    MIN_RUN = 6  # shorter remaining runs are just played
    MAX_PERIOD = 4  # earlier moments of one state kept, i.e. periods tried, in tiles
    MAX_PATTERN = 16  # the longest period of the tiles themselves looked for (``pattern``)

    def __init__(self, replay: "_Replay", unit: str, it: WorkItem, tiles: list[Tile],
                 horizon: float):
        self.r, self.it, self.tiles, self.horizon = replay, it, tiles, horizon
        self.stream = replay.streams[unit]
        self.seen: dict[tuple, tuple] = {}
        self.pattern, run = replay.pattern(tiles, self.MAX_PATTERN)
        # tiles a jump by another period must skip: with a long pattern of short runs of
        # equal tiles, a jump within a run skips little and clears the moments the
        # pattern's period is found from
        self._least_skip = self.MIN_RUN if self.pattern > self.MAX_PERIOD and run < self.MIN_RUN \
            else 1

    def visit(self, k: int, now: int) -> tuple[int, int]:
        """Called before tile ``k`` is played at ``now``; returns where play goes on. The
        moment the tiles' own period ``pattern`` before is tried first: where the state
        repeats at every tile (a relaxed pipeline) but the tiles repeat only every few
        (a head cut into 5 equal pieces and a shorter one), the shortest period would only
        skip within each run of equal tiles (and clear the moments kept, ``_jump``)."""
        if len(self.tiles) - k < self.MIN_RUN or not self._aligned(k):
            return k, now
        key = self._key(k, now)
        earlier = self.seen.setdefault(key, [])
        for snap in self._candidates(earlier, k):
            p = k - snap[0]
            if self._periods(snap[0], k) * p >= (1 if p == self.pattern else self._least_skip):
                return self._jump(k, now, *snap)
        earlier.append((k, now, *self._marks()))
        del earlier[:-max(self.MAX_PERIOD, self.pattern)]
        return k, now

    def _candidates(self, earlier: list[tuple], k: int) -> list[tuple]:
        """The earlier moments of this state to try: ``pattern`` tiles back, then the
        ``MAX_PERIOD`` latest, the shortest period first."""
        recent = earlier[:-self.MAX_PERIOD - 1:-1]
        if self.pattern <= self.MAX_PERIOD:
            return recent
        back = [snap for snap in earlier if snap[0] == k - self.pattern]
        return back + recent

    def _periods(self, k0: int, k: int) -> int:
        """Whole periods of ``k - k0`` tiles that may be skipped at ``k``: the tiles from ``k0``
        on repeat with that period, all stream tiles with compute cycles, up to the in-flight
        ones after the last period skipped."""
        p = k - k0
        end = min(self.r.extent(self.tiles, k0, 0), self.r.extent(self.tiles, k, p))
        return (end - self.stream.in_flight - k) // p

    def _aligned(self, k: int) -> bool:
        """The loader's next tile is this item's, just past the in-flight ones."""
        s = self.stream
        return s.i < len(s.items) and s.items[s.i][0] is self.it and s.j == k + s.in_flight

    def _key(self, k: int, now: int) -> tuple:
        arrival, iid = self.stream.arrival, self.it.id
        ahead = [arrival[(iid, jj)] - now for jj in range(k, self.stream.j)]
        return tuple([a if a > 0 else 0 for a in ahead]), self.r.parts.dram.relative(now)

    def _row(self) -> list | None:
        return self.r.parts.log.rows.get((self.it.id, "dram", "load", "stream", -1))

    def _marks(self) -> tuple:
        row, parts = self._row(), self.r.parts
        return (parts.occupancy.marks(), parts.dram.bytes_moved,
                (row[7], row[13]) if row else None)

    def _jump(self, k, now, k0, t0, marks, moved0, row0) -> tuple[int, int]:
        p, P, row = k - k0, now - t0, self._row()
        m = self._periods(k0, k)
        if self.horizon != float("inf"):
            m = min(m, int((self.horizon - now) // P))
        if m < 1 or row is None or row0 is None:
            return k, now
        self.seen.clear()
        by, parts = m * P, self.r.parts
        parts.occupancy.repeat(marks, P, m)
        parts.dram.shift_future(now, by, m * (parts.dram.bytes_moved - moved0))
        row[6] += by
        row[7] += m * (row[7] - row0[0])
        row[13] += m * (row[13] - row0[1])
        self._move_loader(k, now, m * p, by)
        return k + m * p, now + by

    def _move_loader(self, k: int, now: int, tiles: int, by: int) -> None:
        s, iid = self.stream, self.it.id
        for jj in range(s.j - 1, k - 1, -1):
            at = s.arrival.pop((iid, jj))
            s.arrival[(iid, jj + tiles)] = at + by if at > now else at
        s.j += tiles


class _Events(dict):
    """Item id -> its done event, created on first use (most items are never waited for:
    a 7B run has ~100k items, and creating their events cost a third of the set-up)."""

    def __init__(self, env: simpy.Environment):
        super().__init__()
        self.env = env

    def __missing__(self, item_id: int) -> simpy.Event:
        ev = self[item_id] = self.env.event()
        return ev


@dataclass
class _Parts:
    """The shared hardware state of one replay."""

    hw: Hardware
    dram: Dram
    wbuf: WeightBuffer
    params: ParamCache
    occupancy: Occupancy
    log: _Log


class _Replay:
    """One replay: the unit processes and the state they share."""

    def __init__(self, items: Sequence[WorkItem], hw: Hardware, fast: bool, per_tile: bool,
                 costed: CostPlan | None):
        self.hw = hw
        self.plan = costed if costed is not None else cost.plan(items, hw)
        self.env = simpy.Environment()
        occupancy = Occupancy()
        wbuf_bytes = cost.weight_buffer_bytes(hw)
        self.parts = _Parts(hw, Dram(hw), WeightBuffer(wbuf_bytes - cost.param_capacity(hw), occupancy),
                            ParamCache(cost.param_capacity(hw), occupancy), occupancy,
                            _Log(per_tile))
        self.by_unit = {u: [it for it in items if it.unit == u] for u in ("array", "vector")}
        self.items = items
        slots = cost.slots(hw)
        per_op = hw.weight_prefetch == "per_op"
        self.weights = _WeightLoader(self.by_unit["array"], self.plan.tiles, slots, per_op, self.parts)
        self.started = self.weights.started  # items started (the loader's gate under per_op)
        self.issuing: set[int] = set()  # items whose issue overhead has ended
        self.streams = {u: _StreamLoader(self.by_unit[u], self.plan.tiles, slots,
                                         self._stream_gate(per_op), self.parts)
                        for u in ("array", "vector")}
        self.done_ev = _Events(self.env)  # created when first waited for (``_finish``)
        self.done_at: dict[int, int] = {}
        self.records: list[tuple] = []
        self.events = 0
        self.fast = fast and not per_tile
        self.blocked: dict[str, int | None] = {"array": None, "vector": None}
        self.run_ends: dict[int, list[int]] = {}
        self.run_starts: dict[int, list[bool]] = {}
        self.extents: dict[tuple[int, int], list[int]] = {}
        self.patterns: dict[int, tuple[int, int]] = {}

    def sleep(self, cycles: int):
        """A SimPy timeout of ``cycles``, counted."""
        self.events += 1
        return self.env.timeout(cycles)

    def _stream_gate(self, per_op: bool):
        """May ``it``'s stream tiles be issued now? Once yes, always (its deps stay started,
        its issue overhead stays ended)."""
        prefetchable: dict[int, bool] = {}
        open_: set[int] = set()

        def gate(it: WorkItem) -> bool:
            if it.id in open_:
                return True
            if it.id in self.issuing or not per_op and self._prefetchable(it, prefetchable) \
                    and self.started.issuperset(it.deps):
                open_.add(it.id)
                return True
            return False
        return gate

    def _prefetchable(self, it: WorkItem, known: dict[int, bool]) -> bool:
        hit = known.get(it.id)
        if hit is None:
            hit = known[it.id] = cost.kv_prefetchable(it, self.plan.traffic[it.id], self.hw)
        return hit

    def _pump_started(self, it: WorkItem) -> None:
        """``it`` has started: prefetches gated on starts may go (weight tiles too under
        ``per_op``). Every other change of a loader's gates or slots (a release, an issue
        overhead ending) pumps that loader where it happens, so a stream loader with a free
        slot is waiting for its next item's gate, which a start opens only if it is one of
        that item's deps (``_stream_gate``): the item the loader's last pump stopped at."""
        if self.weights.per_op:
            self.weights.pump(self.env.now)
        for s in self.streams.values():
            if s.gated is not None and it.id in s.gated.deps:
                s.pump(self.env.now)

    def run(self) -> None:
        self.weights.pump(0)
        for u in ("array", "vector"):
            self.env.process(self._unit(u))
        self.env.run()
        assert len(self.done_at) == len(self.items), "replay ended with items not done"

    def close(self) -> None:
        """Break the references back to this replay (the stream gates' closures) and to the
        SimPy environment (itself a reference cycle), so that a finished replay is freed by
        reference counting, without waiting for the cyclic garbage collector (which
        ``speedsim.api`` pauses while strategies run)."""
        for s in self.streams.values():
            s.gate = None
        self.done_ev = self.env = None

    def _deps_done(self, it: WorkItem) -> int | None:
        """The cycle ``it`` became ready if all its deps are done by now, else None."""
        ready, now, done_at = 0, self.env.now, self.done_at
        for d in it.deps:
            at = done_at.get(d)
            if at is None or at > now:
                return None
            ready = at if at > ready else ready
        return ready

    def _wait_deps(self, it: WorkItem):
        ready = 0
        for d in it.deps:
            if d not in self.done_at or self.done_at[d] > self.env.now:
                self.blocked[it.unit] = d
                yield self.done_ev[d]
                self.blocked[it.unit] = None
            ready = max(ready, self.done_at[d])
        return ready

    def _unit(self, unit: str):
        env, log, stream, all_tiles = self.env, self.parts.log, self.streams[unit], self.plan.tiles
        overhead, fast = self.hw.op_overhead_cycles(unit), self.fast
        for it in self.by_unit[unit]:
            # 1. ready (a generator only to wait for deps not done yet), start, issue overhead
            ready = self._deps_done(it)
            if ready is None:
                ready = yield from self._wait_deps(it)
            self.started.add(it.id)
            self._pump_started(it)  # prefetches gated on this start go first, its own streams after
            if overhead:
                yield self.sleep(overhead)
            self.issuing.add(it.id)
            stream.pump(env.now)
            # 2. parameters, then the tiles
            param_at = self._params(it)
            tiles = all_tiles[it.id]
            first, j = None, 0
            while j < len(tiles):
                t = tiles[j]
                if fast and (first is not None or param_at <= env.now):
                    played = self._fast_forward(unit, it, tiles, j)
                    if played:
                        first = played[2] if first is None else first
                        yield self.sleep(played[1] - env.now)
                        j = played[0]
                        continue
                key, at = yield from self._tile_inputs(unit, it, j, t, param_at if j == 0 else 0)
                first = env.now if first is None else first
                if t.cycles:
                    yield self.sleep(t.cycles)
                if log.per_tile:
                    log.add(unit, it, "compute", "", at, env.now, 0,
                            t.macs, t.vector_ops, j)
                if key is not None:
                    self.weights.release(key, env.now)
                if t.stream_bytes:
                    stream.release(t.stream_bytes, env.now)
                j += 1
            compute_end = env.now
            if first is None:
                first = compute_end
            if not log.per_tile:
                cycles, macs, vops = self.plan.sums[it.id][:3]
                log.add(unit, it, "compute", "", first, compute_end, 0, macs, vops, busy=cycles)
            # 3. outputs
            done = self._store(it)
            self._finish(it, done)
            self.records.append((it, ready, first, compute_end, done, len(tiles)))
        self.blocked[unit] = -1  # finished: waits for nothing, issues nothing

    def _horizon(self, other: str = "vector") -> float:
        """The first cycle unit ``other`` may act again (it is blocked on a dep), or -1 if
        it may act at any time."""
        d = self.blocked[other]
        if d is None:
            return -1
        if d == -1 or d not in self.done_at:
            return float("inf")
        return self.done_at[d]

    def _fast_forward(self, unit: str, it: WorkItem, tiles: list[Tile],
                      j: int) -> tuple[int, int, int] | None:
        """While the other unit can issue nothing, play tiles without SimPy events:
        long weight runs in closed form, other tiles one by one in arithmetic.
        Returns (next tile, compute end of the last tile played, compute start of the
        first) or None."""
        if self._weight_run_starts(unit, tiles, j):
            issued = self.weights.issued.get((it.id, j))
            arrival = issued[1].arrival if issued and isinstance(issued[1], BulkTransfer) else 0
            played = self._weight_run(it, tiles, j)
            if played:
                return j + played[0], played[1], max(self.env.now, arrival)
        return self._play_tiles(unit, it, tiles, j)

    def _weight_run_starts(self, unit: str, tiles: list[Tile], j: int) -> bool:
        """Tile ``j`` begins a weight run long enough for ``_weight_run``."""
        return unit == "array" and self._run_starts(tiles)[j]

    def _run_starts(self, tiles: list[Tile]) -> list[bool]:
        """Per tile, ``_weight_run_starts`` (cached by tile list)."""
        starts = self.run_starts.get(id(tiles))
        if starts is None:
            starts = self.run_starts[id(tiles)] = [
                bool(t.weight_bytes and not t.stream_bytes
                     and self._run_length(tiles, j)[1] >= 2 * FAST_MIN_TILES)
                for j, t in enumerate(tiles)]
        return starts

    def _play_tiles(self, unit: str, it: WorkItem, tiles: list[Tile],
                    j: int) -> tuple[int, int, int] | None:
        """Tiles ``j``… played in arithmetic up to the other unit's horizon: exactly what
        the SimPy steps would do, since nothing else acts meanwhile (a transfer's arrival,
        read when its tile is next, is final). Inside a long periodic stretch of stream
        tiles, whole periods are skipped (``_StreamPeriods``); a long weight run is left
        to ``_weight_run``."""
        horizon = self._horizon("vector" if unit == "array" else "array")
        now = self.env.now
        if horizon < now:
            return None
        stream, k, first = self.streams[unit], j, -1
        periods = _StreamPeriods(self, unit, it, tiles, horizon) \
            if self.plan.sums[it.id].largest_stream and len(tiles) - j >= _StreamPeriods.MIN_RUN \
            else None  # (a shorter stretch has no periods to skip)
        issued, arrival, iid = self.weights.issued, stream.arrival, it.id
        runs = self._run_starts(tiles) if unit == "array" else None  # (``_weight_run_starts``)
        while k < len(tiles):
            if first >= 0 and periods:
                k, now = periods.visit(k, now)
            t = tiles[k]
            key = tr = None
            if t.weight_bytes:
                got = issued.get((iid, k))
                if got is None or k > j and runs and runs[k]:
                    break
                key, tr = got
            at = arrival[(iid, k)] if t.stream_bytes else now
            if isinstance(tr, BulkTransfer) and tr.arrival > at:
                at = tr.arrival
            start = now if now > at else at
            end = start + t.cycles
            if end > horizon:
                break
            if first < 0:
                first = start
            now = end
            self._tile_done(unit, it, k, t, key, tr, now)
            k += 1
        return (k, now, first) if k > j else None

    def _tile_done(self, unit: str, it: WorkItem, k: int, t: Tile, key, tr, now: int) -> None:
        """Book what the end of tile ``k`` of a ``_play_tiles`` run does: its weight load's
        log row, its slots freed."""
        if t.weight_bytes:
            del self.weights.issued[(it.id, k)]
            if isinstance(tr, BulkTransfer):
                self.parts.log.add("dram", it, "load", "weight", tr.start, tr.finish, tr.bytes_,
                                   busy=tr.cycles)
            self.weights.release(key, now)
        if t.stream_bytes:
            del self.streams[unit].arrival[(it.id, k)]
            self.streams[unit].release(t.stream_bytes, now)

    def _weight_run(self, it: WorkItem, tiles: list[Tile], j: int) -> tuple[int, int] | None:
        """Play tiles of a run of identical weight-only tiles in closed form
        (``speedsim.hw.pipeline``) when nothing else can touch the DRAM meanwhile;
        returns (tiles played, compute end of the last one) or None."""
        slots, t = self.weights.slots, tiles[j]
        equal, loaded = self._run_length(tiles, j)
        # tiles computed here, each issuing the tile ``slots`` after it: all of them equal,
        # the ones issued loading equal bytes (the last may compute for other cycles)
        n = min(equal, loaded - slots)
        nxt = self._run_continues(it, tiles, j, n, loaded, equal)
        n += nxt is not None
        horizon, dram, env = self._horizon("vector"), self.parts.dram, self.env
        # a demand transfer still moving is harmless once it ends before the run's first issue
        # (at the end of its first compute, ``t.cycles`` from now at the earliest): the tiles
        # already issued have been pushed back past it, the ones to come start after it
        if n < FAST_MIN_TILES or t.stream_bytes or horizon < env.now or \
                dram.demand_free > env.now + t.cycles:
            return None
        issued = [self.weights.issued.get((it.id, jj)) for jj in range(j, j + slots)]
        if any(x is None or not isinstance(x[1], BulkTransfer) for x in issued):
            return None
        dram.retire(env.now)
        unfinished = [tr for _, tr in issued if tr.finish > env.now]
        if unfinished != dram.pending or \
                not self.parts.wbuf.may_stream(_tile_key(it, 0)[:-1], j + slots, n, t.weight_bytes):
            return None
        retired = list(dram.arrivals)[:len(dram.arrivals) - (slots - len(unfinished))]
        state = RunState(env.now, tuple((tr.start, tr.finish, tr.arrival) for _, tr in issued),
                         tuple(retired), dram.retired_finish)
        levels = self.parts.wbuf.fill(t.weight_bytes)  # the buffer's first misses
        res = weight_run(state, n, t.cycles, dram.cycles(t.weight_bytes), dram.latency,
                         dram.engines, horizon, len(levels))
        if res.tiles < FAST_MIN_TILES:
            return None
        across = nxt if nxt is not None and j + res.tiles + slots > len(tiles) else None
        self._apply_run(it, j, res, t.weight_bytes, issued[0][1].start, levels, across)
        return res.tiles, res.state.now

    def _run_continues(self, it: WorkItem, tiles: list[Tile], j: int, n: int, loaded: int,
                       equal: int) -> tuple[WorkItem, int, int] | None:
        """The next weight item's first tile when the run may issue it: the run's tiles load
        up to the item's end and one more equal tile (the one before a shorter remainder)
        would issue it, it loads the same bytes, misses the buffer, and ``ahead`` lets it go
        before its item starts. Tile by tile, the loader issues it when that tile's slot
        frees, as the recurrence issues a tile of the run."""
        if j + loaded < len(tiles) or equal <= n or self.weights.per_op:
            return None
        nxt = self.weights.following(it, n)
        if nxt is None or nxt[0] is it or nxt[2] != tiles[j].weight_bytes or \
                _tile_key(nxt[0], nxt[1]) in self.parts.wbuf.resident:
            return None
        return nxt

    def _apply_run(self, it: WorkItem, j: int, res, bytes_: int, first_start: int,
                   levels: list[int], across: tuple[WorkItem, int, int] | None) -> None:
        """Move loader, buffer, DRAM and log on by the ``res.tiles`` tiles played; ``across``:
        the next item's first tile, when the run issued it last (``_run_continues``)."""
        n, slots, end = res.tiles, self.weights.slots, len(self.plan.tiles[it.id])
        loader, dram, log = self.weights, self.parts.dram, self.parts.log
        for jj in range(j, j + slots):
            del loader.issued[(it.id, jj)]
        dram.pending = []
        for jj, (start, finish, arrival) in zip(range(j + n, j + n + slots), res.state.pending):
            tr = BulkTransfer(issue=start, cycles=finish - start, bytes_=bytes_, start=start,
                              finish=finish, arrival=arrival, origin=start)
            dram.pending.append(tr)
            owner, index = (it, jj) if jj < end else across[:2]
            loader.issued[(owner.id, index)] = (_tile_key(owner, index), tr)
        a = across is not None
        loader.skip(it, n - a, a)
        dram.arrivals.clear()
        dram.arrivals.extend(res.state.older_arrivals)
        dram.retired_finish = res.state.consumed_finish
        dram.bytes_moved += n * bytes_
        dram.last_issue = max(dram.last_issue, res.state.pending[-1][0])
        self.parts.wbuf.stream(_tile_key(it, 0)[:-1], j + slots + n, slots, bytes_, res.state.now,
                               res.issues, levels, _tile_key(*across[:2]) if a else None)
        # the item's own transfers end with its last one issued (the next item's logs itself)
        log.add("dram", it, "load", "weight", first_start, res.state.pending[-1 - a][1],
                n * bytes_, busy=n * dram.cycles(bytes_))
        log.fetched[it.id] = log.fetched.get(it.id, 0) + (n - a) * bytes_
        if a:
            log.fetched[across[0].id] = log.fetched.get(across[0].id, 0) + bytes_

    def extent(self, tiles: list[Tile], j: int, p: int) -> int:
        """p = 0: the first index >= j of a tile that is not a stream-only tile with compute
        cycles; p > 0: the first index >= j whose tile differs from the one p before it
        (cached per tile list and p)."""
        ends = self.extents.get((id(tiles), p))
        if ends is None:
            n = len(tiles)
            ends = self.extents[(id(tiles), p)] = [n] * (n + 1)
            for i in range(n - 1, -1, -1):
                t = tiles[i]
                stop = (t.weight_bytes or not (t.stream_bytes and t.cycles)) if p == 0 \
                    else (i < p or t != tiles[i - p])
                ends[i] = i if stop else ends[i + 1]
        return ends[min(j, len(tiles))]

    def pattern(self, tiles: list[Tile], longest: int) -> tuple[int, int]:
        """(p, r): the period p <= ``longest`` of ``tiles``' first stretch, where the first
        tile comes back after a different one, if the first p tiles repeat there, else 1;
        r, the run of tiles equal to the first (cached per tile list). A head cut into 5
        equal pieces and a shorter one: (6, 5)."""
        hit = self.patterns.get(id(tiles))
        if hit is None:
            n, first = len(tiles), tiles[0]
            run = next((j for j in range(1, min(n, longest)) if tiles[j] != first), None)
            back = None if run is None else next(
                (j for j in range(run + 1, min(n, longest + 1)) if tiles[j] == first), None)
            hit = (back if back and tiles[back:2 * back] == tiles[:back] else 1, run or n)
            self.patterns[id(tiles)] = hit
        return hit

    def _run_length(self, tiles: list[Tile], j: int) -> tuple[int, int]:
        """(equal, loaded): the tiles from ``j`` on equal to tile ``j``, and those that load
        the same bytes as it: the equal ones and, where the run ends in a tile that differs
        only in its cycles (the remainder of a split, one cycle shorter), that one too.
        Cached per tile list."""
        ends = self.run_ends.get(id(tiles))
        if ends is None:
            n = len(tiles)
            ends = [(n, n)] * n
            for k in range(n - 2, -1, -1):
                t, nxt = tiles[k], tiles[k + 1]
                ends[k] = ends[k + 1] if t == nxt else \
                    (k + 1, k + 2 if nxt._replace(cycles=t.cycles) == t else k + 1)
            self.run_ends[id(tiles)] = ends
        equal, loaded = ends[j]
        return equal - j, loaded - j

    def _params(self, it: WorkItem) -> int:
        """Fetch a vector item's parameters on a miss; the cycle they are on chip."""
        now = self.env.now
        if not cost.param_resident(it, self.hw):
            return now
        if self.parts.params.lookup(it.weight_key, it.weight_bytes, now):
            return now
        start, end, arrival = self.parts.dram.demand(now, it.weight_bytes)
        self.parts.log.add("dram", it, "load", "param", start, end, it.weight_bytes)
        self.parts.log.fetched[it.id] = it.weight_bytes
        return arrival

    def _tile_inputs(self, unit: str, it: WorkItem, j: int, t: Tile, param_at: int):
        """Wait until tile ``j``'s weights, stream bytes and parameters are on chip."""
        env = self.env
        key = None
        if param_at > env.now:
            yield self.sleep(param_at - env.now)
        if t.stream_bytes:
            # issued by now: every earlier stream tile of this unit has released its slot
            at = self.streams[unit].arrival.pop((it.id, j))
            if at > env.now:
                yield self.sleep(at - env.now)
        if t.weight_bytes:
            key, tr = self.weights.take(it, j)
            if isinstance(tr, BulkTransfer):
                while tr.arrival > env.now:  # demand booked meanwhile may push it back
                    yield self.sleep(tr.arrival - env.now)
                self.parts.log.add("dram", it, "load", "weight", tr.start, tr.finish, tr.bytes_,
                                   tile=j, busy=tr.cycles)
        return key, env.now

    def _store(self, it: WorkItem) -> int:
        tr = self.plan.traffic[it.id]
        out = tr.kv_write_bytes + tr.act_write_bytes
        now = self.env.now
        if not out:
            return now
        start, end, arrival = self.parts.dram.demand(now, out)
        self.parts.log.add("dram", it, "store", "output", start, end, out)
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


def _check_items(items: Sequence[WorkItem]) -> None:
    """Ids unique, deps before their items, and one size per weight key (a key names one
    tensor: its tiles are what residency looks up)."""
    seen: set[int] = set()
    sizes: dict[Hashable, int] = {}
    for it in items:
        if it.id in seen:
            raise ValueError(f"work item id {it.id} appears twice")
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

    ``closed_form_runs=False`` plays every tile of a weight run one by one instead of
    ``speedsim.hw.pipeline.weight_run``'s closed form: the result is identical (the test
    suite checks it), only slower. ``log_tiles``: one log row per tile (column ``tile``)
    instead of one per item and kind; it plays every tile. ``costed``: ``cost.plan(items, hw)``
    when the caller has it already.
    """
    if not isinstance(hw, Hardware):
        raise TypeError(f"hw must be a Hardware config, got {type(hw).__name__}")
    _check_items(items)
    r = _Replay(items, hw, closed_form_runs, log_tiles, costed)
    r.run()
    r.close()
    total = max(r.done_at.values(), default=0)
    return SimResult(log=r.parts.log.frame(),
                     items=_items_frame(r.records, r.plan.traffic, r.parts.log.fetched, hw),
                     occupancy=_occupancy_frame(r.parts.occupancy, hw), total_cycles=int(total),
                     events=r.events, roofline=cost.roofline(items, hw, r.plan), hw=hw,
                     costed=r.plan)


def _items_frame(records, traffic: dict[int, Traffic], fetched: dict[int, int],
                 hw: Hardware) -> pd.DataFrame:
    """One row per work item (``ITEM_COLUMNS``), in id order; ``records``: (item, ready,
    start, compute end, done, tiles) per item, in any order. Built column by column."""
    if not records:
        return pd.DataFrame.from_records([], columns=ITEM_COLUMNS)
    records = sorted(records, key=lambda r: r[0].id)
    items = [r[0] for r in records]
    ready, start, compute_end, done, n_tiles = _int_matrix([r[1:] for r in records], 5).T
    sizes = dict(zip(_ITEM_INTS, _int_matrix(list(map(attrgetter(*_ITEM_INTS), items)),
                                            len(_ITEM_INTS)).T))
    cols = {"item": sizes["id"]}
    cols.update({c: _objects(map(attrgetter(c), items), len(items))
                 for c in ("op", "unit", "phase", "label")})
    cols.update(ready_cycle=ready, start_cycle=start, compute_end_cycle=compute_end,
                end_cycle=done, tokens=_objects(map(attrgetter("tokens"), items), len(items)),
                step=sizes["step"],
                wasted_fraction=np.array([it.wasted_fraction for it in items], dtype=np.float64),
                macs=sizes["macs"], vector_ops=sizes["vector_ops"], tiles=n_tiles)
    cols.update(_item_bytes(items, sizes, traffic, fetched, hw))
    return pd.DataFrame(cols, columns=ITEM_COLUMNS)


def _objects(values, n: int) -> np.ndarray:
    """An object column of ``n`` values (tuples stay elements, not rows)."""
    return np.fromiter(values, dtype=object, count=n)


_ITEM_INTS = ("id", "step", "macs", "vector_ops", "weight_bytes", "act_in_bytes", "act_out_bytes")


def _int_matrix(rows: list[tuple], width: int) -> np.ndarray:
    """Equal-length rows of integers as an int64 matrix (``np.array`` of tuples is slow)."""
    return np.fromiter(chain.from_iterable(rows), np.int64, len(rows) * width).reshape(-1, width)


def _item_bytes(items: list[WorkItem], sizes: dict[str, np.ndarray], traffic: dict[int, Traffic],
                fetched: dict[int, int], hw: Hardware) -> dict[str, np.ndarray]:
    """The items' DRAM bytes by category and SRAM bytes per buffer (``SimResult``).

    Array items and vector items with resident parameters take their weights through
    the weight buffer (fetched bytes written, the item's weight bytes read); other vector
    items stream their parameters. Bytes passing through the activation buffer (KV from
    DRAM, streamed parameters, KV writes on their way out) are written once and read once.
    ``sizes``: the items' ``_ITEM_INTS`` fields by name.
    """
    tr = dict(zip(Traffic._fields, _int_matrix([traffic[it.id] for it in items], len(Traffic._fields)).T))
    on_array = np.array([it.unit == "array" for it in items])
    via_buffer = on_array | np.array([cost.param_resident(it, hw) for it in items], dtype=bool)
    got = np.array([fetched.get(it.id, 0) for it in items], dtype=np.int64)
    act_out = sizes["act_out_bytes"]
    spill = tr["act_read_bytes"] + tr["act_write_bytes"]
    passing = tr["kv_read_bytes"] + tr["kv_write_bytes"] + np.where(via_buffer, 0, tr["weight_bytes"])
    return {"weight_bytes_fetched": np.where(via_buffer, got, tr["weight_bytes"]),
            "kv_read_bytes": tr["kv_read_bytes"], "kv_write_bytes": tr["kv_write_bytes"],
            "act_bytes": spill,
            "weight_sram_bytes": np.where(via_buffer, got + sizes["weight_bytes"], 0),
            "act_sram_bytes": sizes["act_in_bytes"] + act_out + spill + 2 * passing,
            "acc_sram_bytes": np.where(on_array, 2 * act_out, 0),
            "kv_sram_bytes": tr["kv_sram_bytes"]}


def _occupancy_frame(occ: Occupancy, hw: Hardware) -> pd.DataFrame:
    """Bytes held per buffer at each change point; asserts capacity is never exceeded."""
    names, cycles, held = [], [], []
    for name in sorted(occ.points):
        pts = np.frombuffer(occ.points[name], dtype=np.int64).reshape(-1, 2)
        cap = getattr(hw.buffers, name).size_kib * 1024
        assert pts[:, 1].max(initial=0) <= cap, \
            f"{name} buffer occupancy {pts[:, 1].max()} bytes exceeds its {cap:.0f} bytes"
        names.append(np.full(len(pts), name, dtype=object))
        cycles.append(pts[:, 0])
        held.append(pts[:, 1])
    if not names:
        return pd.DataFrame({"buffer": pd.Series(dtype=str), "cycle": pd.Series(dtype=np.int64),
                             "bytes": pd.Series(dtype=np.int64)})
    return pd.DataFrame({"buffer": np.concatenate(names), "cycle": np.concatenate(cycles),
                         "bytes": np.concatenate(held)})

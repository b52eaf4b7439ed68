"""Replay engine: a work-item DAG → SimPy accelerator → event log.

What is modelled
----------------
Two compute units, the **array** (``hw.array.count`` ganged systolic arrays)
and the **vector** unit, each a SimPy process that issues its items in list
(topological) order, one tile at a time. Items on different units overlap.
Behind them sit the DMA engines and the DRAM channels of ``speedsim.hw.units``.

For each item:

1. it is *ready* when all its deps are done (``ready_cycle``);
2. its tiles (``speedsim.hw.cost.item_tiles``) need their bytes on chip:
   - **weights** (array items) come through the weight buffer. A weight loader
     walks the array items' weight tiles in list order, ignoring data
     dependencies (weights do not depend on data), as far ahead as the buffer's
     slots allow: tile g is issued when tile g − slots finished computing
     (slots = 2 with double buffering, else 1), so fetching tile i+1 overlaps
     computing tile i, and the first tiles of the next item are prefetched
     while the current one computes. A resident tile (LRU, keyed by
     ``(weight_key, tile index)``) costs no DRAM traffic;
   - **streamed bytes** (KV reads, spilled activations, vector-unit
     parameters) depend on data: the first ones are issued when the item is
     ready, later ones as earlier stream slots of the same unit free up;
3. tile j computes once its bytes have arrived and the unit finished tile j−1;
4. outputs: KV writes and spilled activations go to DRAM after the last tile;
   the item is *done* when they have arrived (``end_cycle``). Activations that
   fit stay in the activation buffer (see ``speedsim.hw.cost``).

Time is integer cycles. DRAM and DMA are FIFO servers whose queues are kept as
"free at" cycles, so a transfer costs arithmetic, not events.

Tile vs chunked mode
--------------------
Both modes compute the same per-tile recurrence with the same cost functions.
``tile`` mode sleeps until the end of every tile before issuing the transfers
that tile's end allows, so requests reach DRAM in time order across units;
``chunked`` mode handles a whole item per wake-up (no per-tile events) and
may queue an item's later transfers before another unit's earlier ones. With
one unit touching DRAM at a time the two are identical to the cycle; with both
units contending, requests may be granted in a different order
(``tests/test_sim_engine.py`` bounds the difference).

Runs of identical tiles
-----------------------
A 7B-shape decode moves millions of identical weight tiles (and long KV reads
cut into equal tiles). In chunked mode, once such a run's timing is periodic
(``_RunSkipper``: three equal relative snapshots, a period apart), the rest of
the run is played arithmetically: the same calendar bookings, occupancy
changes and log rows the tile loop would produce, with nothing approximated.
``replay(..., skip_runs=False)`` plays every tile; the results are identical
(``tests/test_sim_engine.py``).

Invariants checked in every run: buffer occupancy never exceeds capacity
(weight buffer at each allocation, all buffers over the whole occupancy
trace), every item done after its deps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Hashable, Literal, NamedTuple, Sequence

import numpy as np
import pandas as pd
import simpy
from simpy.events import NORMAL

from speedsim.config.hw import Hardware
from speedsim.hw import cost
from speedsim.hw.cost import Roofline, Tile
from speedsim.hw.units import Dma, Dram, WeightBuffer
from speedsim.contracts.workitem import WorkItem

TileMode = Literal["chunked", "tile"]

LOG_COLUMNS = ("unit", "item", "op", "kind", "category", "start_cycle", "end_cycle", "bytes",
               "macs", "vector_ops", "wasted_fraction", "step", "tile")
ITEM_COLUMNS = ("item", "op", "unit", "phase", "label", "ready_cycle", "start_cycle",
                "compute_end_cycle", "end_cycle", "tokens", "step", "wasted_fraction", "macs",
                "vector_ops", "tiles", "weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes",
                "act_bytes", "weight_sram_bytes", "act_sram_bytes", "acc_sram_bytes",
                "kv_sram_bytes")
OCCUPANCY_COLUMNS = ("buffer", "cycle", "bytes")


@dataclass(frozen=True)
class SimResult:
    """Everything a replay produced, with the hardware that produced it.

    ``log``: one row per unit interval (``LOG_COLUMNS``): compute intervals on
    ``array``/``vector`` (kind ``compute``), transfers on ``dram`` (kind
    ``load``/``store``, category ``weight``/``stream``/``output``). Tile mode
    logs every tile; chunked mode one row per item and kind.
    ``items``: one row per work item (``ITEM_COLUMNS``); DRAM bytes by
    category; SRAM bytes written into plus read out of each buffer.
    ``occupancy``: bytes held per buffer after each change (``OCCUPANCY_COLUMNS``).
    """

    log: pd.DataFrame
    items: pd.DataFrame
    occupancy: pd.DataFrame
    total_cycles: int
    events: int
    roofline: Roofline
    hw: Hardware
    tile_mode: str


class _Done(simpy.Event):
    """An item's completion; fired directly at its (already known) done cycle."""

    def fire_at(self, cycle: int) -> None:
        delay = cycle - self.env.now
        assert delay >= 0, f"done cycle {cycle} before now {self.env.now}"
        self._ok, self._value = True, None  # what Event.succeed sets, scheduled with a delay
        self.env.schedule(self, NORMAL, delay)


def _tile_key(it: WorkItem, j: int) -> Hashable:
    """Residency key of tile ``j`` of array item ``it``; the tile index always comes last."""
    return (it.weight_key, j) if it.weight_key is not None else ("anonymous", it.id, j)


class _WeightOrder:
    """The array items' weight tiles in list order: (item, tile index, key, bytes)."""

    def __init__(self, array_items: list[WorkItem], plans: dict[int, list[Tile]]):
        self.items = [(it, plans[it.id]) for it in array_items]
        self.i = self.j = 0  # next: tile j of self.items[i]

    def next(self) -> tuple[WorkItem, int, Hashable, int] | None:
        while self.i < len(self.items):
            it, tiles = self.items[self.i]
            while self.j < len(tiles):
                j = self.j
                self.j += 1
                if tiles[j].weight_bytes:
                    return it, j, _tile_key(it, j), tiles[j].weight_bytes
            self.i, self.j = self.i + 1, 0
        return None

    def skip(self, n: int) -> None:
        """Pass over the next ``n`` tiles of the current item (weight tiles, all of them)."""
        self.j += n


class _WeightLoader:
    """Issues the array's weight tiles in list order, ``slots`` ahead of the compute."""

    def __init__(self, hw: Hardware, order: _WeightOrder, buffer: WeightBuffer, dma: Dma,
                 sink: "_Sink"):
        self.order = order
        self.buffer, self.dma, self.sink = buffer, dma, sink
        self.issued: deque = deque()
        self.last_issue = 0
        for _ in range(cost.slots(hw)):
            self._issue_next(0)

    def _issue_next(self, cycle: int) -> None:
        nxt = self.order.next()
        if nxt is None:
            return
        item, j, key, bytes_ = nxt
        issue = self.last_issue = max(cycle, self.last_issue)
        if self.buffer.acquire(key, bytes_, issue):
            ready = issue
        else:
            start, ready = self.dma.transfer(issue, bytes_)
            sink = self.sink
            sink.transfer(item, "load", "weight", start, ready, bytes_, j)
            sink.fetched[item.id] = sink.fetched.get(item.id, 0) + bytes_
        self.issued.append((item.id, j, key, ready))

    def take(self, item_id: int, j: int) -> tuple[Hashable, int]:
        got_id, got_j, key, ready = self.issued.popleft()
        assert got_id == item_id and got_j == j, "weight loader out of step with the array"
        return key, ready

    def release(self, key: Hashable, cycle: int) -> None:
        self.buffer.release(key)
        self._issue_next(cycle)


class _Sink:
    """Collects log rows as tuples; chunked mode merges an item's rows per kind."""

    def __init__(self, per_tile: bool):
        self.per_tile = per_tile
        self.rows: list[tuple] = []
        self.merged: dict[tuple, list] = {}
        self.fetched: dict[int, int] = {}
        self.occupancy: list[tuple[str, int, int]] = []  # (buffer, cycle, delta_bytes)
        # the same in bulk: (buffer, cycle, period, times, delta) is delta at cycle + k * period
        # for k = 1..times
        self.occupancy_blocks: list[tuple[str, int, int, int, int]] = []

    def _add(self, unit: str, item: WorkItem, kind: str, category: str, start: int, end: int,
             bytes_: int, macs: int, vops: int, tile: int) -> None:
        if self.per_tile:
            self.rows.append((unit, item.id, item.op, kind, category, start, end, bytes_, macs,
                              vops, item.wasted_fraction, item.step, tile))
            return
        key = (item.id, unit, kind, category)
        row = self.merged.get(key)
        if row is None:
            self.merged[key] = [unit, item.id, item.op, kind, category, start, end, bytes_, macs,
                                vops, item.wasted_fraction, item.step, -1]
        else:
            row[5] = min(row[5], start)
            row[6] = max(row[6], end)
            row[7] += bytes_
            row[8] += macs
            row[9] += vops

    def compute(self, unit: str, item: WorkItem, start: int, end: int, t: Tile, j: int) -> None:
        self._add(unit, item, "compute", "", start, end, 0, t.macs, t.vector_ops, j)

    def compute_item(self, unit: str, item: WorkItem, start: int, end: int, macs: int,
                     vops: int) -> None:
        """A whole item's compute row at once (chunked mode): what merging its tiles gives."""
        self._add(unit, item, "compute", "", start, end, 0, macs, vops, -1)

    def transfer(self, item: WorkItem, kind: str, category: str, start: int, end: int,
                 bytes_: int, j: int) -> None:
        self._add("dram", item, kind, category, start, end, bytes_, 0, 0, j)

    def frame(self) -> pd.DataFrame:
        rows = self.rows if self.per_tile else [tuple(r) for r in self.merged.values()]
        df = pd.DataFrame.from_records(rows, columns=LOG_COLUMNS)
        return df.sort_values(["start_cycle", "unit", "item"], kind="stable", ignore_index=True)


class _Snapshot(NamedTuple):
    sig: tuple  # the state a tile step depends on, relative to (base cycle, tile index)
    j: int
    base: int  # the unit's free cycle after tile j
    horizons: tuple  # per calendar: (index of its first interval still in play, its true start)
    occupancy: int  # length of the occupancy log
    row: tuple  # the item's merged weight- and stream-load log rows: (start, end, bytes) or None
    fetched: int
    dram_bytes: int


class _RunSkipper:
    """Fast-forwards runs of identical weight tiles once their timing is periodic.

    A run of identical array tiles that stream nothing is a fixed step applied
    again and again to (unit free cycle, weight loader, weight buffer, DMA and
    DRAM calendars): the step is the same map shifted in time and in tile index.
    After each tile the skipper takes that state relative to (the unit's free
    cycle, the tile index), keeping of each calendar only what a request issued
    at or after the loader's last issue can still see. When three snapshots
    ``p`` tiles apart are equal, each period of ``p`` tiles shifts everything by
    the same ``P`` cycles, so the rest of the run is played arithmetically:
    every calendar interval, occupancy change and logged byte the tile-by-tile
    loop would produce, in bulk. Anything else (a stream byte, a foreign key in
    the weight buffer, another unit's booking ahead) breaks the equality and the
    run continues tile by tile; results are identical either way.
    """

    MIN_RUN = 16  # tiles; shorter runs are not worth the snapshots
    MAX_PERIOD = 4  # tiles
    WINDOW = 16  # tiles of a run watched for a period before giving up on it

    def __init__(self, slots: int, loader: "_WeightLoader", dma: Dma, dram: Dram, sink: "_Sink"):
        self.slots, self.loader, self.dram, self.sink = slots, loader, dram, sink
        self.buffer = loader.buffer
        self.calendars = list(dma.engines) + list(dram.calendars)
        self.breaks: dict[tuple[int, int], list[int]] = {}
        self.history: list[_Snapshot] = []
        self.weighted = False

    def _breaks(self, tiles: list[Tile], p: int) -> list[int]:
        """Per tile index k, the first k' >= k whose tile differs from the one ``p`` before."""
        key = (id(tiles), p)
        out = self.breaks.get(key)
        if out is None:
            n = len(tiles)
            out = [n] * (n + 1)
            for k in range(n - 1, -1, -1):
                out[k] = k if k < p or tiles[k] != tiles[k - p] else out[k + 1]
            self.breaks[key] = out
        return out

    def start(self, tiles: list[Tile]) -> bool:
        """A new item: True when it has enough tiles to be worth watching."""
        self.history = []
        self.weighted = any(t.weight_bytes for t in tiles)
        return len(tiles) >= self.MIN_RUN

    def _loader_view(self, it: WorkItem, j: int, base: int) -> tuple | None:
        """Weight loader and buffer relative to (base, j); None if they hold another item's tiles."""
        loader, buf = self.loader, self.buffer
        prefix = _tile_key(it, 0)[:-1]
        issued = []
        for got_id, jj, key, ready in loader.issued:
            if got_id != it.id:
                return None
            issued.append((jj - j, ready - base))
        held = []
        for table in (buf.resident, buf.pins):
            for key, value in table.items():
                if not isinstance(key, tuple) or key[:-1] != prefix:
                    return None
                held.append((key[-1] - j, value))
            held.append(None)
        return loader.last_issue - base, tuple(issued), tuple(held), buf.used

    def _snapshot(self, it: WorkItem, j: int, base: int, arrive: list[int]) -> _Snapshot | None:
        # Items without weight tiles leave the loader and buffer alone: they stay out of it.
        # Requests still to come in the run: the loader's at or after its last issue, the
        # stream loads at or after the end of the current tile.
        h = base
        loader = None
        if self.weighted:
            loader = self._loader_view(it, j, base)
            if loader is None:
                return None
            h = min(base, self.loader.last_issue)
        views = [c.view(h, base) for c in self.calendars]
        sig = (loader, self.dram._next_channel, tuple(v[2] for v in views),
               tuple(a - base for a in arrive[j + 1:j + 1 + self.slots]), len(self.sink.merged))
        merged = self.sink.merged
        rows = tuple((r[5], r[6], r[7]) if r is not None else None
                     for r in (merged.get((it.id, "dram", "load", c)) for c in ("weight", "stream")))
        return _Snapshot(sig, j, base, tuple(v[:2] for v in views), len(self.sink.occupancy),
                         rows, self.sink.fetched.get(it.id, 0), self.dram.bytes_moved)

    def step(self, it: WorkItem, tiles: list[Tile], j: int, free: int, ready: int,
             arrive: list[int]) -> tuple[int, int]:
        """After tile ``j``: (tiles skipped, cycles skipped), (0, 0) when nothing was."""
        hist = self.history
        if len(hist) >= self.WINDOW or j + self.slots + 1 >= len(tiles):
            return 0, 0
        snap = self._snapshot(it, j, free, arrive)
        if snap is None:
            hist.clear()
            return 0, 0
        hist.append(snap)
        for p in range(1, self.MAX_PERIOD + 1):
            if len(hist) <= 2 * p:
                break
            a, b = hist[-1 - 2 * p], hist[-1 - p]
            if not (a.sig == b.sig == snap.sig and a.j + 2 * p == snap.j and a.base >= ready):
                continue
            brk = self._breaks(tiles, p)
            if brk[b.j + 1] <= j + self.slots:  # the tiles of the two periods differ
                continue
            last = min(brk[b.j + 1], len(tiles)) - 1 - self.slots  # the last tile to skip
            times = (last - j) // p
            if times >= 1 and self._apply(it, a, b, snap, p, times):
                hist.clear()
                return times * p, times * (snap.base - b.base)
        return 0, 0

    def _apply(self, it: WorkItem, a: _Snapshot, b: _Snapshot, c: _Snapshot, p: int,
               times: int) -> bool:
        """Play ``times`` more periods after snapshot ``c`` if a→b→c is one period twice."""
        P = c.base - b.base
        if P <= 0 or b.base - a.base != P:
            return False
        # 1. what one period adds must be the same twice: retired calendar intervals,
        #    occupancy changes, logged and moved bytes
        keep_first = []
        for cal, (ia, ta), (ib, tb), (ic, tc) in zip(self.calendars, a.horizons, b.horizons, c.horizons):
            if ta == tb == tc:
                keep_first.append(True)
            elif ta is not None and tb == ta + P and tc == tb + P:
                keep_first.append(False)
            else:
                return False
            if ib - ia != ic - ib:
                return False
            for col in (cal.starts, cal.ends):
                if any(col[ib + k] != col[ia + k] + P for k in range(ic - ib)):
                    return False
        occ = self.sink.occupancy
        if b.occupancy - a.occupancy != c.occupancy - b.occupancy:
            return False
        period = occ[b.occupancy:c.occupancy]
        for (n1, c1, d1), (n2, c2, d2) in zip(occ[a.occupancy:b.occupancy], period):
            if n1 != n2 or d1 != d2 or c2 != c1 + P:
                return False
        for ra, rb, rc in zip(a.row, b.row, c.row):
            if (ra is None) != (rc is None):
                return False
            if rc is not None and not (ra[0] == rb[0] == rc[0] and rc[1] - rb[1] == rb[1] - ra[1] == P
                                       and rc[2] - rb[2] == rb[2] - ra[2]):
                return False
        if c.fetched - b.fetched != b.fetched - a.fetched or \
                c.dram_bytes - b.dram_bytes != b.dram_bytes - a.dram_bytes:
            return False
        # 2. play them: everything moves on by `times` periods
        tiles, shift = times * p, times * P
        if self.weighted:
            loader, buf = self.loader, self.buffer
            loader.last_issue += shift
            loader.issued = deque((got_id, jj + tiles, _tile_key(it, jj + tiles), ready + shift)
                                  for got_id, jj, _, ready in loader.issued)
            loader.order.skip(tiles)
            buf.resident = type(buf.resident)((_tile_key(it, k[-1] + tiles), v)
                                              for k, v in buf.resident.items())
            buf.pins = {_tile_key(it, k[-1] + tiles): v for k, v in buf.pins.items()}
        for cal, (ib, _), (ic, _), keep in zip(self.calendars, b.horizons, c.horizons, keep_first):
            cal.repeat(ib, ic, P, times, keep)
        for name, cycle, delta in period:
            self.sink.occupancy_blocks.append((name, cycle, P, times, delta))
        for category, rb, rc in zip(("weight", "stream"), b.row, c.row):
            if rc is not None:
                row = self.sink.merged[(it.id, "dram", "load", category)]
                row[6] += shift
                row[7] += times * (rc[2] - rb[2])
        if c.fetched != b.fetched:
            self.sink.fetched[it.id] += times * (c.fetched - b.fetched)
        self.dram.bytes_moved += times * (c.dram_bytes - b.dram_bytes)
        return True



def _check_items(items: Sequence[WorkItem]) -> None:
    seen: set[int] = set()
    for it in items:
        if it.id in seen:
            raise ValueError(f"work item id {it.id} appears twice")
        for d in it.deps:
            if d not in seen:
                raise ValueError(f"work item {it.id} depends on {d}, which does not come before it")
        seen.add(it.id)


def replay(items: Sequence[WorkItem], hw: Hardware, *, tile_mode: TileMode = "chunked",
           skip_runs: bool = True) -> SimResult:
    """Run ``items`` (a DAG in topological order) on ``hw``; see the module docstring.

    ``skip_runs``: in chunked mode, play periodic runs of identical weight tiles
    arithmetically (``_RunSkipper``); the result is the same without, only slower.
    """
    if tile_mode not in ("chunked", "tile"):
        raise ValueError(f"tile_mode must be 'chunked' or 'tile', got {tile_mode!r}")
    if not isinstance(hw, Hardware):
        raise TypeError(f"hw must be a Hardware config, got {type(hw).__name__}")
    _check_items(items)

    # 1. Plan: tiles and traffic of every item, from the pure cost functions.
    the_plan = cost.plan(items, hw)
    plans, traffic = the_plan.tiles, the_plan.traffic
    by_unit = {"array": [it for it in items if it.unit == "array"],
               "vector": [it for it in items if it.unit == "vector"]}

    # 2. Units.
    env = simpy.Environment()
    sink = _Sink(per_tile=(tile_mode == "tile"))
    dram = Dram(env, hw)
    dma = Dma(env, hw, dram)
    wbuf = WeightBuffer(env, int(hw.buffers.weight.size_kib * 1024), sink.occupancy)
    loader = _WeightLoader(hw, _WeightOrder(by_unit["array"], plans), wbuf, dma, sink)
    skipper = (_RunSkipper(cost.slots(hw), loader, dma, dram, sink)
               if skip_runs and tile_mode == "chunked" else None)
    done_ev = {it.id: _Done(env) for it in items}
    done_at: dict[int, int] = {}
    records: list[tuple] = []
    slots = cost.slots(hw)
    per_tile = tile_mode == "tile"
    sums: dict[int, tuple[int, int]] = {}  # id of a (shared) tile list -> (macs, vector ops)

    def tile_sums(tiles: list[Tile]) -> tuple[int, int]:
        hit = sums.get(id(tiles))
        if hit is None:
            hit = sums[id(tiles)] = (sum(t.macs for t in tiles), sum(t.vector_ops for t in tiles))
        return hit

    def stream_load(unit: str, it: WorkItem, j: int, issue: int, bytes_: int) -> int:
        if not bytes_:
            return issue
        start, arrived = dma.transfer(issue, bytes_)
        sink.transfer(it, "load", "stream", start, arrived, bytes_, j)
        sink.occupancy.append(("activation", issue, bytes_))
        return arrived

    def store(it: WorkItem, cycle: int) -> int:
        tr = traffic[it.id]
        out_bytes = tr.kv_write_bytes + tr.act_write_bytes
        if not out_bytes:
            return cycle
        start, arrived = dma.transfer(cycle, out_bytes)
        sink.transfer(it, "store", "output", start, arrived, out_bytes, -1)
        return arrived

    def unit_process(unit: str):
        free = 0
        ring = deque([0] * slots)  # cycles at which this unit's stream slots free up
        work_share = cost.act_work_capacity(hw)
        take, release, occupancy = loader.take, loader.release, sink.occupancy
        for it in by_unit[unit]:
            # 1. ready: all deps done
            ready = 0
            for d in it.deps:
                if d not in done_at or done_at[d] > env.now:
                    yield done_ev[d]
                if done_at[d] > ready:
                    ready = done_at[d]
            # 2. the first stream slots' loads, then tile by tile (module docstring)
            tiles = plans[it.id]
            n = len(tiles)
            arrive = [0] * n
            for j in range(min(slots, n)):
                arrive[j] = stream_load(unit, it, j, max(ready, ring.popleft()), tiles[j].stream_bytes)
            first_start = None
            watch = skipper is not None and skipper.start(tiles)
            j = 0
            while j < n:
                t = tiles[j]
                at = arrive[j]
                key = None
                if t.weight_bytes:
                    key, w_at = take(it.id, j)
                    if w_at > at:
                        at = w_at
                start = free if free > at else at
                end = free = start + t.cycles
                if first_start is None:
                    first_start = start
                if per_tile:
                    sink.compute(unit, it, start, end, t, j)
                if t.stream_bytes:
                    occupancy.append(("activation", end, -t.stream_bytes))
                if per_tile and end > env.now:
                    yield env.timeout(end - env.now)
                if j == n - 1:  # outputs leave before the next prefetch claims the DMA
                    done = store(it, end)
                if key is not None:
                    release(key, end)
                if j + slots < n:
                    nxt = tiles[j + slots].stream_bytes
                    issue = ready if ready > end else end
                    arrive[j + slots] = stream_load(unit, it, j + slots, issue, nxt) if nxt else issue
                else:
                    ring.append(end)
                if watch:
                    skipped, cycles = skipper.step(it, tiles, j, free, ready, arrive)
                    if skipped:
                        arrive[j + skipped + 1:j + skipped + 1 + slots] = \
                            [x + cycles for x in arrive[j + 1:j + 1 + slots]]
                        j += skipped
                        free += cycles
                j += 1
            if not per_tile:  # one compute row per item: the merge of its tiles' rows
                macs, vops = tile_sums(tiles)
                sink.compute_item(unit, it, first_start, free, macs, vops)
            if cost.acts_on_chip(it, hw) and it.act_in_bytes + it.act_out_bytes:
                held = it.act_in_bytes + it.act_out_bytes
                assert held <= work_share
                occupancy.append(("activation", first_start, held))
                occupancy.append(("activation", free, -held))
            done_at[it.id] = done
            done_ev[it.id].fire_at(done)
            records.append((it, ready, first_start, free, done, n))

    env.process(unit_process("array"))
    env.process(unit_process("vector"))
    env.run()
    assert len(done_at) == len(items), "replay ended with items not done (a dependency cycle?)"
    events = next(env._eid)  # SimPy numbers every scheduled event

    occupancy = _occupancy_frame(sink.occupancy, sink.occupancy_blocks, hw)
    total = max(done_at.values(), default=0)
    return SimResult(log=sink.frame(), items=_items_frame(records, traffic, sink.fetched),
                     occupancy=occupancy, total_cycles=int(total), events=events,
                     roofline=cost.roofline(items, hw, the_plan), hw=hw, tile_mode=tile_mode)


def _items_frame(records, traffic, fetched) -> pd.DataFrame:
    rows = []
    for it, ready, start, compute_end, done, n_tiles in records:
        tr = traffic[it.id]
        f = fetched.get(it.id, 0)
        spill = tr.act_read_bytes + tr.act_write_bytes
        on_array = it.unit == "array"
        # Bytes passing through the activation buffer (KV from DRAM, vector-unit parameters,
        # KV writes on their way out) are written once and read once.
        passing = tr.kv_read_bytes + tr.kv_write_bytes + (0 if on_array else tr.weight_bytes)
        rows.append((
            it.id, it.op, it.unit, it.phase, it.label, ready, start, compute_end, done, it.tokens,
            it.step, it.wasted_fraction, it.macs, it.vector_ops, n_tiles,
            f if on_array else tr.weight_bytes, tr.kv_read_bytes, tr.kv_write_bytes, spill,
            f + it.weight_bytes if on_array else 0,
            it.act_in_bytes + it.act_out_bytes + spill + 2 * passing,
            2 * it.act_out_bytes if on_array else 0,
            tr.kv_sram_bytes,
        ))
    df = pd.DataFrame.from_records(rows, columns=ITEM_COLUMNS)
    return df.sort_values("item", ignore_index=True)


def _occupancy_frame(deltas: list[tuple[str, int, int]],
                     blocks: list[tuple[str, int, int, int, int]], hw: Hardware) -> pd.DataFrame:
    """Cumulative bytes per buffer after each change; asserts capacity is never exceeded.

    At equal cycles releases apply before allocations (a slot freed at cycle t
    can be refilled at t), so within a cycle the running total first falls and
    then rises: its peak is reached at the end of some cycle, and the order of
    the changes inside a cycle matters to nothing reported. ``blocks`` hold
    further changes in bulk (see ``_Sink``).
    """
    if not deltas and not blocks:
        return pd.DataFrame({"buffer": pd.Series(dtype=str), "cycle": pd.Series(dtype=np.int64),
                             "bytes": pd.Series(dtype=np.int64)})
    cols: dict[str, tuple[list, list]] = {}
    for name, cycle, delta in deltas:
        c = cols.get(name)
        if c is None:
            c = cols[name] = ([], [])
        c[0].append(cycle)
        c[1].append(delta)
    parts: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {}
    for name, (cyc, dl) in cols.items():
        parts.setdefault(name, []).append((np.array(cyc, dtype=np.int64), np.array(dl, dtype=np.int64)))
    by_name: dict[str, list] = {}
    for b in blocks:
        by_name.setdefault(b[0], []).append(b[1:])
    for name, rows in by_name.items():
        c0, period, times, delta = (np.array(col, dtype=np.int64) for col in zip(*rows))
        k = np.arange(int(times.sum()), dtype=np.int64) - np.repeat(np.cumsum(times) - times, times) + 1
        parts.setdefault(name, []).append((np.repeat(c0, times) + k * np.repeat(period, times),
                                           np.repeat(delta, times)))
    names, cycles, held = [], [], []
    for name in sorted(parts):
        cyc = np.concatenate([c for c, _ in parts[name]])
        dl = np.concatenate([d for _, d in parts[name]])
        order = np.argsort(cyc, kind="stable")  # runs of sorted cycles: cheap for timsort
        cyc, total = cyc[order], np.cumsum(dl[order])
        last = np.append(cyc[1:] != cyc[:-1], True)  # the bytes held once a cycle's changes are in
        cyc, total = cyc[last], total[last]
        peak, cap = total.max(), getattr(hw.buffers, name).size_kib * 1024
        assert peak <= cap, f"{name} buffer occupancy {peak} bytes exceeds its {cap:.0f} bytes"
        names.append(np.full(len(cyc), name, dtype=object))
        cycles.append(cyc)
        held.append(total)
    return pd.DataFrame({"buffer": np.concatenate(names), "cycle": np.concatenate(cycles),
                         "bytes": np.concatenate(held)})

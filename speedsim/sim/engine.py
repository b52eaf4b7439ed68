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

Invariants checked in every run: buffer occupancy never exceeds capacity
(weight buffer at each allocation, all buffers over the whole occupancy
trace), every item done after its deps.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Hashable, Iterator, Literal, Sequence

import numpy as np
import pandas as pd
import simpy
from simpy.events import NORMAL

from speedsim.config.hw import Hardware
from speedsim.hw import cost
from speedsim.hw.cost import Roofline, Tile
from speedsim.hw.units import Dma, Dram, WeightBuffer
from speedsim.sim.workitem import WorkItem

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


class _WeightLoader:
    """Issues the array's weight tiles in list order, ``slots`` ahead of the compute."""

    def __init__(self, hw: Hardware, order: Iterator[tuple[WorkItem, int, Hashable, int]],
                 buffer: WeightBuffer, dma: Dma, sink: "_Sink"):
        self.order = order
        self.buffer, self.dma, self.sink = buffer, dma, sink
        self.issued: deque = deque()
        self.last_issue = 0
        for _ in range(cost.slots(hw)):
            self._issue_next(0)

    def _issue_next(self, cycle: int) -> None:
        nxt = next(self.order, None)
        if nxt is None:
            return
        item, j, key, bytes_ = nxt
        issue = max(cycle, self.last_issue)
        self.last_issue = issue
        if self.buffer.acquire(key, bytes_, issue):
            ready = issue
        else:
            start, ready = self.dma.transfer(issue, bytes_)
            self.sink.transfer(item, "load", "weight", start, ready, bytes_, j)
            self.sink.fetched[item.id] = self.sink.fetched.get(item.id, 0) + bytes_
        self.issued.append((item.id, j, key, ready))

    def take(self, item_id: int, j: int) -> tuple[Hashable, int]:
        got_id, got_j, key, ready = self.issued.popleft()
        assert (got_id, got_j) == (item_id, j), "weight loader out of step with the array"
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
        self.occupancy: list[tuple[str, int, int]] = []

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

    def transfer(self, item: WorkItem, kind: str, category: str, start: int, end: int,
                 bytes_: int, j: int) -> None:
        self._add("dram", item, kind, category, start, end, bytes_, 0, 0, j)

    def frame(self) -> pd.DataFrame:
        rows = self.rows if self.per_tile else [tuple(r) for r in self.merged.values()]
        df = pd.DataFrame.from_records(rows, columns=LOG_COLUMNS)
        return df.sort_values(["start_cycle", "unit", "item"], kind="stable", ignore_index=True)


def _check_items(items: Sequence[WorkItem]) -> None:
    seen: set[int] = set()
    for it in items:
        if it.id in seen:
            raise ValueError(f"work item id {it.id} appears twice")
        for d in it.deps:
            if d not in seen:
                raise ValueError(f"work item {it.id} depends on {d}, which does not come before it")
        seen.add(it.id)


def _weight_order(array_items: list[WorkItem], plans: dict[int, list[Tile]]):
    for it in array_items:
        for j, t in enumerate(plans[it.id]):
            if t.weight_bytes:
                key = (it.weight_key, j) if it.weight_key is not None else ("anonymous", it.id, j)
                yield it, j, key, t.weight_bytes


def replay(items: Sequence[WorkItem], hw: Hardware, *, tile_mode: TileMode = "chunked") -> SimResult:
    """Run ``items`` (a DAG in topological order) on ``hw``; see the module docstring."""
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
    loader = _WeightLoader(hw, _weight_order(by_unit["array"], plans), wbuf, dma, sink)
    done_ev = {it.id: _Done(env) for it in items}
    done_at: dict[int, int] = {}
    records: list[tuple] = []
    slots = cost.slots(hw)
    per_tile = tile_mode == "tile"

    def wait_deps(it: WorkItem):
        ready = 0
        for d in it.deps:
            if d not in done_at or done_at[d] > env.now:
                yield done_ev[d]
            ready = max(ready, done_at[d])
        return ready

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
        for it in by_unit[unit]:
            ready = yield from wait_deps(it)
            tiles = plans[it.id]
            n = len(tiles)
            arrive = [0] * n
            for j in range(min(slots, n)):
                arrive[j] = stream_load(unit, it, j, max(ready, ring.popleft()), tiles[j].stream_bytes)
            first_start = None
            for j, t in enumerate(tiles):
                at = arrive[j]
                key = None
                if t.weight_bytes:
                    key, w_at = loader.take(it.id, j)
                    at = max(at, w_at)
                start = max(free, at)
                end = free = start + t.cycles
                first_start = start if first_start is None else first_start
                sink.compute(unit, it, start, end, t, j)
                if t.stream_bytes:
                    sink.occupancy.append(("activation", end, -t.stream_bytes))
                if per_tile and end > env.now:
                    yield env.timeout(end - env.now)
                if j == n - 1:  # outputs leave before the next prefetch claims the DMA
                    done = store(it, end)
                if key is not None:
                    loader.release(key, end)
                if j + slots < n:
                    arrive[j + slots] = stream_load(unit, it, j + slots, max(ready, end),
                                                    tiles[j + slots].stream_bytes)
                else:
                    ring.append(end)
            if cost.acts_on_chip(it, hw) and it.act_in_bytes + it.act_out_bytes:
                held = it.act_in_bytes + it.act_out_bytes
                assert held <= work_share
                sink.occupancy.append(("activation", first_start, held))
                sink.occupancy.append(("activation", free, -held))
            done_at[it.id] = done
            done_ev[it.id].fire_at(done)
            records.append((it, ready, first_start, free, done, n))

    env.process(unit_process("array"))
    env.process(unit_process("vector"))
    env.run()
    assert len(done_at) == len(items), "replay ended with items not done (a dependency cycle?)"
    events = next(env._eid)  # SimPy numbers every scheduled event

    occupancy = _occupancy_frame(sink.occupancy, hw)
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


def _occupancy_frame(deltas: list[tuple[str, int, int]], hw: Hardware) -> pd.DataFrame:
    """Cumulative bytes per buffer after each change; asserts capacity is never exceeded.

    At equal cycles releases apply before allocations (a slot freed at cycle t
    can be refilled at t).
    """
    if not deltas:
        return pd.DataFrame({"buffer": pd.Series(dtype=str), "cycle": pd.Series(dtype=np.int64),
                             "bytes": pd.Series(dtype=np.int64)})
    df = pd.DataFrame.from_records(deltas, columns=("buffer", "cycle", "delta"))
    df = df.sort_values(["buffer", "cycle", "delta"], kind="stable", ignore_index=True)
    df["bytes"] = df.groupby("buffer", sort=False)["delta"].cumsum()
    for name, peak in df.groupby("buffer")["bytes"].max().items():
        cap = getattr(hw.buffers, name).size_kib * 1024
        assert peak <= cap, f"{name} buffer occupancy {peak} bytes exceeds its {cap:.0f} bytes"
    df = df.groupby(["buffer", "cycle"], sort=False, as_index=False)["bytes"].last()
    return df[list(OCCUPANCY_COLUMNS)]

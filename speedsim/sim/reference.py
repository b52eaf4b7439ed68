"""Reference replay: the engine's model played tile by tile on plain SimPy, as the test oracle.

The same model as ``speedsim.sim.engine`` (its module docstring is the
specification), written independently and without any fast path, so that a
disagreement points at a bug in one of the two:

* each compute unit (``hw.compute_units``: the array, the vector unit) is a SimPy
  process; each runs its items
  in list order: wait until every dep is done (*ready*), *start*, spend
  ``<unit>.op_overhead_ns``, then play the tiles of ``cost.plan(items, hw).tiles``
  one at a time — tile j computes once its bytes are on chip and tile j − 1 is
  done — and finally store its outputs (KV writes, spills) as one demand transfer;
  the item is *done* when they have arrived;
* **weight tiles** (array items have them) are issued in list order over all items
  through ``slots`` weight slots (2 with double buffering): a slot frees when its
  tile has computed; under ``per_op`` a tile also waits for its item's issue overhead
  to end (a kernel loads nothing before it is launched).
  The weight buffer is an LRU of tiles keyed ``(weight_key, j)``, pinned from
  issue to compute end; a resident tile is a hit (no transfer), a miss is a
  **bulk** DRAM transfer;
* **stream tiles** (KV reads, spilled inputs, non-resident parameters) are issued
  in each unit's tile order through its ``slots`` stream slots as **demand**
  transfers, once their item's issue overhead has ended — or, under ``ahead``,
  for an item whose stream is KV reads only, once all its deps have started;
* resident **parameters** (``cost.param_resident``) are looked up in an LRU cache
  at the end of the issue overhead and fetched on a miss (demand);
* **DRAM**: a ``simpy.PreemptiveResource`` of one port; a transfer holds it for its
  busiest channel's bytes at ``1 / channels`` of the bandwidth (its granules laid
  out round robin over ``dram.channels``). Demand requests (priority
  0) are queued at the cycle they are issued, first come first served, and
  pre-empt bulk (priority 1); a pre-empted bulk transfer resumes with its
  remaining cycles when no demand is left. Bulk transfers move one after the
  other in issue order, each holding one of ``dma.engines`` (a FIFO
  ``simpy.Resource``) from its issue until its data has arrived. Data arrives
  ``latency`` cycles after its last byte moved; the latency holds nothing.

Ties within one cycle (the model leaves them open; these match the engine's):
loaders are pumped whenever a slot frees or an item starts or ends its
overhead (weights, then array stream, then vector stream), then the item's
parameter fetch; a unit whose next item's deps are already done goes on in the
same step, ahead of units woken by the same completion; demand transfers issued
in one cycle are served in that order.

Invariants: the weight buffer never holds more than its capacity and never
evicts a pinned tile (asserted); every item is ready after its deps are done and
done after it starts (asserted); the DRAM port has capacity one, so at most one
transfer moves data at any cycle.
"""

from __future__ import annotations

import functools
from collections import Counter, OrderedDict, deque
from typing import Hashable, Sequence

import numpy as np
import pandas as pd
import simpy

from speedsim.config.hw import Hardware
from speedsim.contracts.workitem import WorkItem, check_dag
from speedsim.hw import cost
from speedsim.contracts.results import LOG_COLUMNS, OCCUPANCY_COLUMNS, SimResult
from speedsim.sim.tables import ItemRecord, items_frame

DEMAND, BULK = 0, 1  # DRAM priority classes


class RefDram:
    """One DRAM port shared by a demand and a bulk class, and the bulk class's DMA engines."""

    def __init__(self, env: simpy.Environment, hw: Hardware, log: list):
        self.env, self.log = env, log
        self.hw = hw
        self.latency = hw.dram_latency_cycles
        self.port = simpy.PreemptiveResource(env, capacity=1)
        self.engines = simpy.Resource(env, capacity=hw.dma.engines)
        self.last_bulk: simpy.Event | None = None  # the previous bulk transfer has moved

    @functools.lru_cache(maxsize=None)
    def cycles(self, bytes_: int) -> int:
        """Lay the transfer's granules out over the channels one by one (round robin from
        channel 0); it takes as long as its busiest channel, at ``1 / channels`` of the
        bandwidth each."""
        gran, channels = self.hw.dram.interleave_bytes, self.hw.dram.channels
        sizes = np.full(-(-bytes_ // gran), gran, dtype=np.int64)
        if len(sizes):
            sizes[-1] = bytes_ - gran * (len(sizes) - 1)
        busiest = np.bincount(np.arange(len(sizes)) % channels, sizes, channels).max(initial=0)
        return cost.transfer_cycles(int(busiest), self.hw.dram_bytes_per_cycle / channels)

    def demand(self, bytes_: int, row: tuple) -> simpy.Event:
        """Issue a demand transfer now; the returned event fires when its data has arrived.
        The request is queued here, at the call, so demand is served in issue order."""
        req = self.port.request(priority=DEMAND, preempt=True)
        arrived = self.env.event()
        self.env.process(self._demand(req, self.cycles(bytes_), arrived, row))
        return arrived

    def _demand(self, req, cycles: int, arrived: simpy.Event, row: tuple):
        yield req
        start = self.env.now
        yield self.env.timeout(cycles)
        self.port.release(req)
        self.log.append(row + (start, self.env.now, cycles, 0, 0))
        yield self.env.timeout(self.latency)
        arrived.succeed(self.env.now)

    def bulk(self, bytes_: int, row: tuple) -> simpy.Event:
        """Issue a bulk transfer now; the returned event fires when its data has arrived."""
        prev, moved, arrived = self.last_bulk, self.env.event(), self.env.event()
        self.last_bulk = moved
        self.env.process(self._bulk(self.cycles(bytes_), prev, moved, arrived, row))
        return arrived

    def _bulk(self, cycles: int, prev, moved: simpy.Event, arrived: simpy.Event, row: tuple):
        with self.engines.request() as engine:  # requested at issue: engines go in issue order
            yield engine
            if prev is not None:
                yield prev  # one bulk transfer moves at a time, in issue order
            start = yield from self._move(cycles)
            moved.succeed()
            self.log.append(row + (start, self.env.now, cycles, 0, 0))
            yield self.env.timeout(self.latency)
        arrived.succeed(self.env.now)

    def _move(self, cycles: int):
        """Hold the port for ``cycles`` cycles, resuming after each pre-emption by demand;
        returns the first cycle it moved data (a grant pre-empted in its own cycle moved none)."""
        start = None
        while cycles:
            with self.port.request(priority=BULK, preempt=False) as req:
                granted = None
                try:
                    yield req
                    granted = self.env.now
                    yield self.env.timeout(cycles)
                    cycles = 0
                except simpy.Interrupt as stop:
                    cycles -= self.env.now - stop.cause.usage_since
                if start is None and granted is not None and self.env.now > granted:
                    start = granted
        return start


class RefWeightBuffer:
    """LRU of weight tiles with pins; never holds more than ``capacity`` bytes."""

    def __init__(self, capacity: int):
        self.capacity, self.used = capacity, 0
        self.tiles: OrderedDict[Hashable, int] = OrderedDict()
        self.pins: Counter = Counter()

    def acquire(self, key: Hashable, bytes_: int) -> bool:
        """Pin tile ``key``; True when it was resident (a hit)."""
        self.pins[key] += 1
        if key in self.tiles:
            self.tiles.move_to_end(key)
            return True
        if bytes_ > self.capacity:
            raise ValueError(f"weight tile of {bytes_} bytes exceeds the buffer ({self.capacity} bytes)")
        while self.used + bytes_ > self.capacity:
            self._evict_one()
        self.tiles[key] = bytes_
        self.used += bytes_
        assert self.used <= self.capacity, f"weight buffer over capacity: {self.used} bytes"
        return False

    def _evict_one(self) -> None:
        victim = next((k for k in self.tiles if not self.pins[k]), None)
        assert victim is not None, "weight buffer: pinned tiles leave no room"
        self.used -= self.tiles.pop(victim)

    def release(self, key: Hashable) -> None:
        assert self.pins[key] > 0, f"weight tile {key} released but not pinned"
        self.pins[key] -= 1


class RefParamCache:
    """Resident vector-unit parameters: whole entries, LRU."""

    def __init__(self, capacity: int):
        self.capacity, self.used = capacity, 0
        self.entries: OrderedDict[Hashable, int] = OrderedDict()

    def lookup(self, key: Hashable, bytes_: int) -> bool:
        """True on a hit; on a miss the entry becomes resident, evicting LRU ones."""
        if key in self.entries:
            self.entries.move_to_end(key)
            return True
        while self.used + bytes_ > self.capacity:
            self.used -= self.entries.popitem(last=False)[1]
        self.entries[key] = bytes_
        self.used += bytes_
        return False


class _Loader:
    """Tiles of one kind issued in a fixed order through ``slots`` slots, each when its
    slot is free and ``may_issue(item)`` holds; ``issue(item, j, bytes)`` returns the
    tile's arrival event (None: already on chip)."""

    def __init__(self, queue: list[tuple[WorkItem, int, int]], slots: int, may_issue, issue):
        self.queue, self.free = deque(queue), slots
        self.may_issue, self.issue = may_issue, issue
        self.arrival: dict[tuple[int, int], simpy.Event | None] = {}

    def pump(self) -> None:
        while self.free and self.queue and self.may_issue(self.queue[0][0]):
            it, j, bytes_ = self.queue.popleft()
            self.free -= 1
            self.arrival[(it.id, j)] = self.issue(it, j, bytes_)

    def release(self) -> None:
        self.free += 1
        self.pump()


def _queue(items: list[WorkItem], tiles: dict, field: str) -> list[tuple[WorkItem, int, int]]:
    """(item, tile index, bytes) of every tile with ``field`` bytes, in list order."""
    return [(it, j, getattr(t, field)) for it in items for j, t in enumerate(tiles[it.id])
            if getattr(t, field)]


def _tile_key(it: WorkItem, j: int) -> Hashable:
    return (it.weight_key, j) if it.weight_key is not None else ("anonymous", it.id, j)


class _Reference:
    """One reference replay: one process per compute unit over shared loaders, buffers and DRAM."""

    def __init__(self, items: Sequence[WorkItem], hw: Hardware):
        self.env, self.hw, self.items = simpy.Environment(), hw, items
        self.plan = cost.plan(items, hw)
        self.per_op = hw.weight_prefetch == "per_op"
        self.log: list[tuple] = []
        self.dram = RefDram(self.env, hw, self.log)
        wbuf_bytes = cost.weight_buffer_bytes(hw)
        self.wbuf = RefWeightBuffer(wbuf_bytes - cost.param_capacity(hw))
        self.params = RefParamCache(cost.param_capacity(hw))
        self.by_unit = {u: [it for it in items if it.unit == u] for u in hw.compute_units}
        self.started: set[int] = set()
        self.issuing: set[int] = set()  # items whose issue overhead has ended
        self.done = {it.id: self.env.event() for it in items}
        self.fetched: dict[int, int] = {}
        self.records: list[list] = []
        self._loaders(cost.slots(hw))

    def _loaders(self, slots: int) -> None:
        tiles = self.plan.tiles
        self.weights = _Loader(_queue(list(self.items), tiles, "weight_bytes"), slots,
                               lambda it: not self.per_op or it.id in self.issuing,
                               self._issue_weight)
        self.streams = {u: _Loader(_queue(self.by_unit[u], tiles, "stream_bytes"), slots,
                                   self._stream_may_issue, self._issue_stream)
                        for u in self.by_unit}

    # --- what the loaders issue ---------------------------------------------------------

    def _row(self, it: WorkItem, kind: str, category: str, bytes_: int, j: int = -1) -> tuple:
        return ("dram", it.id, it.op, kind, category, bytes_, j)

    def _issue_weight(self, it: WorkItem, j: int, bytes_: int) -> simpy.Event | None:
        if self.wbuf.acquire(_tile_key(it, j), bytes_):
            return None
        self.fetched[it.id] = self.fetched.get(it.id, 0) + bytes_
        return self.dram.bulk(bytes_, self._row(it, "load", "weight", bytes_, j))

    def _issue_stream(self, it: WorkItem, j: int, bytes_: int) -> simpy.Event:
        return self.dram.demand(bytes_, self._row(it, "load", "stream", bytes_, j))

    def _kv_only(self, it: WorkItem) -> bool:
        """The item's stream is KV reads only (no spilled inputs, no streamed parameters)."""
        tr = self.plan.traffic[it.id]
        streamed_params = not cost.on_matrix(it, self.hw) and not cost.param_resident(it, self.hw) \
            and tr.weight_bytes
        return bool(tr.kv_read_bytes and not tr.act_read_bytes and not streamed_params)

    def _stream_may_issue(self, it: WorkItem) -> bool:
        if it.id in self.issuing:
            return True
        return (not self.per_op and self._kv_only(it) and bool(it.deps)
                and all(d in self.started for d in it.deps))

    def _pump_all(self) -> None:
        self.weights.pump()
        for loader in self.streams.values():  # in the order of ``hw.compute_units``
            loader.pump()

    def _fetch_params(self, it: WorkItem) -> simpy.Event | None:
        """Look up a vector item's resident parameters; on a miss fetch them (demand)."""
        if not cost.param_resident(it, self.hw) or self.params.lookup(it.weight_key, it.weight_bytes):
            return None
        self.fetched[it.id] = it.weight_bytes
        return self.dram.demand(it.weight_bytes, self._row(it, "load", "param", it.weight_bytes))

    def _store(self, it: WorkItem) -> simpy.Event | None:
        tr = self.plan.traffic[it.id]
        out = tr.kv_write_bytes + tr.act_write_bytes
        return self.dram.demand(out, self._row(it, "store", "output", out)) if out else None

    # --- the unit processes ---------------------------------------------------------------

    def run(self) -> None:
        self._pump_all()
        for unit in self.by_unit:
            self.env.process(self._unit(unit))
        self.env.run()
        assert all(ev.processed for ev in self.done.values()), "replay ended with items not done"

    def _unit(self, unit: str):
        overhead = self.hw.op_overhead_cycles(unit)
        for it in self.by_unit[unit]:
            # 1. ready, start, issue overhead
            ready = yield from self._wait_deps(it)
            self.started.add(it.id)
            self._pump_all()
            if overhead:
                yield self.env.timeout(overhead)
            self.issuing.add(it.id)
            self._pump_all()
            # 2. parameters, then the tiles one at a time
            first = yield from self._tiles(unit, it, self._fetch_params(it))
            # 3. outputs
            compute_end = self.env.now
            self._finish(it, self._store(it))
            self.records.append([it, ready, first, compute_end, self.done[it.id],
                                 len(self.plan.tiles[it.id])])

    def _wait_deps(self, it: WorkItem):
        """Wait until every dep is done; the cycle the last one was (0 without deps).
        A dep already done (e.g. the unit's own previous item) costs no wait, so the unit
        goes on within its step, ahead of units woken by the same event."""
        ready = 0
        for d in it.deps:
            ev = self.done[d]
            ready = max(ready, ev.value if ev.triggered else (yield ev))
        return ready

    def _tiles(self, unit: str, it: WorkItem, params: simpy.Event | None):
        """Play the item's tiles; returns the cycle the first one began computing."""
        first = None
        for j, t in enumerate(self.plan.tiles[it.id]):
            yield from self._wait_inputs(unit, it, j, t, params if j == 0 else None)
            first = self.env.now if first is None else first
            if t.cycles:
                yield self.env.timeout(t.cycles)
            self.log.append((unit, it.id, it.op, "compute", "", 0, j, self.env.now - t.cycles,
                             self.env.now, t.cycles, t.macs, t.vector_ops))
            self._tile_done(unit, it, j, t)
        return first

    def _wait_inputs(self, unit: str, it: WorkItem, j: int, t: cost.Tile, params):
        waits = [params]
        if t.stream_bytes:
            waits.append(self.streams[unit].arrival.pop((it.id, j)))
        if t.weight_bytes:
            waits.append(self.weights.arrival.pop((it.id, j)))
        for ev in waits:
            if ev is not None:
                yield ev

    def _tile_done(self, unit: str, it: WorkItem, j: int, t: cost.Tile) -> None:
        if t.weight_bytes:
            self.wbuf.release(_tile_key(it, j))
            self.weights.release()
        if t.stream_bytes:
            self.streams[unit].release()

    def _finish(self, it: WorkItem, stored: simpy.Event | None) -> None:
        ev = self.done[it.id]
        if stored is None:
            ev.succeed(self.env.now)
        else:
            stored.callbacks.append(lambda s: ev.succeed(s.value))


def reference_replay(items: Sequence[WorkItem], hw: Hardware) -> SimResult:
    """Run ``items`` (a DAG in topological order) on ``hw`` tile by tile (module docstring).

    ``items`` and ``total_cycles`` have the engine's schema and meaning; ``log`` has one
    row per tile and per transfer; ``occupancy`` is empty; ``events`` is 0.
    """
    if not isinstance(hw, Hardware):
        raise TypeError(f"hw must be a Hardware config, got {type(hw).__name__}")
    check_dag(items, hw.compute_units)
    r = _Reference(items, hw)
    r.run()
    records = [ItemRecord(it, ready, first, end, done.value, n) for it, ready, first, end, done, n in r.records]
    for it, ready, first, _, done, _ in records:
        assert ready <= first <= done, f"item {it.id}: ready {ready}, start {first}, done {done}"
    frame = items_frame(records, r.plan.traffic, r.fetched, hw)
    return SimResult(log=_log_frame(r.log, items), items=frame,
                     occupancy=pd.DataFrame(columns=list(OCCUPANCY_COLUMNS)),
                     total_cycles=int(frame.end_cycle.max()) if len(frame) else 0, events=0,
                     roofline=cost.roofline(items, hw, r.plan), hw=hw)


def _log_frame(rows: list[tuple], items: Sequence[WorkItem]) -> pd.DataFrame:
    """``LOG_COLUMNS`` rows from (unit, item, op, kind, category, bytes, tile, start, end,
    busy, macs, vector ops) records: one per tile computed and per transfer."""
    by_id = {it.id: it for it in items}
    out = [(unit, i, op, kind, category, start, end, bytes_, macs, vops,
            by_id[i].wasted_fraction, by_id[i].step, j, busy)
           for unit, i, op, kind, category, bytes_, j, start, end, busy, macs, vops in rows]
    df = pd.DataFrame.from_records(out, columns=LOG_COLUMNS)
    return df.sort_values(["start_cycle", "unit", "item"], kind="stable", ignore_index=True)

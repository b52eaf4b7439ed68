"""Accelerator units: the DRAM with its DMA engines, the weight buffer, the parameter cache.

Plain arithmetic on integer cycles, called by the replay at the current cycle
(``now``), in time order; no module-level state. Each part owns its fields.

**DRAM** (docs/hardware.md, "DRAM"): one transfer moves at a time, for
``cost.dram_transfer_cycles`` (its busiest channel's share at ``1 / channels`` of
the bandwidth); its data arrives ``latency`` cycles after its last byte (pipelined).
*Demand* transfers (KV reads, spills, parameters, stores) are first come, first
served and pre-empt *bulk* ones (weight tiles): issued at ``t``, one starts at
``max(t, end of the previous demand)``. Bulk transfers move in issue order on the
cycles demand leaves free, each holding one of ``dma.engines`` from its issue
until its data has arrived. Demand booked while bulk is pending pushes the bulk's
cycles back, so a ``BulkTransfer`` is final only once its arrival has passed.
Invariant: at most one transfer moves data at any cycle; demand never waits for bulk.

**Weight buffer**: weight tiles keyed ``prefix + (tile index,)``, LRU; a tile is
pinned from its issue until its compute ends and only unpinned tiles are evicted;
a resident tile is not fetched again; resident bytes never exceed the capacity
(asserted). **Parameter cache**: the buffer's share for vector-unit parameters, a
``WeightBuffer`` of whole entries, never pinned.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict, deque
from itertools import chain
from dataclasses import dataclass
from functools import cache, partial
from typing import Hashable

from speedsim.config.hw import Hardware
from speedsim.hw.cost import dram_transfer_cycles


class Periodic:
    """The state protocol of every stateful part of the replay (DRAM, weight buffer, loaders,
    occupancy, log), which the period skipper (``speedsim.sim.skipper``) alone calls.

    * ``relative(now)``: everything of the part that decides what happens after ``now``,
      relative to ``now`` (a cycle already past constrains nothing, so it counts as 0);
      equal at two moments of a run of repeating tiles, the part behaves the same after
      both, shifted by the cycles between them (every rule of the model is a max of sums
      of cycles);
    * ``mark(item)``: a snapshot of what the part accumulates (bytes moved, points, log rows);
    * ``room(since, period)``: how many of ``period.times`` periods the part can skip;
    * ``skip(since, now, period)``: be as ``period.times`` more periods of what happened
      since the ``mark`` ``since`` would leave it, each ``period.tiles`` tiles and
      ``period.cycles`` cycles on;
    * ``forget()``: the stretch that marked is over.
    """

    def relative(self, now: int) -> Hashable:
        return ()

    def mark(self, it):
        return None

    def room(self, since, period) -> int:
        return period.times

    def skip(self, since, now: int, period) -> None:
        pass

    def forget(self) -> None:
        pass


@dataclass(slots=True)
class BulkTransfer:
    """One bulk transfer; ``start``/``finish``/``arrival`` move later while demand pre-empts it."""

    issue: int
    cycles: int
    bytes_: int
    start: int = 0
    finish: int = 0
    arrival: int = 0
    origin: int = 0  # first cycle it may move (issue, predecessor finished, engine free)

    def plan(self, origin: int, start: int, finish: int, latency: int) -> None:
        self.origin, self.start, self.finish, self.arrival = origin, start, finish, finish + latency

    def shift(self, now: int, by: int) -> None:
        """Move every cycle after ``now`` on by ``by``."""
        self.start, self.finish, self.arrival, self.origin = [
            t + by if t > now else t for t in (self.start, self.finish, self.arrival, self.origin)]


class _Busy:
    """The cycles demand transfers hold the DRAM: intervals ``[start, end)`` in time order."""

    def __init__(self):
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.head = 0  # intervals before it can change nothing any more

    def add(self, start: int, end: int) -> None:
        if self.ends and self.ends[-1] == start:  # back to back: one interval
            self.ends[-1] = end
        else:
            self.starts.append(start)
            self.ends.append(end)

    def prune(self, horizon: int) -> None:
        """Forget the intervals that end by ``horizon`` (where replanning begins)."""
        self.head = bisect_right(self.ends, horizon, self.head)
        if self.head > 4096:  # drop the dead prefix now and then
            del self.starts[:self.head], self.ends[:self.head]
            self.head = 0

    def serve(self, t: int, cycles: int) -> tuple[int, int]:
        """(first, last + 1) cycle of ``cycles`` free cycles from ``t`` on."""
        start = None
        starts, ends = self.starts, self.ends
        for k in range(bisect_right(ends, t, self.head), len(ends)):
            a, b = starts[k], ends[k]
            if a >= t + cycles:
                break
            if a > t:
                start = t if start is None else start
                cycles -= a - t
            t = max(t, b)
        return (t if start is None else start), t + cycles

    def tail(self, now: int) -> list[tuple[int, int]]:
        """The intervals still running after ``now``: their part after ``now``."""
        k = len(self.ends)
        while k > self.head and self.ends[k - 1] > now:
            k -= 1
        return [(max(a, now), b) for a, b in zip(self.starts[k:], self.ends[k:])]

    def shift(self, now: int, by: int) -> None:
        """Move the part of every interval after ``now`` on by ``by``."""
        moved = self.tail(now)
        if moved:
            k = len(self.ends) - len(moved)
            del self.starts[k + 1:], self.ends[k + 1:]
            if self.starts[-1] < now:  # the part up to now stays where it was
                self.ends[-1] = now
            else:
                self.starts.pop(), self.ends.pop()
        self.starts.extend([a + by for a, _ in moved])
        self.ends.extend([b + by for _, b in moved])


class Dram(Periodic):
    """DRAM with demand and bulk classes and the DMA engines of the bulk class."""

    def __init__(self, hw: Hardware):
        # ``dram_transfer_cycles`` memoized: a run moves a few sizes, many times
        self.cycles = cache(partial(dram_transfer_cycles, hw=hw))
        self.latency = hw.dram_latency_cycles
        self.engines = hw.dma.engines
        self.demand_free = 0
        self.busy = _Busy()
        self.pending: list[BulkTransfer] = []  # bulk transfers not yet finished, in order
        # the last ``engines`` finished: every one finished and not yet arrived is among them
        self.retired: deque[BulkTransfer] = deque(maxlen=self.engines)
        self.last_issue = 0

    def demand(self, now: int, bytes_: int) -> tuple[int, int, int]:
        """Book a demand transfer issued at ``now``: (start, end, arrival) cycles."""
        assert now >= self.last_issue, f"DRAM request at {now} after one at {self.last_issue}"
        self.last_issue = now
        start = now if now > self.demand_free else self.demand_free
        end = self.demand_free = start + self.cycles(bytes_)
        if end > start:
            self.busy.add(start, end)
            self._replan(start, end)
        return start, end, end + self.latency

    def bulk(self, now: int, bytes_: int) -> BulkTransfer:
        """Book a bulk transfer issued at ``now``; its cycles may still move (module docstring)."""
        assert now >= self.last_issue, f"DRAM request at {now} after one at {self.last_issue}"
        self.last_issue = now
        self.retire(now)
        tr = BulkTransfer(now, self.cycles(bytes_), bytes_)  # issue, cycles, bytes
        self.pending.append(tr)
        origin = self._origin(len(self.pending) - 1)
        tr.plan(origin, *self.busy.serve(origin, tr.cycles), self.latency)
        return tr

    def retire(self, now: int) -> None:
        """Forget bulk transfers and demand intervals that can change nothing any more."""
        while self.pending and self.pending[0].finish <= now:
            self.retired.append(self.pending.pop(0))
        self.busy.prune(self.pending[0].issue if self.pending else now)

    def _origin(self, i: int) -> int:
        """First cycle pending transfer ``i`` may move: issued, its predecessor finished, an
        engine free (the one of the transfer ``engines`` before it, when that has arrived)."""
        prev = self.pending[i - 1].finish if i else self.retired[-1].finish if self.retired else 0
        back = i - self.engines
        engine = self.pending[back].arrival if back >= 0 else \
            self.retired[back].arrival if -back <= len(self.retired) else 0
        return max(self.pending[i].issue, prev, engine)

    def _replan(self, a: int, b: int) -> None:
        """Push pending bulk transfers past a new demand interval ``[a, b)``. Demand is
        first come, first served, so no other demand interval lies after ``a``: a transfer
        in service at ``a`` loses ``b - a`` cycles, one due to start in ``[a, b)`` starts
        at ``b``, and one whose origin moves (its predecessor or engine now frees later,
        at or after ``b``) runs from its new origin undisturbed."""
        for i, tr in enumerate(self.pending):
            origin = self._origin(i)
            if origin != tr.origin:
                tr.plan(origin, origin, origin + tr.cycles, self.latency)
            elif tr.finish <= a:
                continue
            elif tr.start >= a:
                if tr.start < b:
                    tr.plan(origin, b, b + tr.cycles, self.latency)
            else:
                tr.plan(origin, tr.start, tr.finish + b - a, self.latency)

    # --- the state protocol (``Periodic``) -----------------------------------------------

    def relative(self, now: int) -> tuple:
        """(A retired transfer has finished by ``now``: only its arrival may lie ahead.)"""
        return (self.demand_free - now if self.demand_free > now else 0,
                tuple([tr.arrival - now if tr.arrival > now else 0 for tr in self.retired]),
                tuple([t - now if t > now else 0  # pending transfers: four cycles each
                       for tr in self.pending for t in (tr.start, tr.finish, tr.arrival, tr.origin)]),
                tuple([(a - now, b - now) for a, b in self.busy.tail(now)]))

    def skip(self, since: int, now: int, period) -> None:
        """The DRAM ``period.times`` periods on: every cycle after ``now`` moved on, those of
        the bulk transfers not yet arrived too (the loader holds the same objects)."""
        by = period.times * period.cycles
        if self.demand_free > now:
            self.demand_free += by
        for tr in chain(self.retired, self.pending):
            tr.shift(now, by)
        self.busy.shift(now, by)


class WeightBuffer(Periodic):
    """LRU residency of weight tiles with pinning; logs occupancy changes. Keys are tuples
    whose last element is the tile index (``prefix + (j,)``)."""

    def __init__(self, capacity_bytes: int, trace):
        """``trace``: where the bytes held are recorded (``speedsim.sim.tables.Trace``)."""
        self.capacity = capacity_bytes
        self.resident: OrderedDict[tuple, int] = OrderedDict()
        self.pins: dict[tuple, int] = {}
        self.used = 0
        self._trace = trace
        self._journal: list[tuple] | None = None  # (key, bytes or None: a release, cycle)

    def acquire(self, key: tuple, bytes_: int, cycle: int) -> bool:
        """Pin tile ``key`` at ``cycle``; True when it was resident (a hit, nothing to fetch)."""
        self.pins[key] = self.pins.get(key, 0) + 1
        if self._journal is not None:
            self._journal.append((key, bytes_, cycle))
        if key in self.resident:
            self.resident.move_to_end(key)
            return True
        freed = self._make_room(bytes_, cycle) if self.used + bytes_ > self.capacity else 0
        self.resident[key] = bytes_
        self.used += bytes_
        self._trace.change(cycle, bytes_ - freed)  # the evictions and the fill, at one cycle
        assert self.used <= self.capacity, \
            f"weight buffer over capacity: {self.used} > {self.capacity} bytes at cycle {cycle}"
        return False

    def release(self, key: tuple) -> None:
        if self._journal is not None:
            self._journal.append((key, None, 0))
        n = self.pins[key] = self.pins[key] - 1
        if not n:
            del self.pins[key]

    def first_resident(self, prefix: tuple, first: int) -> int | None:
        """The lowest index ``j >= first`` whose tile ``prefix + (j,)`` is resident, or None."""
        return min((k[-1] for k in self.resident if k[-1] >= first and k[:-1] == prefix), default=None)

    # --- the state protocol (``speedsim.sim.skipper``) --------------------------------------

    def mark(self, it) -> int:
        """Journal the calls from here on (the skipper replays them); where they begin."""
        self._journal = [] if self._journal is None else self._journal
        return len(self._journal)

    def forget(self) -> None:
        """Stop journalling (the stretch that marked is over)."""
        self._journal = None

    def skip(self, since: int, now: int, period) -> None:
        """Replay the calls journalled since ``since`` ``period.times`` more times, each
        ``period.tiles`` tile indices and ``period.cycles`` cycles on, as tile-by-tile play
        would make them; once the buffer's state relative to the run repeats (it holds only
        the run's newest tiles), the remaining periods rename its keys instead."""
        calls, self._journal = self._journal[since:], None
        if calls:
            self._replay_periods(calls, period)
        self._journal = []

    def _replay_periods(self, calls: list[tuple], period) -> None:
        prefix, count = calls[0][0][:-1], len(self.resident)
        before = self._relative_to(prefix, 0)
        for t in range(1, period.times + 1):
            since = len(self._trace.pts)
            for key, bytes_, cycle in calls:
                moved = key[:-1] + (key[-1] + t * period.tiles,)
                if bytes_ is None:
                    self.release(moved)
                else:
                    self.acquire(moved, bytes_, cycle + t * period.cycles)
            grew, count = len(self.resident) != count, len(self.resident)
            state = None if grew else self._relative_to(prefix, t * period.tiles)
            if state is not None and state == before:
                self._rename((period.times - t) * period.tiles)
                self._trace.repeat(since, period.cycles, period.times - t)
                return
            before = state

    def _relative_to(self, prefix: tuple, base: int) -> tuple | None:
        """Resident tiles and pins (all resident), indices relative to ``base``, when all
        are ``prefix``'s (the least recently used, most often another's, is looked at first)."""
        if next(iter(self.resident), prefix + (0,))[:-1] != prefix:
            return None
        tiles = [(k[-1] - base, b) for k, b in self.resident.items() if k[:-1] == prefix]
        if len(tiles) < len(self.resident):
            return None
        return tiles, sorted([(k[-1] - base, n) for k, n in self.pins.items()])

    def _rename(self, by: int) -> None:
        """Every tile ``by`` indices on (all are the run's: its state repeated)."""
        self.resident = OrderedDict([((*k[:-1], k[-1] + by), b) for k, b in self.resident.items()])
        self.pins = {(*k[:-1], k[-1] + by): n for k, n in self.pins.items()}

    def _make_room(self, bytes_: int, cycle: int) -> int:
        """Evict unpinned tiles, least recently used first, until ``bytes_`` fit; the bytes freed."""
        if bytes_ > self.capacity:
            raise ValueError(f"weight tile of {bytes_} bytes exceeds the buffer ({self.capacity} bytes)")
        freed = 0
        while self.used + bytes_ > self.capacity:
            old = next((k for k in self.resident if k not in self.pins), None)  # LRU first
            if old is None:
                raise AssertionError(f"weight buffer: pinned tiles leave no room for {bytes_} bytes "
                                     f"at cycle {cycle}")
            size = self.resident.pop(old)
            self.used -= size
            freed += size
        return freed

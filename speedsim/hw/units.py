"""Accelerator units: the DRAM with its DMA engines, the weight buffer, the parameter cache.

Each unit is plain arithmetic on integer cycles, called by the replay engine's
SimPy processes at the current cycle (``now``), in time order; there is no
module-level state.

**DRAM: two priority classes, as memory controllers schedule them.** The DRAM
moves ``bytes_per_cycle`` (peak × efficiency, all channels interleaved) and
data arrives ``latency`` cycles after its last byte moved (the latency is
pipelined: it holds no bandwidth).

* *Demand* transfers (KV reads, spilled activations, parameters, stores: what a
  unit waits for or must write back) are served first come, first served and
  pre-empt bulk transfers: a demand transfer issued at ``t`` starts at
  ``max(t, end of the previous demand transfer)``, whatever bulk is moving, so a
  512-byte load during a 45 MB weight stream costs its own bytes plus latency.
* *Bulk* transfers (weight tiles fetched ahead) are served in issue order, one
  at a time, on the cycles no demand transfer uses: a bulk transfer needs
  ``⌈bytes / bytes_per_cycle⌉`` such cycles. Each bulk transfer holds one of the
  ``dma.engines`` DMA engines from its issue until its data has arrived, so
  with one engine every weight tile pays the whole latency, with two the
  latency of one hides behind the data of the next.

A demand transfer booked while bulk transfers are pending pushes their finish
(and arrival) cycles back by the cycles it takes from them; ``BulkTransfer``
records are therefore final only once their arrival cycle has passed, and the
engine re-reads them after waking. Invariant: at every cycle at most one
transfer moves data, and demand transfers never wait for bulk ones.

**Weight buffer.** Holds weight tiles keyed by ``(weight_key, tile index)``
with LRU replacement. A tile is pinned from its fetch until its compute ends;
only unpinned tiles are evicted. A tile still resident is not fetched again.
Every allocation asserts that resident bytes never exceed the capacity.

**Parameter cache.** The weight buffer's share for vector-unit parameters,
LRU by key, whole entries only.
"""

from __future__ import annotations

from array import array
from bisect import bisect_right
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from speedsim.config.hw import Hardware
from speedsim.hw.cost import transfer_cycles


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


class Dram:
    """DRAM with demand and bulk classes and the DMA engines of the bulk class."""

    def __init__(self, hw: Hardware):
        self.bytes_per_cycle = hw.dram_bytes_per_cycle
        self.latency = hw.dram_latency_cycles
        self.engines = hw.dma.engines
        self.demand_free = 0
        self.busy_starts: list[int] = []  # demand intervals [start, end), in time order
        self.busy_ends: list[int] = []
        self.busy_head = 0  # intervals before it can change nothing any more
        self.pending: list[BulkTransfer] = []  # bulk transfers not yet finished, in order
        self.arrivals: deque[int] = deque(maxlen=self.engines)  # of the last bulk transfers
        self.bytes_moved = 0
        self.last_issue = 0
        self.retired_finish = 0  # finish of the last bulk transfer retired
        self._cycles: dict[int, int] = {}

    def cycles(self, bytes_: int) -> int:
        """``transfer_cycles`` of ``bytes_`` (memoized: a run moves a few sizes, many times)."""
        hit = self._cycles.get(bytes_)
        if hit is None:
            hit = self._cycles[bytes_] = transfer_cycles(bytes_, self.bytes_per_cycle)
        return hit

    def _in_order(self, now: int) -> None:
        assert now >= self.last_issue, f"DRAM request at {now} after one at {self.last_issue}"
        self.last_issue = now

    def demand(self, now: int, bytes_: int) -> tuple[int, int, int]:
        """Book a demand transfer issued at ``now``: (start, end, arrival) cycles."""
        self._in_order(now)
        start = now if now > self.demand_free else self.demand_free
        end = self.demand_free = start + self.cycles(bytes_)
        self.bytes_moved += bytes_
        if end > start:
            if self.busy_ends and self.busy_ends[-1] == start:  # back to back: one interval
                self.busy_ends[-1] = end
            else:
                self.busy_starts.append(start)
                self.busy_ends.append(end)
            self._replan(start, end)
        return start, end, end + self.latency

    def bulk(self, now: int, bytes_: int) -> BulkTransfer:
        """Book a bulk transfer issued at ``now``; its cycles may still move (module docstring)."""
        self._in_order(now)
        self.retire(now)
        tr = BulkTransfer(now, self.cycles(bytes_), bytes_)  # issue, cycles, bytes
        self.bytes_moved += bytes_
        self.pending.append(tr)
        self._plan(len(self.pending) - 1)
        return tr

    def retire(self, now: int) -> None:
        """Forget bulk transfers and demand intervals that can change nothing any more."""
        while self.pending and self.pending[0].finish <= now:
            done = self.pending.pop(0)
            self.arrivals.append(done.arrival)
            self.retired_finish = done.finish
        horizon = self.pending[0].issue if self.pending else now  # where replanning begins
        self.busy_head = bisect_right(self.busy_ends, horizon, self.busy_head)
        if self.busy_head > 4096:  # drop the dead prefix now and then
            del self.busy_starts[:self.busy_head], self.busy_ends[:self.busy_head]
            self.busy_head = 0

    def _engine_free(self, i: int) -> int:
        """Cycle at which the engine for pending transfer ``i`` frees: the arrival of the
        transfer ``engines`` before it."""
        back = i - self.engines
        if back >= 0:
            return self.pending[back].arrival
        return self.arrivals[back] if -back <= len(self.arrivals) else 0

    def _origin(self, i: int) -> int:
        """First cycle pending transfer ``i`` may move: issued, its predecessor finished,
        an engine free."""
        prev = self.pending[i - 1].finish if i else self.retired_finish
        return max(self.pending[i].issue, prev, self._engine_free(i))

    def _plan(self, i: int) -> None:
        tr = self.pending[i]
        tr.origin = self._origin(i)
        tr.start, tr.finish = self._serve(tr.origin, tr.cycles)
        tr.arrival = tr.finish + self.latency

    def _serve(self, t: int, cycles: int) -> tuple[int, int]:
        """(first, last + 1) cycle of ``cycles`` bulk cycles from ``t`` on, around demand."""
        start = None
        starts, ends = self.busy_starts, self.busy_ends
        for k in range(bisect_right(ends, t, self.busy_head), len(ends)):
            a, b = starts[k], ends[k]
            if a >= t + cycles:
                break
            if a > t:
                start = t if start is None else start
                cycles -= a - t
            t = max(t, b)
        return (t if start is None else start), t + cycles

    def _replan(self, a: int, b: int) -> None:
        """Push pending bulk transfers past a new demand interval ``[a, b)``. Demand is
        first come, first served, so no other demand interval lies after ``a``: a transfer
        in service at ``a`` loses ``b - a`` cycles, one due to start in ``[a, b)`` starts
        at ``b``, and one whose origin moves (its predecessor or engine now frees later,
        at or after ``b``) runs from its new origin undisturbed."""
        for i, tr in enumerate(self.pending):
            origin = self._origin(i)
            if origin != tr.origin:
                tr.origin, tr.start, tr.finish = origin, origin, origin + tr.cycles
            elif tr.finish <= a:
                continue
            elif tr.start >= a:
                if tr.start < b:
                    tr.start, tr.finish = b, b + tr.cycles
            else:
                tr.finish += b - a
            tr.arrival = tr.finish + self.latency

    # --- periodic stretches: the state relative to now, and a shift of the future -------

    def _tail(self, now: int) -> range:
        """Indices of the demand intervals still running after ``now``."""
        k = len(self.busy_ends)
        while k > self.busy_head and self.busy_ends[k - 1] > now:
            k -= 1
        return range(k, len(self.busy_ends))

    def relative(self, now: int) -> tuple:
        """Everything that decides what the DRAM does after ``now``, relative to ``now`` and
        clipped at zero (a cycle already past constrains nothing). Every rule above is a max
        of sums of cycles, so two moments with equal ``relative`` states behave the same,
        shifted by the cycles between them."""
        def rel(t: int) -> int:
            return t - now if t > now else 0
        starts, ends = self.busy_starts, self.busy_ends
        return (rel(self.demand_free), rel(self.retired_finish),
                tuple([a - now if a > now else 0 for a in self.arrivals]),
                tuple([(rel(tr.start), rel(tr.finish), rel(tr.arrival), rel(tr.origin))
                       for tr in self.pending]),
                tuple([(rel(starts[k]), ends[k] - now) for k in self._tail(now)]))

    def shift_future(self, now: int, by: int, bytes_: int) -> None:
        """Move every cycle after ``now`` on by ``by`` (the DRAM as it is ``by`` cycles later
        in a periodic stretch that moved ``bytes_`` meanwhile); cycles up to ``now`` stay."""
        mv = lambda t: t + by if t > now else t
        self.demand_free, self.retired_finish = mv(self.demand_free), mv(self.retired_finish)
        self.arrivals = deque((mv(a) for a in self.arrivals), maxlen=self.engines)
        for tr in self.pending:
            tr.start, tr.finish, tr.arrival, tr.origin = map(mv, (tr.start, tr.finish, tr.arrival, tr.origin))
        tail = self._tail(now)
        moved = [(max(self.busy_starts[k], now) + by, self.busy_ends[k] + by) for k in tail]
        if tail:
            del self.busy_starts[tail.start + 1:], self.busy_ends[tail.start + 1:]
            if self.busy_starts[-1] < now:  # the part up to now stays where it was
                self.busy_ends[-1] = now
            else:
                self.busy_starts.pop(), self.busy_ends.pop()
        for a, b in moved:
            self.busy_starts.append(a)
            self.busy_ends.append(b)
        self.bytes_moved += bytes_


class WeightBuffer:
    """LRU residency of weight tiles with pinning; logs occupancy changes."""

    def __init__(self, capacity_bytes: int, occupancy: "Occupancy"):
        self.capacity = capacity_bytes
        self.resident: OrderedDict[Hashable, int] = OrderedDict()
        self.pins: dict[Hashable, int] = {}
        self.used = 0
        self._trace = occupancy.trace("weight")

    def acquire(self, key: Hashable, bytes_: int, cycle: int) -> bool:
        """Pin tile ``key`` at ``cycle``; True when it was resident (a hit, nothing to fetch)."""
        self.pins[key] = self.pins.get(key, 0) + 1
        if key in self.resident:
            self.resident.move_to_end(key)
            return True
        freed = self._make_room(bytes_, cycle)
        self.resident[key] = bytes_
        self.used += bytes_
        self._trace.change(cycle, bytes_ - freed)  # the evictions and the fill, at one cycle
        assert self.used <= self.capacity, \
            f"weight buffer over capacity: {self.used} > {self.capacity} bytes at cycle {cycle}"
        return False

    def may_stream(self, prefix: tuple, first: int, n: int, bytes_: int) -> bool:
        """True when tiles ``first`` … ``first + n - 1`` of ``prefix`` would all miss and
        acquiring them would cycle the whole buffer (``stream``'s precondition)."""
        if n * bytes_ < self.capacity + bytes_:
            return False
        return not any(k[:-1] == prefix and k[-1] >= first for k in self.resident)

    def stream(self, prefix: tuple, end: int, pinned: int, bytes_: int, cycle: int,
               issues: Sequence[int], levels: Sequence[int], then: Hashable | None = None) -> None:
        """The buffer after a run of misses of tiles ``prefix + (j,)`` up to ``end - 1``, each
        released once computed except the last ``pinned``: by LRU, every older unpinned
        tile has gone and the newest tiles that fit are resident. ``levels``: ``fill`` of
        the buffer before the run, the bytes held after each of its first misses, until
        only tiles of the run's size remain; ``issues``: the cycles those tiles were
        acquired at (``speedsim.hw.pipeline.RunResult.issues``). After that every miss
        leaves the total as it found it. ``then``: the key of another item's tile of the same
        size, acquired last, in place of tile ``end - 1``."""
        keep = min(end, self.capacity // bytes_)
        others = [k for k in self.pins if k[:-1] != prefix]
        assert not others, "a weight run streamed past another item's pinned tiles"
        others_held = self._trace.held - self.used  # the parameter cache
        assert len(levels) <= len(issues), "a weight run's fill outlasts the issues reported"
        for at, level in zip(issues, levels):
            self._trace.set(at, others_held + level)
        last = [prefix + (j,) for j in range(end - keep, end - (then is not None))]
        if then is not None:
            last.append(then)
        self.resident = OrderedDict((key, bytes_) for key in last)
        self.pins = dict.fromkeys(last[-pinned:], 1)
        self._trace.set(cycle, others_held + keep * bytes_)
        self.used = keep * bytes_

    def fill(self, bytes_: int) -> list[int]:
        """Bytes held after each of the first misses of a run of ``bytes_`` tiles, which evict,
        LRU first, the tiles resident before it (which may differ in size), up to the first
        miss after which only tiles of the run's size remain and the buffer is full (none
        when it is so already)."""
        sizes, used, levels = deque(self.resident.values()), self.used, []
        odd = sum(1 for b in sizes if b != bytes_)
        while odd or used + bytes_ <= self.capacity:
            while used + bytes_ > self.capacity and sizes:
                gone = sizes.popleft()
                used -= gone
                odd -= gone != bytes_
            sizes.append(bytes_)
            used += bytes_
            levels.append(used)
        return levels

    def release(self, key: Hashable) -> None:
        left = self.pins[key] - 1
        if left:
            self.pins[key] = left
        else:
            del self.pins[key]

    def _make_room(self, bytes_: int, cycle: int) -> int:
        """Evict unpinned tiles, least recently used first, until ``bytes_`` fit; the bytes freed."""
        if bytes_ > self.capacity:
            raise ValueError(f"weight tile of {bytes_} bytes exceeds the buffer ({self.capacity} bytes)")
        need = self.used + bytes_ - self.capacity
        resident, pins, freed = self.resident, self.pins, 0
        while need > 0:
            for old in resident:  # least recently used first; pinned tiles stay
                if old not in pins:
                    break
            else:
                raise AssertionError(f"weight buffer: pinned tiles leave no room for {bytes_} bytes "
                                     f"at cycle {cycle}")
            size = resident.pop(old)
            self.used -= size
            freed += size
            need -= size
        return freed


class ParamCache:
    """Resident vector-unit parameters: whole entries by key, LRU, within ``capacity_bytes``."""

    def __init__(self, capacity_bytes: int, occupancy: "Occupancy"):
        self.capacity = capacity_bytes
        self.entries: OrderedDict[Hashable, int] = OrderedDict()
        self.used = 0
        self._trace = occupancy.trace("weight")

    def lookup(self, key: Hashable, bytes_: int, cycle: int) -> bool:
        """True on a hit; on a miss the entry is made resident (evicting LRU ones)."""
        if key in self.entries:
            self.entries.move_to_end(key)
            return True
        freed = 0
        while self.used + bytes_ > self.capacity:
            size = self.entries.popitem(last=False)[1]
            self.used -= size
            freed += size
        self.entries[key] = bytes_
        self.used += bytes_
        self._trace.change(cycle, bytes_ - freed)
        return False


class Trace:
    """Bytes held by one buffer as change points: ``pts`` is a flat ``array('q')`` of
    cycle, bytes, cycle, bytes, …, one pair per cycle the total changed."""

    __slots__ = ("held", "pts")

    def __init__(self):
        self.held = 0
        self.pts = array("q")

    def change(self, cycle: int, delta: int) -> None:
        held = self.held = self.held + delta
        pts = self.pts
        if pts and pts[-2] >= cycle:  # several changes within one cycle: the last one counts
            pts[-1] = held
            if len(pts) > 2 and pts[-3] == held:
                del pts[-2:]
        elif not pts or pts[-1] != held:
            pts.extend((cycle, held))

    def set(self, cycle: int, held: int) -> None:
        self.change(cycle, held - self.held)

    def repeat(self, since: int, period: int, times: int) -> None:
        """Append ``times`` copies of the points from index ``since`` on, each ``period``
        cycles after the last."""
        pts = self.pts
        flat = pts[since:]
        if not flat:
            return
        if len(flat) * times <= 256:  # a few points: plain Python is faster
            cycles, held = flat[0::2].tolist(), flat[1::2].tolist()
            for m in range(1, times + 1):
                copy = array("q", flat)
                copy[0::2] = array("q", [c + period * m for c in cycles])
                pts.extend(copy)
            return
        chunk = np.array(flat, dtype=np.int64).reshape(-1, 2)
        shifts = period * np.arange(1, times + 1, dtype=np.int64)
        copies = np.repeat(chunk[None], times, axis=0)
        copies[:, :, 0] += shifts[:, None]
        pts.frombytes(copies.tobytes())


class Occupancy:
    """The ``Trace`` of each buffer, by name, created on first use."""

    def __init__(self):
        self.traces: dict[str, Trace] = {}

    def trace(self, name: str) -> Trace:
        t = self.traces.get(name)
        if t is None:
            t = self.traces[name] = Trace()
        return t

    @property
    def points(self) -> dict[str, array]:
        """The change points of every buffer that has any."""
        return {name: t.pts for name, t in self.traces.items() if t.pts}

    def marks(self) -> dict[str, int]:
        """Where each trace ends now (for ``repeat``)."""
        return {name: len(t.pts) for name, t in self.traces.items()}

    def repeat(self, since: dict[str, int], period: int, times: int) -> None:
        """Append ``times`` copies of the points recorded since ``since`` (a ``marks``), each
        ``period`` cycles after the last: the trace of a periodic stretch, without replaying it."""
        for name, t in self.traces.items():
            t.repeat(since.get(name, 0), period, times)

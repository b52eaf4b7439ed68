"""Accelerator units: DRAM channels, DMA engines, the weight buffer (LRU residency).

Each unit gets the SimPy ``env`` (for the current cycle), the config slice it
models and the sinks it logs to; there is no module-level state.

**DRAM sharing model.** ``channels`` independent channels, each with
``1/channels`` of the effective bandwidth (peak × efficiency). Addresses are
interleaved: a transfer of B bytes is cut into ``interleave_bytes`` granules
that go to consecutive channels (a rotating start channel carries on from the
previous transfer), so a large transfer uses every channel and small
concurrent ones spread out. Each channel is a non-preemptive server whose
bookings are a calendar of busy intervals (``Calendar``): a transfer's share
of a channel takes the earliest gap, at or after its issue cycle, that holds
it whole. Requests in time order make this first come, first served; a
request booked early for a later cycle does not block an earlier one that
fits before it. A request costs O(channels) arithmetic and no SimPy events. A transfer's data has arrived ``latency`` cycles after its last
channel finished; latency is pipelined (it does not hold a channel). So one
transfer alone costs ``latency + ⌈B / effective bytes per cycle⌉`` (one
channel); concurrent transfers queue on the channels they share.

**DMA engines.** ``engines`` transfers may be in flight at once; a transfer
holds an engine from issue until its data has arrived (latency included), so
with one engine every transfer pays the full latency, with two or more the
latency of one hides behind the data of another. A transfer issued while all
engines are busy starts when the earliest one frees.

**Weight buffer.** Holds weight tiles keyed by ``(weight_key, tile index)``
with LRU replacement. A tile is pinned from its fetch until its compute ends;
only unpinned tiles are evicted. A tile still resident is not fetched again.
Every allocation asserts that resident bytes never exceed the capacity.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from typing import Hashable

import numpy as np

from simpy import Environment

from speedsim.config.hw import Hardware


class Calendar:
    """Busy intervals of one server (a DRAM channel, a DMA engine), kept sorted.

    A request issued at cycle t takes the earliest free gap at or after t that
    holds it whole (no pre-emption). Requests may arrive out of time order (a
    unit may book a transfer it will issue later before another unit books
    an earlier one); the earlier one still goes first when it fits before.
    Adjacent intervals are merged, so a back-to-back stream stays one interval.
    """

    __slots__ = ("starts", "ends")

    def __init__(self):
        self.starts = array("q")  # int64 cycles: a long run books millions of intervals
        self.ends = array("q")

    def earliest(self, t: int, duration: int) -> int:
        """First cycle >= t at which the server is free for ``duration`` cycles."""
        starts, ends = self.starts, self.ends
        if not ends or ends[-1] <= t:  # nothing booked at or after t
            return t
        i = bisect_right(ends, t)
        while i < len(starts):
            if starts[i] >= t + duration:
                return t
            if ends[i] > t:
                t = ends[i]
            i += 1
        return t

    def book(self, start: int, end: int) -> None:
        if end <= start:
            return
        starts, ends = self.starts, self.ends
        if not ends or ends[-1] < start:  # the common case: after everything booked
            starts.append(start)
            ends.append(end)
            return
        i = bisect_right(starts, start)
        if i and ends[i - 1] == start:  # extends the previous interval
            ends[i - 1] = end
            if i < len(starts) and starts[i] == end:
                ends[i - 1] = ends.pop(i)
                starts.pop(i)
            return
        if i < len(starts) and starts[i] == end:  # extends the next interval backwards
            starts[i] = start
            return
        starts.insert(i, start)
        ends.insert(i, end)

    def free_at(self) -> int:
        return self.ends[-1] if self.ends else 0

    def horizon(self, h: int) -> int:
        """Index of the first interval a request issued at or after ``h`` can touch: those
        before it ended before ``h`` and never change again."""
        return bisect_left(self.ends, h)

    def view(self, h: int, base: int) -> tuple[int, int | None, tuple]:
        """(``horizon(h)``, true start of the first interval from there, the intervals from
        there clipped to start no earlier than ``h`` and shifted by ``-base``). Requests at or
        after ``h`` cannot tell two calendars with equal clipped views apart."""
        starts, ends = self.starts, self.ends
        n = len(ends)
        if not n or ends[-1] < h:
            return n, None, ()
        i = bisect_left(ends, h)
        tail = []
        for s, e in zip(starts[i:], ends[i:]):
            tail.append((s if s > h else h) - base)
            tail.append(e - base)
        return i, starts[i], tuple(tail)

    def repeat(self, i_prev: int, i_now: int, shift: int, times: int, keep_first_start: bool) -> None:
        """Play ``times`` more periods of a periodic booking pattern, each ``shift`` cycles on.

        One period retired the intervals ``[i_prev, i_now)`` and left the rest (from
        ``i_now``) as the last period's, shifted by ``shift``; so every further period
        retires those intervals shifted again, and the rest moves on by ``times * shift``
        (keeping its first start when that interval has been growing through the periods).
        """
        starts, ends = self.starts, self.ends
        tail_s, tail_e = starts[i_now:], ends[i_now:]
        del starts[i_now:], ends[i_now:]
        if i_now > i_prev:
            if times * (i_now - i_prev) <= 32:
                for col in (starts, ends):
                    retired = col[i_prev:i_now]
                    col.extend([x + k * shift for k in range(1, times + 1) for x in retired])
            else:
                steps = np.arange(1, times + 1, dtype=np.int64)[:, None] * shift
                for col in (starts, ends):
                    retired = np.array(col[i_prev:i_now], dtype=np.int64)
                    col.frombytes((steps + retired).tobytes())
        total = times * shift
        for k in range(len(tail_s)):
            starts.append(tail_s[k] if k == 0 and keep_first_start else tail_s[k] + total)
            ends.append(tail_e[k] + total)


class Dram:
    """Interleaved DRAM channels, each a non-preemptive server (see module docstring)."""

    def __init__(self, env: Environment, hw: Hardware):
        self.env = env
        self.channels = hw.dram.channels
        self.granule = hw.dram.interleave_bytes
        self.bytes_per_cycle_per_channel = hw.dram_bytes_per_cycle / self.channels
        self.latency_cycles = hw.dram_latency_cycles
        self.calendars = [Calendar() for _ in range(self.channels)]
        self._next_channel = 0
        self._share_cache: dict[tuple[int, int], tuple[tuple[int, int], ...]] = {}
        self.bytes_moved = 0

    @property
    def free_at(self) -> list[int]:
        """Per channel, the cycle after its last booked interval."""
        return [c.free_at() for c in self.calendars]

    def _per_channel_bytes(self, bytes_: int) -> list[int]:
        ch, g = self.channels, self.granule
        if ch == 1:
            return [bytes_]
        granules = -(-bytes_ // g)
        base, extra = divmod(granules, ch)
        out = [0] * ch
        first = self._next_channel
        for i in range(ch):
            out[(first + i) % ch] = (base + (1 if i < extra else 0)) * g
        out[(first + granules - 1) % ch] -= granules * g - bytes_
        return out

    def _shares(self, bytes_: int) -> tuple[tuple[int, int], ...]:
        """(channel, busy cycles) of each channel ``bytes_`` touches, from the current start
        channel; memoised, since a run moves the same few transfer sizes over and over."""
        key = (bytes_, self._next_channel)
        hit = self._share_cache.get(key)
        if hit is None:
            bpc = self.bytes_per_cycle_per_channel
            out = []
            for c, b in enumerate(self._per_channel_bytes(bytes_)):
                if b > 0:
                    x = b / bpc
                    dur = int(x)
                    if x - dur > 1e-9:
                        dur += 1
                    out.append((c, dur))
            hit = self._share_cache[key] = tuple(out)
        return hit

    def plan(self, issue_cycle: int, bytes_: int) -> tuple[list[tuple[int, int, int]], int, int]:
        """Where ``bytes_`` issued at ``issue_cycle`` would go, unbooked.

        Returns ([(channel, start, end)], first data cycle, arrival cycle).
        """
        cals = self.calendars
        out = []
        first, last = None, 0
        for c, dur in self._shares(bytes_):
            cal = cals[c]
            ends = cal.ends
            start = issue_cycle if not ends or ends[-1] <= issue_cycle else cal.earliest(issue_cycle, dur)
            end = start + dur
            out.append((c, start, end))
            if first is None or start < first:
                first = start
            if end > last:
                last = end
        return out, first, last + self.latency_cycles

    def commit(self, plan: list[tuple[int, int, int]], bytes_: int) -> None:
        cals = self.calendars
        for c, start, end in plan:
            cal = cals[c]
            ends = cal.ends
            if ends and ends[-1] >= start or end <= start:
                cal.book(start, end)
            else:  # the common case, inlined: after everything booked
                cal.starts.append(start)
                ends.append(end)
        if self.channels > 1:
            self._next_channel = (self._next_channel + -(-bytes_ // self.granule)) % self.channels
        self.bytes_moved += bytes_

    def reserve(self, issue_cycle: int, bytes_: int) -> tuple[int, int]:
        """Book ``bytes_`` issued at ``issue_cycle``; returns (first data cycle, arrival cycle)."""
        if bytes_ <= 0:
            return issue_cycle, issue_cycle
        plan, first, arrival = self.plan(issue_cycle, bytes_)
        self.commit(plan, bytes_)
        return first, arrival


class Dma:
    """``engines`` DMA engines in front of the DRAM (see module docstring)."""

    def __init__(self, env: Environment, hw: Hardware, dram: Dram):
        self.env = env
        self.dram = dram
        self.engines = [Calendar() for _ in range(hw.dma.engines)]

    @property
    def free_at(self) -> list[int]:
        return [e.free_at() for e in self.engines]

    def transfer(self, issue_cycle: int, bytes_: int) -> tuple[int, int]:
        """Move ``bytes_`` from ``issue_cycle`` on; returns (start cycle, arrival cycle).

        The transfer starts at the first cycle >= ``issue_cycle`` at which some
        engine is free from the start until the data has arrived.
        """
        if bytes_ <= 0:
            return issue_cycle, issue_cycle
        t = issue_cycle
        dram = self.dram
        while True:
            plan, _, done = dram.plan(t, bytes_)
            for engine in self.engines:
                ends = engine.ends
                if not ends or ends[-1] <= t or engine.earliest(t, done - t) == t:
                    engine.book(t, done)
                    dram.commit(plan, bytes_)
                    return t, done
            t = min(engine.earliest(t, done - t) for engine in self.engines)


class WeightBuffer:
    """LRU residency of weight tiles with pinning; logs occupancy changes."""

    def __init__(self, env: Environment, capacity_bytes: int, occupancy: list):
        self.env = env
        self.capacity = capacity_bytes
        self.resident: OrderedDict[Hashable, int] = OrderedDict()
        self.pins: dict[Hashable, int] = {}
        self.used = 0
        self._occupancy = occupancy  # sink of (buffer, cycle, delta_bytes)

    def acquire(self, key: Hashable, bytes_: int, cycle: int) -> bool:
        """Pin tile ``key`` at ``cycle``; True when it was resident (a hit, nothing to fetch)."""
        self.pins[key] = self.pins.get(key, 0) + 1
        if key in self.resident:
            self.resident.move_to_end(key)
            return True
        self._make_room(bytes_, cycle)
        self.resident[key] = bytes_
        self.used += bytes_
        self._occupancy.append(("weight", cycle, bytes_))
        assert self.used <= self.capacity, \
            f"weight buffer over capacity: {self.used} > {self.capacity} bytes at cycle {cycle}"
        return False

    def release(self, key: Hashable) -> None:
        left = self.pins[key] - 1
        if left:
            self.pins[key] = left
        else:
            del self.pins[key]

    def _make_room(self, bytes_: int, cycle: int) -> None:
        if bytes_ > self.capacity:
            raise ValueError(f"weight tile of {bytes_} bytes exceeds the buffer ({self.capacity} bytes)")
        need = self.used + bytes_ - self.capacity
        if need <= 0:
            return
        resident, pins = self.resident, self.pins
        while need > 0:
            for old in resident:  # least recently used first; pinned tiles stay
                if old not in pins:
                    break
            else:
                raise AssertionError(f"weight buffer: pinned tiles leave no room for {bytes_} bytes "
                                     f"at cycle {cycle}")
            size = resident.pop(old)
            self.used -= size
            self._occupancy.append(("weight", cycle, -size))
            need -= size

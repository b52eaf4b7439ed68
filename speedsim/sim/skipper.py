"""One period skipper for any run of tiles: play in arithmetic, skip whole periods.

While no other unit can act (each waits for an item that finishes later), a
unit's tiles are played without SimPy events (``Stretch``), booking the same
transfers at the same cycles as tile-by-tile steps would, through the same parts
(nothing else acts meanwhile, so an arrival read when its tile is next is final).

Inside a stretch, before each tile ``k`` at cycle ``now``, the skipper takes the
*relative state* of every stateful part (the state protocol
``speedsim.hw.units.Periodic``: DRAM, weight buffer, loaders, occupancy, log) and
where each loader's cursor stands relative to ``k``. Every rule of the model is a
max of sums of cycles, so when that state repeats ``p`` tiles and ``P`` cycles
after an earlier moment ``k0``, and the tiles from ``k0`` on repeat with period
``p``, the next ``p`` tiles do what the last ``p`` did, ``P`` cycles later — for
as long as:

* the tiles keep repeating and each computes for some cycles, and the bytes of the
  tiles the loaders issue meanwhile too (``cost.TileShapes.ends``, each loader's ``room``);
* no other unit can act: the periods end by the horizon;
* every weight tile the periods issue misses (the loader's state counts hits,
  so it repeats only over periods without one; ``WeightLoader.room`` checks the
  buffer for the tiles ahead);
* the item's log rows were there before the period and their end moved in it.

Then ``m`` whole periods are skipped at once: every part's ``skip`` moves it on
as ``m`` more periods would (DRAM cycles after ``now`` shifted, transfers and
occupancy points repeated, tiles in flight renamed, buffer calls replayed until
the buffer's own relative state repeats, then renamed). Nothing is approximated:
the suite checks equality with tile-by-tile replay and ``speedsim.sim.reference``.
"""

from __future__ import annotations

from typing import NamedTuple

from speedsim.contracts.workitem import WorkItem
from speedsim.hw.cost import Tile

# shorter remaining stretches are just played, and a jump by another period than the tiles'
# own skips at least this many tiles: two visits and a jump cost about what playing 10 to 15
# tiles costs, and a short jump clears the moments the tiles' own period is found from
MIN_RUN = 16
MAX_PERIOD = 4  # earlier moments of one state kept, i.e. periods tried


class Period(NamedTuple):
    """``times`` repetitions of the last ``tiles`` tiles (``cycles`` cycles) of ``item``, from
    its tile ``at`` on; its weight and stream bytes repeat up to ``issue_ends``; ``carries``:
    whether the period's tiles have weight, stream bytes."""

    item: WorkItem
    at: int
    tiles: int
    cycles: int
    times: int
    issue_ends: tuple[int, int]
    carries: tuple[bool, bool]


class Stretch:
    """Tiles ``j``… of item ``it`` on ``unit`` played in arithmetic up to ``horizon`` (the
    first cycle another unit may act), whole periods skipped (module docstring)."""

    def __init__(self, replay, unit: str, it: WorkItem, tiles: list[Tile], horizon: float):
        self.it, self.tiles, self.horizon, self.shapes = it, tiles, horizon, replay.shapes
        self.weights, self.stream = replay.weights, replay.streams[unit]
        # state -> earlier moments of it: (tile, cycle, the parts' ``mark``s)
        self.parts, self.relatives, self.seen = replay.parts[unit], replay.relatives[unit], {}
        self.pattern = self.shapes.pattern(tiles)

    def play(self, j: int, now: int) -> tuple[int, int, int]:
        """Play from tile ``j`` at ``now``: (the next tile, ``j`` if none could be played; the
        last tile's compute end; the first's compute start)."""
        k, first, n = j, -1, len(self.tiles)
        try:
            while k < n:
                if first >= 0 and n - k >= MIN_RUN:
                    k, now = self._visit(k, now)
                    if k == n:
                        break
                start = self._start(k, now)
                if start is None:
                    break
                first = start if first < 0 else first
                now = start + self.tiles[k].cycles
                self._done(k, now)
                k += 1
        finally:
            for part in self.parts if n - j > MIN_RUN else ():  # (shorter: never visited)
                part.forget()
        return k, now, first

    def _start(self, k: int, now: int) -> int | None:
        """When tile ``k`` starts computing (its bytes on chip), or None if it cannot be
        played here: its weights not issued yet, or it would end after the horizon."""
        t, at = self.tiles[k], now
        if t.stream_bytes:
            at = self.stream.arrival(self.it, k)
        if t.weight_bytes:
            weights = self.weights.arrival(self.it, k)
            if weights is None:
                return None
            at = weights if weights > at else at
        start = now if now > at else at
        return None if start + t.cycles > self.horizon else start

    def _done(self, k: int, now: int) -> None:
        """What the end of tile ``k`` does: its slots freed."""
        t = self.tiles[k]
        if t.weight_bytes:
            self.weights.release(self.it, k, now)
        if t.stream_bytes:
            self.stream.release(self.it, k, t.stream_bytes, now)

    def _visit(self, k: int, now: int) -> tuple[int, int]:
        """Before tile ``k`` at ``now``: skip whole periods from an earlier moment of the same
        state and phase in the tiles' own period (the latest first), else remember this one."""
        key = (k % self.pattern, self.weights.ahead(self.it, k), self.stream.ahead(self.it, k),
               tuple([relative(now) for relative in self.relatives]))
        earlier = self.seen.setdefault(key, [])
        for k0, t0, marks in earlier[::-1]:  # the shortest period first
            jumped = self._jump(k, now, k0, t0, marks)
            if jumped is not None:
                return jumped
        earlier.append((k, now, [part.mark(self.it) for part in self.parts]))
        del earlier[:-MAX_PERIOD]
        return k, now

    def _jump(self, k: int, now: int, k0: int, t0: int, marks: list) -> tuple[int, int] | None:
        p, cycles = k - k0, now - t0
        end, issue_ends, carries = self.shapes.ends(self.tiles, k0, p)
        times = (end - k) // p if cycles > 0 else 0
        if times and self.horizon != float("inf"):
            times = min(times, int((self.horizon - now) // cycles))
        least = p if p == self.pattern else MIN_RUN
        if times < 1 or times * p < least:
            return None
        period = Period(self.it, k, p, cycles, times, issue_ends, carries)
        for part, since in zip(self.parts, marks):
            times = part.room(since, period)  # never more than ``period.times``
            if times < period.times:
                if times < 1 or times * p < least:
                    return None
                period = period._replace(times=times)
        for part, since in zip(self.parts, marks):
            part.skip(since, now, period)
        self.seen.clear()
        return k + period.times * p, now + period.times * cycles

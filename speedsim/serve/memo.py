"""What one serving iteration costs: replayed on the engine, or taken from a memo.

Replay. An iteration's work items (``speedsim.serve.iteration.work_items``)
are replayed twice back to back on the engine's public entry
(``speedsim.sim.engine.replay``), the second copy waiting for the first as
the next iteration waits for this one; the iteration's cost is the second
copy's: its cycles from the first copy's end to the second's, its dynamic
energy the second copy's items' (``speedsim.metrics.energy``). So a weight
tile still resident, or a first tile already loading, at the boundary between
two iterations counts as it would in one long run, which a lone replay of
the iteration (cold buffers, nothing loading) would miss.

Memo. A 7B serving run has thousands of iterations; most repeat the structure
of an earlier one (``iteration.skeleton``: the parts and the row patterns in
each) with a few more or fewer requests per pattern (the counts n_i) and the
requests a little further along (their mean base x̄: KV or prompt length). The
cost is read from replays of the same structure at an *anchor* (every count
and x rounded down to its grid point a_i, x_lo; every group at one base) and a
first-order interpolation along each axis:

    cost ≈ c(a, x_lo) + Σ_i (n_i − a_i)/s_i · (c(a + s_i e_i, x_lo) − c(a, x_lo))
                      + (x̄ − x_lo)/(x_hi − x_lo) · (c(a, x_hi) − c(a, x_lo)),

each term replayed once (only along the axes where the value is off its grid
point) and kept. Grids: x at 8 points per octave (spacing 2^(⌊log2 x⌋−3), 1
below 16), counts at multiples of one spacing per part, 2^(⌊log2 Σn⌋−2) for Σn rows
in the part (``count_anchor``). A decode
step's weights are fixed and its KV reads and activations grow linearly in the
positions and the rows, so on memory-bound hardware the interpolation is nearly
exact; what it misses is curvature (a GEMM's tiles filling in steps), cross
terms between axes, the spread of the requests' KV lengths around their mean (a
stacked attention GEMM is sized by the longest) and, for prefill, the quadratic
part of attention. ``benchmarks/bench_serve.py`` measures the error against
replaying every iteration (``exact``) on the shipped traffic examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor, log2

import numpy as np

from speedsim.config.hw import Hardware
from speedsim.metrics.energy import per_item_energy_j
from speedsim.serve.iteration import Iteration, RowSource, bases, build, skeleton, work_items
from speedsim.sim.engine import replay

GRID_POINTS_PER_OCTAVE = 8  # of the mean base (KV or prompt length)
COUNT_POINTS_PER_OCTAVE = 4  # of the rows per pattern


@dataclass(frozen=True)
class Cost:
    cycles: float
    dynamic_j: float  # the iteration's items' dynamic energy (no static power)



class IterationCosts:
    """``costs(iteration) -> Cost``; ``exact``: replay every iteration (no memo)."""

    def __init__(self, hw: Hardware, rows: RowSource, exact: bool = False):
        self.hw, self.rows, self.exact = hw, rows, exact
        self._memo: dict[tuple, Cost] = {}
        self.replays = 0
        self.calls = 0

    def __call__(self, it: Iteration) -> Cost:
        self.calls += 1
        if self.exact:
            return self.replayed(it)
        shape, counts = skeleton(it)
        x = float(np.mean(bases(it)))
        anchor = count_anchor(shape, counts)
        lo, hi = grid_points(x, GRID_POINTS_PER_OCTAVE)
        a = tuple(g for g, _ in anchor)
        base = self._at(shape, a, lo)
        cycles, dynamic = base.cycles, base.dynamic_j
        for i, (n, (g, g_hi)) in enumerate(zip(counts, anchor)):
            if n != g:
                up = self._at(shape, a[:i] + (g_hi,) + a[i + 1:], lo)
                cycles, dynamic = _along(cycles, dynamic, base, up, (n - g) / (g_hi - g))
        if x != lo:
            cycles, dynamic = _along(cycles, dynamic, base, self._at(shape, a, hi),
                                     (x - lo) / (hi - lo))
        return Cost(cycles, dynamic)

    def _at(self, shape: tuple, counts: tuple[int, ...], base: int) -> Cost:
        key = (shape, counts, base)
        cost = self._memo.get(key)
        if cost is None:
            cost = self._memo[key] = self.replayed(build(shape, counts, base))
        return cost

    def replayed(self, it: Iteration) -> Cost:
        """The second of two back-to-back copies of ``it``, replayed (module docstring)."""
        self.replays += 1
        hw = self.hw
        items, sizes = work_items(it, self.rows, hw.attention_on, hw.attention_issue == "batched",
                                  copies=2)
        sim = replay(items, hw)
        first = sizes[0]
        end_first = int(sim.items["end_cycle"].to_numpy()[:first].max())
        parts = per_item_energy_j(items, sim.items, hw)
        dynamic = float(sum(v[first:].sum() for v in parts.values()))
        return Cost(float(sim.total_cycles - end_first), dynamic)


def count_anchor(shape: tuple, counts: tuple[int, ...]) -> list[tuple[int, int]]:
    """(grid point below, grid point above) of each count: multiples of one spacing per
    part, set by the part's rows, 2^(⌊log2 Σn⌋ − 2) (at least 1); a part whose counts
    all fall below its spacing keeps its largest exactly (a part never loses all rows)."""
    out, at = [], 0
    for part in shape:
        n = counts[at:at + len(part[3])]
        at += len(n)
        step = max(1, 2 ** (floor(log2(sum(n))) - int(log2(COUNT_POINTS_PER_OCTAVE))))
        grid = [((c // step) * step, (c // step) * step + step) for c in n]
        if not any(lo for lo, _ in grid):
            i = int(np.argmax(n))
            grid[i] = (n[i], n[i] + 1)
        out += grid
    return out


def _along(cycles: float, dynamic: float, base: Cost, up: Cost, w: float) -> tuple[float, float]:
    """One axis's term of the interpolation (module docstring) added."""
    return cycles + w * (up.cycles - base.cycles), dynamic + w * (up.dynamic_j - base.dynamic_j)


def grid_points(x: float, per_octave: int) -> tuple[int, int]:
    """The grid points lo <= x < hi around ``x`` >= 1: spacing 2^(⌊log2 x⌋ − log2
    per_octave), at least 1 (module docstring)."""
    step = max(1, 2 ** (floor(log2(max(x, 1.0))) - int(log2(per_octave))))
    lo = int(x // step) * step
    return lo, lo + step

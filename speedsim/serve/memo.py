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
of an earlier one (the same rows per op in each part: ``signature``) with the
requests a little further along (longer KV). The cost of an iteration is then
read from the costs of the same signature with every request at one base x
(``with_base``): x on a grid of 8 points per octave (spacing 2^(⌊log2 x⌋−3),
1 below 16), the cost at the iteration's mean base x̄ interpolated linearly
between the two grid points around it. A decode step's KV reads grow linearly
with the position, so the interpolation is exact for them; what the memo
misses is the spread of the requests' KV lengths around their mean (a stacked
attention GEMM is sized by the longest), and for prefill the quadratic part of
attention. ``benchmarks/bench_serve.py`` measures the error against replaying
every iteration (``exact``) on the shipped traffic examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor, log2

import numpy as np

from speedsim.config.hw import Hardware
from speedsim.metrics.energy import per_item_energy_j
from speedsim.serve.iteration import Iteration, RowSource, bases, signature, with_base, work_items
from speedsim.sim.engine import replay

GRID_POINTS_PER_OCTAVE = 8


@dataclass(frozen=True)
class Cost:
    cycles: float
    dynamic_j: float  # the iteration's items' dynamic energy (no static power)

    def at(self, other: "Cost", w: float) -> "Cost":
        """(1 − w)·self + w·other."""
        return Cost(self.cycles + w * (other.cycles - self.cycles),
                    self.dynamic_j + w * (other.dynamic_j - self.dynamic_j))


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
        x = float(np.mean(bases(it)))
        lo, hi = grid_points(x)
        sig = signature(it)
        low = self._at(sig, it, lo)
        return low if x == lo else low.at(self._at(sig, it, hi), (x - lo) / (hi - lo))

    def _at(self, sig: tuple, it: Iteration, base: int) -> Cost:
        key = (sig, base)
        cost = self._memo.get(key)
        if cost is None:
            cost = self._memo[key] = self.replayed(with_base(it, base))
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


def grid_points(x: float) -> tuple[int, int]:
    """The grid points lo <= x < hi around ``x`` >= 1 (module docstring)."""
    step = max(1, 2 ** (floor(log2(max(x, 1.0))) - 3))
    lo = int(x // step) * step
    return lo, lo + step

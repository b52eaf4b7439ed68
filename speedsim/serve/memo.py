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
requests a little further along (their mean base x̄: KV or prompt length). Such
an iteration is a point of a grid cell: every count between two grid points
a_i <= n_i < a_i + s_i, and x̄ between x_lo <= x̄ < x_hi. Its cost is the
piecewise-linear interpolation of the costs at the cell's corners, replayed
with every group at one base, over Kuhn's triangulation of the cell: with the
fractions w = (n_i − a_i)/s_i and (x̄ − x_lo)/(x_hi − x_lo) sorted w_1 >= … >= w_d,
the corners v_0 = the anchor (a, x_lo), v_k = v_{k−1} moved up along the k-th
axis, and

    cost = (1 − w_1)·c(v_0) + Σ_k (w_k − w_{k+1})·c(v_k) + w_d·c(v_d),

exact for a cost linear in the counts and x̄, continuous across cells, and
needing only the corners of non-zero weight (axes with equal fractions, as the
parts of one iteration usually have, move together). Each corner is replayed
once and kept. Grids: x at 8 points per octave (spacing 2^(⌊log2 x⌋−3), 1 below
16), counts at multiples of one spacing per part, 2^(⌊log2 Σn⌋−2) for Σn rows in
the part (``count_anchor``). A decode step's weights are fixed and its KV reads
and activations grow linearly in the positions and the rows, so on
memory-bound hardware the interpolation is nearly exact; what it misses is
curvature (a GEMM's tiles filling in steps), the spread of the requests' KV
lengths around their mean (a stacked attention GEMM is sized by the longest)
and, for several prompts prefilled together, their spread around the mean. A
prefill's cost steps with the tiles its prompt rows fill (64 and 72 tokens can
differ by 5 % on h100), so a prefill is never interpolated: it is replayed at
its exact counts and the mean prompt length rounded.
``benchmarks/bench_serve.py`` measures the error against replaying every
iteration (``exact``) on the shipped traffic examples.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import floor, log2

import numpy as np

from speedsim.config.hw import Hardware
from speedsim.hw.cost import matrix_section
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

    def __init__(self, hw: Hardware, rows: RowSource, exact: bool = False, audit: bool = False):
        self.hw, self.rows, self.exact = hw, rows, exact or audit
        self._memo: dict[tuple, Cost] = {}
        self.replays = 0
        self.corners = 0  # replays of grid-cell corners (the memo's own)
        self.calls = 0
        # audit: every iteration replayed (that drives the run) and the memo's answer kept
        # beside it, (replayed cycles, memo cycles) per iteration
        self.audited: list[tuple[float, float]] | None = [] if audit else None

    def start(self) -> None:
        """Count (and audit) from here: the next strategy's run, with the memo kept."""
        self.replays = self.corners = self.calls = 0
        self.audited = None if self.audited is None else []

    def __call__(self, it: Iteration) -> Cost:
        self.calls += 1
        if self.audited is not None:
            replayed = self.replayed(it)
            self.audited.append((replayed.cycles, self.memoized(it).cycles))
            return replayed
        return self.replayed(it) if self.exact else self.memoized(it)

    def audit_report(self) -> dict[str, float]:
        """The memo's error against the replay over the audited iterations: the largest and
        mean |relative error| of one iteration's cycles, and of their sum."""
        exact, memo = np.array(self.audited).T if self.audited else (np.ones(1), np.ones(1))
        rel = np.abs(memo / exact - 1)
        return {"iterations": len(self.audited or []), "corner_replays": self.corners,
                "max_abs_rel_error": float(rel.max()),
                "mean_abs_rel_error": float(rel.mean()),
                "total_rel_error": float(memo.sum() / exact.sum() - 1)}

    def memoized(self, it: Iteration) -> Cost:
        """The memo's cost of ``it`` (module docstring)."""
        shape, counts = skeleton(it)
        x = float(np.mean(bases(it)))
        if all(part[1] == "prefill" for part in shape):  # its cost steps with the prompt's tiles
            return self._at(shape, counts, round(x))
        anchor = within_tiles(shape, counts, count_anchor(shape, counts),
                              matrix_section(self.hw).rows)
        lo, hi = grid_points(x, GRID_POINTS_PER_OCTAVE)
        # the axes off their grid point: (fraction of the way to the next one, axis); the
        # vertices of the simplex that holds the point: each moves one more axis up
        off = sorted(((w, i) for i, w in enumerate(_fractions(counts, anchor) + [_ratio(x, lo, hi)])
                      if w > 0), reverse=True)
        vertex, base = [g for g, _ in anchor], lo
        cycles = dynamic = 0.0
        for k, weight in enumerate(_weights([w for w, _ in off])):
            if weight > 0:
                c = self._at(shape, tuple(vertex), base)
                cycles, dynamic = cycles + weight * c.cycles, dynamic + weight * c.dynamic_j
            if k < len(off):
                i = off[k][1]
                if i == len(counts):
                    base = hi
                else:
                    vertex[i] = anchor[i][1]
        return Cost(cycles, dynamic)

    def _at(self, shape: tuple, counts: tuple[int, ...], base: int) -> Cost:
        key = (shape, counts, base)
        cost = self._memo.get(key)
        if cost is None:
            self.corners += 1
            cost = self._memo[key] = self.replayed(build(shape, counts, base))
        return cost

    def replayed(self, it: Iteration) -> Cost:
        """The second of two back-to-back copies of ``it``, replayed (module docstring)."""
        self.replays += 1
        hw = self.hw
        items, sizes = work_items(it, self.rows, hw.placement, hw.attention_issue == "batched",
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


def within_tiles(shape: tuple, counts: tuple[int, ...], anchor: list[tuple[int, int]],
                 tile_rows: int) -> list[tuple[int, int]]:
    """``anchor`` with the counts of every part whose cell spans several tiles of rows made
    exact ((n, n + 1): no interpolation): a GEMM's cost jumps where its rows fill one more
    tile of the array (16 → 17 rows on h100: +20 % for a SPEED stage step), and the
    interpolation must not cross such a step."""
    out, at = list(anchor), 0
    for part in shape:
        k = len(part[3])
        width = [1] * k if part[0] == "speed" else [len(o) for o in part[3]]
        lo = sum(w * a for w, (a, _) in zip(width, anchor[at:at + k]))
        hi = sum(w * b for w, (_, b) in zip(width, anchor[at:at + k]))
        if (lo - 1) // tile_rows != (hi - 1) // tile_rows:
            out[at:at + k] = [(n, n + 1) for n in counts[at:at + k]]
        at += k
    return out


def _fractions(counts: tuple[int, ...], anchor: list[tuple[int, int]]) -> list[float]:
    return [_ratio(n, lo, hi) for n, (lo, hi) in zip(counts, anchor)]


def _ratio(x: float, lo: float, hi: float) -> float:
    return (x - lo) / (hi - lo)


def _weights(w: list[float]) -> list[float]:
    """Barycentric weights of the simplex vertices v_0 … v_d for fractions w_1 >= … >= w_d:
    1 − w_1, w_1 − w_2, …, w_d (Kuhn's triangulation of the grid cell)."""
    return [1.0 - w[0] if w else 1.0] + [a - b for a, b in zip(w, w[1:])] + ([w[-1]] if w else [])


def grid_points(x: float, per_octave: int) -> tuple[int, int]:
    """The grid points lo <= x < hi around ``x`` >= 1: spacing 2^(⌊log2 x⌋ − log2
    per_octave), at least 1 (module docstring)."""
    step = max(1, 2 ** (floor(log2(max(x, 1.0))) - int(log2(per_octave))))
    lo = int(x // step) * step
    return lo, lo + step

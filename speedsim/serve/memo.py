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
from speedsim.metrics.energy import per_item_energy_j
from speedsim.serve.iteration import (Iteration, Part, RowSource, SpeedStep, middle_layers,
                                      shortened, work_items)
from speedsim.serve.keys import BASE, ROWS, coordinates, corner
from speedsim.sim.engine import replay

GRID_POINTS_PER_OCTAVE = 8  # of the mean base (KV or prompt length)
COUNT_POINTS_PER_OCTAVE = 4  # of the groups of a decode wave
ROW_POINTS_PER_TILE = 4  # of rows: cells of a quarter tile of the array's rows
KEPT_LAYERS = 3  # repeated layers a corner's replay keeps; the rest are its last one's repeats
COMPOSED_TOLERANCE = 1e-3  # a structure whose composed cost misses its full replay by more: full


@dataclass(frozen=True)
class Cost:
    cycles: float
    dynamic_j: float  # the iteration's items' dynamic energy (no static power)



class IterationCosts:
    """``costs(iteration) -> Cost``; ``exact``: replay every iteration (no memo)."""

    def __init__(self, hw: Hardware, rows: RowSource, exact: bool = False, audit: bool = False,
                 depth=None):
        self.hw, self.rows, self.exact = hw, rows, exact or audit
        self.depth = depth  # scope -> its model's layer count; None: corners replayed whole
        self._memo: dict[tuple, Cost] = {}
        self._composable: dict[tuple, bool] = {}  # per structure: its composed cost checked
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
        """The memo's cost of ``it``: the sum of its parts' (module docstring)."""
        cycles = dynamic = 0.0
        for p in it:
            c = self.part(p)
            cycles, dynamic = cycles + c.cycles, dynamic + c.dynamic_j
        return Cost(cycles, dynamic)

    def part(self, p: Part) -> Cost:
        """The multilinear interpolation of the part's cost between the corners of its grid
        cell (``cell``), each corner's part (``keys.corner``) replayed once; a cell with a
        corner that no part has is taken at the part's own rows and groups, interpolated in
        the base alone."""
        structure, coords = coordinates(p)
        cells = [cell(kind, v, self.hw.array.rows) for kind, v in coords]
        if not all(self._valid(structure, c) for c in corners(cells)):
            cells = [(v, v, 0.0) if kind != BASE else c for (kind, v), c in zip(coords, cells)]
        cycles = dynamic = 0.0
        for point, weight in corners(cells):
            c = self._at(structure, point)
            cycles, dynamic = cycles + weight * c.cycles, dynamic + weight * c.dynamic_j
        return Cost(cycles, dynamic)

    def _valid(self, structure: tuple, point_weight: tuple) -> bool:
        point = point_weight[0]
        key = (structure, point)
        return key in self._memo or corner(structure, point) is not None

    def _at(self, structure: tuple, point: tuple[int, ...]) -> Cost:
        key = (structure, point)
        cost = self._memo.get(key)
        if cost is None:
            self.corners += 1
            cost = self._memo[key] = self.composed(structure, (corner(structure, point),))
        return cost

    def composed(self, shape: tuple, it: Iteration) -> Cost:
        """``it``'s cost from a replay of its first ``KEPT_LAYERS`` repeated layers per part
        (``shortened``), each further layer costing what the last kept one added (module
        docstring); the first corner of each structure is replayed whole as well, and the
        structure composed only if the two agree within ``COMPOSED_TOLERANCE``."""
        if self.depth is None or self._composable.get(shape) is False:
            return self.replayed(it)
        cost = self._composed(it)
        if shape not in self._composable:
            whole = self.replayed(it)
            self._composable[shape] = abs(cost.cycles / whole.cycles - 1) <= COMPOSED_TOLERANCE
            return whole
        return cost

    def _composed(self, it: Iteration) -> Cost:
        """1. the iteration with ``KEPT_LAYERS`` repeated layers per part, replayed as
        ``replayed`` does, the last copy's layers marked; 2. its cost plus, per part, the
        layers left out times what its last kept layer added (cycles from the previous
        layer's end to its own, the dynamic energy of its items)."""
        short = tuple(shortened(p, self.depth, KEPT_LAYERS) for p in it)
        marks: list[list[int]] = [[] for _ in it]
        cost, ends, energy = self._replay(short, marks)
        cycles, dynamic = cost.cycles, cost.dynamic_j
        done_by = np.maximum.accumulate(ends)  # every item up to this one has ended
        for p, q, m in zip(it, short, marks):
            left_out = len(middle_layers(p, self.depth)) - len(middle_layers(q, self.depth))
            if left_out:
                before, last = _middle_marks(q, self.depth, m)[-2:]
                cycles += left_out * float(done_by[last] - done_by[before])
                dynamic += left_out * float(energy[before + 1:last + 1].sum())
        return Cost(cycles, dynamic)

    def replayed(self, it: Iteration) -> Cost:
        """The second of two back-to-back copies of ``it``, replayed (module docstring)."""
        return self._replay(it)[0]

    def _replay(self, it: Iteration, marks: list[list[int]] | None = None):
        """(cost, every item's end cycle, every item's dynamic energy) of ``replayed``."""
        self.replays += 1
        hw = self.hw
        items, sizes = work_items(it, self.rows, hw.attention_on, hw.attention_issue == "batched",
                                  copies=2, marks=marks)
        sim = replay(items, hw)
        first = sizes[0]
        ends = sim.items["end_cycle"].to_numpy()
        end_first = int(ends[:first].max())
        energy = sum(per_item_energy_j(items, sim.items, hw).values())
        dynamic = float(energy[first:].sum())
        return Cost(float(sim.total_cycles - end_first), dynamic), ends, energy


def _middle_marks(p, depth, marks: list[int]) -> list[int]:
    """The marks (last item id per layer) of part ``p``'s repeated layers."""
    if isinstance(p, SpeedStep):
        return marks
    return [m for layer, m in zip(p.layers, marks) if 0 <= layer < depth(p.scope)]


def corners(cells: list[tuple[int, int, float]]) -> list[tuple[tuple[int, ...], float]]:
    """The corners of a grid cell with their multilinear weights: per coordinate (lo, hi,
    w), lo with weight 1 − w and hi with weight w (hi alone, w = 0, left out)."""
    out: list[tuple[tuple[int, ...], float]] = [((), 1.0)]
    for lo, hi, w in cells:
        out = [(pt + (lo,), wt * (1 - w)) for pt, wt in out] + \
              ([(pt + (hi,), wt * w) for pt, wt in out] if w > 0 else [])
    return out


def cell(kind: str, v: float, tile_rows: int) -> tuple[int, int, float]:
    """(grid point lo <= v, grid point hi > v, (v − lo) / (hi − lo)) of coordinate ``v`` of
    ``kind`` (``keys``): rows on points that never straddle a tile of the array's rows,
    counts and bases on an octave grid (module docstring)."""
    if kind == ROWS:
        lo, hi = row_points(int(v), tile_rows)
    else:
        lo, hi = grid_points(v, GRID_POINTS_PER_OCTAVE if kind == BASE else COUNT_POINTS_PER_OCTAVE)
    return (lo, hi, (v - lo) / (hi - lo)) if hi > lo else (lo, lo, 0.0)


def row_points(v: int, tile_rows: int) -> tuple[int, int]:
    """Grid points around ``v`` rows inside its tile of ``tile_rows`` rows (k·T + 1 .. (k
    + 1)·T): the tile's first row, then every ``ROW_POINTS_PER_TILE``-th, and its last
    row; (v, v) on a point (0 rows is one)."""
    if v <= 0:
        return v, v
    first = (v - 1) // tile_rows * tile_rows + 1
    last = first + tile_rows - 1
    step = max(1, tile_rows // ROW_POINTS_PER_TILE)
    lo = first + (v - first) // step * step
    return (v, v) if v == lo or v == last else (lo, min(lo + step, last))


def grid_points(x: float, per_octave: int) -> tuple[int, int]:
    """The grid points lo <= x < hi around ``x`` >= 1: spacing 2^(⌊log2 x⌋ − log2
    per_octave), at least 1 (module docstring)."""
    step = max(1, 2 ** (floor(log2(max(x, 1.0))) - int(log2(per_octave))))
    lo = int(x // step) * step
    return lo, lo + step

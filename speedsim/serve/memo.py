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

Memo. A 7B serving run has tens of thousands of iterations, and a replay of one
costs ~0.05 s; the memo replays a few hundred small parts and composes them:

1. **Parts add up, with their boundaries.** An iteration's parts run one after
   the other (each waits for the previous one's last items), so its cost is the
   sum of its parts' costs, each part costed alone as above (two copies of
   itself), plus, at each boundary between two parts of different structures
   (cyclic: the last part precedes the first, as the previous iteration's does),
   what the later part costs more after the earlier one than after a copy of
   itself: cycles (its first weights load during another tail: a 7B verify pass
   after a draft pass on h100 +3,072 cycles at one row, +16 k at 31; a draft pass
   after a verify −2,005) and dynamic energy (a weight resident after a copy of
   itself may be evicted by the other part: edge's head-only pass of early exit,
   −0.54 % of the energy per token when missed). Without them the memo's summed
   cycles ran 0.02 to 0.06 % short on draft-and-verify steps, which TTFT (mostly
   the wait for the running iteration) amplified to −1.2 %. A boundary is measured once per pair of
   *anchors* (``_anchor``: each part's coordinates on a coarse octave grid) as a
   replay of the pair with ``BOUNDARY_LAYERS`` layer each, less the later part so
   replayed alone: exact to the cycle at the anchors (the 7B draft and verify
   passes).
2. **Key.** A part is keyed by its structure and a few coordinates
   (``speedsim.serve.keys``): a decode wave by its rows R, its groups n (when a
   group has several rows) and the KV length ℓ of its batched attention; a
   prefill of one prompt by its tokens (of several: by the prompts, never
   interpolated); a SPEED step by its executions M, its occupied stages, and
   their mean KV length.
3. **Grid.** Rows on points that never straddle a tile of the array's rows T
   (``tile_points``: each tile's first row k·T + 1, every ``ROW_STEP`` rows after
   it, and its last row (k + 1)·T), since a GEMM's cost jumps where its rows fill
   one more tile (16 → 17 rows: +19 % for a SPEED step on the h100 before its
   calibration, weights prefetched ahead; +0.3 % on the calibrated one, whose kernel
   overheads dominate) and is affine in the rows within one (82.1 k to 83.8 k cycles
   per row across the tiles of a 7B decode step on that earlier h100), except that the first tile has a point on every row: there
   the cost wiggles with the rows (edge, a decode wave: +27,047, +25,565, +26,859,
   +25,565 cycles per row, period 4, from integer tiling of the KV and activation
   transfers), a large share of a small batch's cost, and points every ``ROW_STEP``
   rows, all at one phase of it, put the memo 0.07 % below the replay at 2 to 4
   rows (shallow's TTFT p90 on traffic/trace.yaml: −1.15 %); a prompt's tokens
   likewise within tiles of gcd(rows, columns) (its rows and its KV length at
   once); a KV length on one cell per tile of the dimension it fills (the array's
   columns, output stationary: +5 % from KV 64 to 65 on edge, flat within
   [65, 96]); groups on
   ``COUNT_POINTS_PER_OCTAVE`` points per octave; a skew (``keys.skew``) on multiples
   of ``SKEW_STEP`` positions (its KV bytes are affine in it). A point's cost is the
   multilinear interpolation between the corners of its cell: with w_i = (c_i −
   lo_i) / (hi_i − lo_i) per coordinate,

       cost = Σ over corners v of Π_i (v_i = hi_i ? w_i : 1 − w_i) · cost(v),

   exact for a cost affine in each coordinate including products such as n·ℓ (the
   KV bytes). A corner's cost is the replay of the part that ``keys.corner``
   builds there (its rows filling groups of t_max first, its executions spread evenly
   over the stages, every group at one base, its shorter groups further for a skew;
   a skew's step is taken at the cell's lowest corner only, as what it moves, the KV
   bytes, adds to the rest: 3 corners for a verify wave's KV and skew, not 4). Where a
   corner is no part (fewer rows than groups) the part's own rows and groups are
   taken, the KV length and skew alone interpolated, failing that the skew left out
   (a corner with a group before position 1); a prompt's cell is interpolated only if the interpolation at
   the first point asked for in it agrees with that point's replay within
   ``PROMPT_TOLERANCE`` (a prefill's cost steps every few tokens on edge).
4. **Composition.** A corner is replayed with only its first ``KEPT_LAYERS``
   repeated layers per part (a wave's layers 0 .. N − 1, a SPEED step's layer
   steps: ``iteration.shortened``); each layer left out costs what the last kept
   one added (its cycles from the previous layer's end, its items' dynamic
   energy). Layers of one model cost the same given their rows (a cycle-shared
   SPEED step's layer steps too), and the engine reaches its steady state within
   a layer: exact to the cycle on the shipped examples (7B on h100, the trained
   model on edge). The first corner of each structure is also replayed whole,
   and a structure whose two costs differ by more than ``COMPOSED_TOLERANCE`` is
   never composed.

5. **L2.** Behind an L2 (``buffers.weight.kind: cache``, ``speedsim.hw.l2``) what a
   part's weights cost depends on the rest of its iteration: a verify wave after four
   draft passes finds the target's weights evicted, alone it finds them resident
   (draft_spec −5.1 % at vanishing load on the h100 before its calibration, the trained
   model, when parts were costed alone). So each part carries the L2's *verdict* in its iteration
   (``verdicts``): where no weight of two copies of the iteration hits even without KV
   traffic (``_hits_nothing``, once per sequence of the parts' weight reads: LRU is a
   stack algorithm, so KV traffic only adds misses), every weight misses (``ALL_MISS``:
   the 7B shapes, each layer larger than the L2); else the L2 pass over two copies of
   the iteration decides each part's missed bytes per (tensor, occurrence), and the
   part is keyed by that verdict too, its corners replayed with it imposed and never
   composed (its layers may hit and miss apart).

Each corner is replayed once and kept, for one strategy: each strategy's run has a
memo of its own (``speedsim.serve.serve_strategy``), so that its costs, and the decisions
taken as its points come (a prompt's cell checked at its first point, a KV cell's middle
after ``LINE_CHECK_USES`` points, a structure's composition at its first corner), never
depend on which strategies ran before it in the same process: the result is the same
whether the strategies share a process or not. (Shared across the five strategies of
traffic/llama7b_poisson.yaml, the memo saved 5 % of their replays: the verify waves of
both draft-and-verify strategies, the prefills; every metric was the same either way.)

**What a TTFT sees.** A TTFT is mostly the wait for the running iteration, so its error
is the drift of the absolute clock at the request's admission (the memo's summed error
since the server last idled) far more than its own prefill's: 7B on h100, first 60
requests, per request (a) the prefill's own error and (b) the clock's drift at its
admission were 0.05 µs and −46 µs (sequential), −173 µs (draft_spec), of a TTFT of
11 ms. So what matters is the *sign* of the memo's errors, and three of its sources
were one-signed: the verify waves that end requests (``keys.skew``), a cost that jumps
inside a KV cell (7), and a KV cell's chord through a staircase (6).

6. **The KV staircase** (``speedsim.serve.quanta``). Where a KV read starts when its
   item issues (``weight_prefetch: per_op``, the GPUs) its DRAM transfer is on the
   part's chain, and it is quantized: the read is cut into stream tiles
   (``cost.item_tiles``, bytes split evenly) and a tile moves ⌈granules / channels⌉
   granules of ``dram.interleave_bytes`` per channel (``cost.dram_transfer_cycles``),
   so its time steps once per ``channels · interleave_bytes`` bytes a tile (20 KiB on
   h100) and is flat between. A corner has every row at one position, and its bytes
   sit on a step (5 rows of the 7B shape on h100, 2 tiles: 20 KiB · ℓ each), while the
   iterations between corners (ℓ = 233.2: rows at different positions) are on the next
   step up, the whole step (+52 cycles a layer) at the first extra row; the chord ran
   below every such iteration (shallow's summed −0.0015 % over the first 60 requests,
   its TTFT p50 −1.55 %). So the memo interpolates each corner's cost *less* its KV
   reads' transfer cycles (``quanta.transfer_cycles``: the engine's own tiles and
   granules, per layer, times the layers) and adds the part's own, its bytes from its
   own KV lengths (``quanta.kv_lengths``; a group reads its longest row's): exact where
   the rest is affine in the cell. Where a read's tile count changes inside a cell
   (2 → 3 at KV 159 for those 5 rows: the read then overlaps its compute better,
   2,560 cycles cheaper) the cost jumps: 7 below. Where KV is read ahead (edge), the
   staircase hides behind earlier items and taking it apart made the memo worse (2 rows
   of the trained model: −4.6e-4 per iteration, against −0.4e-4): not done.
7. **KV cells checked.** A KV cell that has served ``LINE_CHECK_USES`` points has its
   middle replayed (the other coordinates at their low corner, the staircase taken
   out); while that misses the chord between the cell's ends by more than
   ``KV_TOLERANCE`` the cell is halved, down to one position (shallow on h100, 8 layers
   at 5 rows: the jump at KV 159, 8.4e-4 of the part, inside [129, 160]). Cutting the
   cells where a read's tile count changes, from the same cost functions, found the same
   jumps and more, smaller ones (a SPEED step of many executions changes its tile count
   every few positions), for a third more corners of SPEED steps (the 1,000-request run
   4 s slower, at the issue's 60 s bound): not done.

**Error bound.** What the memo misses: curvature within a cell (on edge a decode
wave's cost wiggles by ±0.1 % within one KV tile; on h100, the staircase taken out, a
cycle or so per iteration), the first ``LINE_CHECK_USES`` points of a cell with a jump
and a jump under ``KV_TOLERANCE``, the spread of the requests around
the corner's even spread (SPEED: each stage's attention is sized by its own
executions' mean KV length where attention is issued per token, the corner's by the
step's: single SPEED iterations on traffic/trace.yaml up to 8 % off; keying each
stage's KV length brings that to 2 % but makes the 1,000-request 7B run 7 times slower,
and shifting stages by whole KV tiles biases h100), and a boundary's variation between
its anchors (a 7B verify after a draft: +3,072 cycles at 1 to 3 draft rows, +11,163 at
7 and 8, anchored at 4).
``audit`` measures it on the memo's own schedule (every iteration also replayed, the
same iteration sequence retimed: ``scheduler.retime``); ``benchmarks/bench_serve.py``
reports that and, apart, the difference between two separate runs (memo, every
iteration replayed), which also holds the schedule's sensitivity; docs/serving.md
has the numbers. ``tests/test_serve.py`` pins ≤ 1 % on the first 8 requests of
traffic/poisson.yaml, and the summed cycles of 64 iterations across the h100's KV
staircase within 5e-6 of the replay (the chord: −5.2e-5).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from math import floor, gcd, log2

import numpy as np

from speedsim.config.hw import Hardware
from speedsim.hw.cost import matrix_section
from speedsim.hw.l2 import handed_on, tensor_of, through_cache
from speedsim.metrics.energy import per_item_energy_j
from speedsim.serve.iteration import (Iteration, Part, RowSource, SpeedStep, middle_layers,
                                      shortened, work_items)
from speedsim.serve.keys import COUNT, KV, PROMPT, ROWS, SKEW, coordinates, corner
from speedsim.serve.quanta import (Staircase, kv_lengths, quanta_key, staircase, tile_counts,
                                   transfer_cycles)
from speedsim.sim.engine import replay

COUNT_POINTS_PER_OCTAVE = 4  # of the groups of a decode wave
ROW_STEP = 8  # rows between two grid points inside a tile of the array's rows (but the first)
KEPT_LAYERS = 2  # repeated layers a corner's replay keeps; the rest are its last one's repeats
BOUNDARY_LAYERS = 1  # repeated layers a boundary's pair replay keeps (tails and heads only)
PROMPT_TOLERANCE = 2e-3  # a prompt's cell missing its first point by more: not interpolated
COMPOSED_TOLERANCE = 1e-3  # a structure whose composed cost misses its full replay by more: full
ANCHORS_PER_OCTAVE = 2  # of rows, groups and prompt tokens where a boundary is measured
KV_TOLERANCE = 3e-4  # a KV cell whose middle misses its chord by more: halved
LINE_CHECK_USES = 16  # points a KV cell of the grid serves before its middle is checked
SKEW_STEP = 8  # positions between two grid points of a decode wave's skew (``keys.skew``)
ALL_MISS = "all miss"  # the L2 verdict of a part none of whose weights can stay resident


@dataclass(frozen=True)
class Cost:
    cycles: float
    dynamic_j: float  # the iteration's items' dynamic energy (no static power)



class IterationCosts:
    """``costs(iteration) -> Cost``; ``exact``: replay every iteration (no memo)."""

    def __init__(self, hw: Hardware, rows: RowSource, exact: bool = False, audit: bool = False,
                 depth=None):
        self.hw, self.rows, self.exact = hw, rows, exact
        self.depth = depth  # scope -> its model's layer count; None: corners replayed whole
        self._batched = hw.attention_issue == "batched"
        self._memo: dict[tuple, Cost] = {}
        self._composable: dict[tuple, bool] = {}  # per structure: its composed cost checked
        self._cells: dict[tuple, bool] = {}  # per grid cell: whether it is interpolated
        self._lines: dict[tuple, bool] = {}  # per KV cell: whether its cost is linear enough
        self._uses: Counter = Counter()  # per KV cell of the grid: the points it has served
        self._never_hit: dict[tuple, bool] = {}  # per iteration's weight accesses (``verdicts``)
        self._verdict_ids: dict[tuple, int] = {}  # a part's L2 verdict -> its id
        self._verdict_tables: list[dict] = []  # id -> {(tensor, occurrence): missed bytes}
        self._boundaries: dict[tuple, Cost] = {}  # two parts' anchors -> a boundary's cost
        self._parts: dict[tuple, bool] = {}  # (structure, point) -> whether a part has it
        self._alones: dict[tuple, Cost] = {}  # (short part, verdict) -> its cost alone
        self._stairs: dict[tuple, Staircase] = {}  # (structure, point) -> its KV reads (``quanta``)
        self._counts: dict[tuple, tuple] = {}  # KV items and their bytes' slots -> their tiles
        self.replays = 0
        self.corners = 0  # replays of grid-cell corners (the memo's own)
        self.calls = 0
        # audit: the memo's answer drives the run, and every iteration is also replayed:
        # (replayed, memo) per iteration, for ``scheduler.retime`` of the same sequence
        self.audited: list[tuple[Cost, Cost]] | None = [] if audit else None

    def __call__(self, it: Iteration) -> Cost:
        self.calls += 1
        if self.audited is not None:
            memo = self.memoized(it)
            self.audited.append((self.replayed(it), memo))
            return memo
        return self.replayed(it) if self.exact else self.memoized(it)

    def audit_report(self) -> dict[str, float]:
        """The memo's error against the replay over the audited iterations: the largest and
        mean |relative error| of one iteration's cycles, their mean signed relative error
        (a bias: errors of one sign add up), and the error of their sum."""
        pairs = [(e.cycles, m.cycles) for e, m in self.audited or [(Cost(1, 0), Cost(1, 0))]]
        exact, memo = np.array(pairs).T
        signed = memo / exact - 1
        rel = np.abs(signed)
        return {"iterations": len(self.audited or []), "corner_replays": self.corners,
                "max_abs_rel_error": float(rel.max()),
                "mean_abs_rel_error": float(rel.mean()),
                "mean_rel_error": float(signed.mean()),
                "total_rel_error": float(memo.sum() / exact.sum() - 1)}

    def memoized(self, it: Iteration) -> Cost:
        """The memo's cost of ``it``: the sum of its parts' (module docstring)."""
        cycles = dynamic = 0.0
        verdicts = self.verdicts(it)
        keyed = [coordinates(p) for p in it]
        for p, k, verdict in zip(it, keyed, verdicts):
            c = self._part(*k, verdict, p)
            cycles, dynamic = cycles + c.cycles, dynamic + c.dynamic_j
        edges = self.boundaries(it, verdicts, keyed)
        return Cost(cycles + edges.cycles, dynamic + edges.dynamic_j)

    def boundaries(self, it: Iteration, verdicts: tuple, keyed: list | None = None) -> Cost:
        """Σ over the boundaries between two parts of different structures (cyclic: the
        last part precedes the first, as the previous iteration's does) of what the later
        part costs more after the earlier one than after a copy of itself (module
        docstring, *Parts add up*)."""
        keyed = keyed or [coordinates(p) for p in it]
        edges = [self._boundary(keyed[j - 1], verdicts[j - 1], keyed[j], verdicts[j])
                 for j in range(len(it)) if len(it) > 1 and keyed[j - 1][0] != keyed[j][0]]
        return Cost(sum(e.cycles for e in edges), sum(e.dynamic_j for e in edges))

    def _boundary(self, a: tuple, va, b: tuple, vb) -> Cost:
        """One boundary: ``a`` then ``b`` (each (structure, coordinates)) at their anchors
        (``_anchor``), replayed as a pair with ``BOUNDARY_LAYERS`` layer each: ``b``'s
        cycles and dynamic energy after ``a`` less ``b``'s so replayed alone (after a copy
        of itself: a weight resident there may have been evicted by ``a``); kept per
        anchors."""
        (sa, pa), (sb, pb) = self._anchor(*a), self._anchor(*b)
        key = (sa, va, pa, sb, vb, pb)
        delta = self._boundaries.get(key)
        if delta is None:
            self.corners += 1
            pair = tuple(self._short(corner(s, pt)) for s, pt in ((sa, pa), (sb, pb)))
            _, ends, energy, part_ends = self._replay(pair, verdicts=(va, vb))
            after = Cost(float(ends.max() - ends[:part_ends[2]].max()),  # b's, in copy 2
                         float(energy[part_ends[2]:part_ends[3]].sum()))
            alone = self._alone(pair[1], vb)
            delta = self._boundaries[key] = Cost(after.cycles - alone.cycles,
                                                 after.dynamic_j - alone.dynamic_j)
        return delta

    def _alone(self, p: Part, verdict) -> Cost:
        """``p``'s cost after a copy of itself, kept per part and verdict."""
        key = (p, verdict)
        if key not in self._alones:
            self.corners += 1
            self._alones[key] = self.replayed((p,), (verdict,))
        return self._alones[key]

    def _anchor(self, structure: tuple, coords: list) -> tuple[tuple, tuple[int, ...]]:
        """(structure, point) a boundary is measured at: each coordinate at its grid point
        below on a coarse octave grid (``ANCHORS_PER_OCTAVE``; a KV length on one point per
        octave: a boundary's items are embeddings, norms, dense GEMMs and heads, attention
        only as it cancels) if a part has that point, else with the part's own rows and
        groups, else its own coordinates rounded; a prefill of several prompts as one of
        their tokens (its rows at the boundary)."""
        if structure[0] == "prefill" and structure[3] != 1:
            structure, coords = (*structure[:3], 1), [(PROMPT, sum(structure[3]))]
        low = [0 if kind == SKEW else grid_points(v, 1 if kind == KV else ANCHORS_PER_OCTAVE)[0]
               for kind, v in coords]
        if any(kind == COUNT for kind, _ in coords):  # rows, groups, KV: groups that fit the rows
            t_max = structure[-1]
            R = max(low[0], t_max)
            low[:2] = R, min(max(low[1], -(-R // t_max)), R - t_max + 1)
        for point in (tuple(low),
                      tuple(lo if kind in (KV, SKEW) else round(v)
                            for (kind, v), lo in zip(coords, low)),
                      tuple(0 if kind == SKEW else round(v) for kind, v in coords)):
            if self._is_part(structure, point):
                return structure, point
        raise AssertionError(f"no part at {structure} {coords}")  # a part's own point is one

    def _is_part(self, structure: tuple, point: tuple[int, ...]) -> bool:
        key = (structure, point)
        if key not in self._parts:
            self._parts[key] = corner(structure, point) is not None
        return self._parts[key]

    def _short(self, p: Part) -> Part:
        return p if self.depth is None else shortened(p, self.depth, BOUNDARY_LAYERS)

    def verdicts(self, it: Iteration) -> tuple:
        """Per part of ``it``: what the L2 decides for its weights within the iteration
        (module docstring, *L2*): None without an L2; ``ALL_MISS`` where none of the
        iteration's weights can stay resident; else the id of its missed bytes per
        (tensor, occurrence in the part), from the L2 pass over two copies of ``it``."""
        if self.hw.buffers.weight.kind != "cache":
            return (None,) * len(it)
        accesses = tuple(map(_weight_accesses, it))
        never = self._never_hit.get(accesses)
        if never is None:
            never = self._never_hit[accesses] = self._hits_nothing(it)
        return (ALL_MISS,) * len(it) if never else self._in_context(it)

    def _hits_nothing(self, it: Iteration) -> bool:
        """Whether no weight of two copies of ``it`` hits the L2 even without KV traffic:
        then none does with any KV traffic (LRU is a stack algorithm: more accesses between
        two uses never turn a miss into a hit) nor at any rows (the weights read depend on
        ``_weight_accesses`` alone)."""
        items, _ = self._items(it)
        dry = [replace(x, kv_read_bytes=0, kv_write_bytes=0) for x in items]
        passed = through_cache(dry, self.hw)
        return all(a.weight_bytes == b.weight_bytes for a, b in zip(dry, passed))

    def _in_context(self, it: Iteration) -> tuple:
        """The L2 pass over two copies of ``it``: per part of the second, its verdict."""
        ends: list[int] = []
        items, _ = self._items(it, ends)
        out = through_cache(items, self.hw)
        bounds = ends[len(it) - 1:]
        return tuple(self._verdict(items[a:b], out[a:b]) for a, b in zip(bounds, bounds[1:]))

    def _verdict(self, items: list, passed: list):
        """One part's verdict: ``ALL_MISS``, or the id of its missed bytes per (tensor,
        occurrence)."""
        seen: Counter = Counter()
        table = []
        for x, y in zip(items, passed):
            if self._matrix_weights(x):
                t = tensor_of(x)
                table.append(((t, seen[t]), y.weight_bytes))
                seen[t] += 1
        if all(x.weight_bytes == y.weight_bytes for x, y in zip(items, passed)):
            return ALL_MISS
        key = tuple(table)
        if key not in self._verdict_ids:
            self._verdict_ids[key] = len(self._verdict_tables)
            self._verdict_tables.append(dict(table))
        return self._verdict_ids[key]

    def _matrix_weights(self, x) -> bool:
        return x.weight_key is not None and x.weight_bytes > 0 and \
            self.hw.unit(x.unit).kind == "matrix"

    def _imposed(self, items: list, part_ends: list[int], verdicts: tuple) -> list:
        """The items behind the L2 as each part's verdict decides (``part_ends``: where each
        part of each copy ends; each counts its tensors' occurrences afresh; one the
        verdict does not know misses)."""
        out: list = []
        for end, verdict in zip(part_ends, verdicts * (len(part_ends) // len(verdicts))):
            table, seen = ({} if verdict == ALL_MISS else self._verdict_tables[verdict]), Counter()
            for x in items[len(out):end]:
                missed = x.weight_bytes
                if self._matrix_weights(x):
                    t = tensor_of(x)
                    missed = table.get((t, seen[t]), x.weight_bytes)
                    seen[t] += 1
                out.append(handed_on(x, missed, self.hw))
        return out

    def part(self, p: Part, verdict=None) -> Cost:
        """The multilinear interpolation of the part's cost between the corners of its grid
        cell (``cell``), each corner's part (``keys.corner``) replayed once. A cell with a
        corner that no part has (``_interpolable``) is taken at the part's own rows and
        groups, the KV length and skew alone interpolated; failing that, without a skew
        (its corners would put a group before position 1); failing that not at all (the KV
        length rounded, as the batched attention rounds it)."""
        return self._part(*coordinates(p), verdict, p)

    def _part(self, structure: tuple, coords: list, verdict, p: Part | None = None) -> Cost:
        structure = (structure, verdict)  # the memo's: a part's cost depends on the L2's verdict
        cells = [cell(kind, v, matrix_section(self.hw)) for kind, v in coords]
        for fallback in (_own_rows_and_groups, _no_skew):
            if self._interpolable(structure, coords, cells):
                break
            cells = fallback(coords, cells)
        else:
            if not self._interpolable(structure, coords, cells):
                cells = _no_skew(coords, [(round(v), round(v), 0.0) for _, v in coords])
        return self._interpolated(structure, self._refined(structure, coords, cells), p)

    def _refined(self, structure: tuple, coords: list, cells: list) -> list:
        """``cells`` with the KV length's halved, down to one position, while the replay at
        its middle misses the chord between its ends by more than ``KV_TOLERANCE`` (the
        other coordinates at their cell's low corner; checked once per cell, from the
        ``LINE_CHECK_USES``-th point it serves on: a sum's error is its busiest cells'): a
        cost that jumps inside a cell (module docstring, *Grid*)."""
        i = next((j for j, (kind, _) in enumerate(coords) if kind == KV), None)
        if i is None:
            return cells
        (lo, hi, _), v = cells[i], coords[i][1]
        others = [c[0] for c in cells]
        self._uses[structure, tuple(others), hi] += 1
        if self._uses[structure, tuple(others), hi] < LINE_CHECK_USES:
            return cells
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if self._linear(structure, others, i, (lo, mid, hi)):
                break
            lo, hi = (lo, mid) if v <= mid else (mid, hi)
        return [*cells[:i], (lo, hi, (v - lo) / (hi - lo)) if hi > lo else cells[i], *cells[i + 1:]]

    def _linear(self, structure: tuple, others: list, i: int, kvs: tuple[int, int, int]) -> bool:
        """Whether the cost at the middle KV length ``kvs[1]`` is within ``KV_TOLERANCE`` of
        the chord between ``kvs[0]`` and ``kvs[2]`` (kept; True where a point is no part)."""
        key = (structure, tuple(others[:i] + others[i + 1:]), kvs)
        ok = self._lines.get(key)
        if ok is None:
            points = [tuple(others[:i] + [k] + others[i + 1:]) for k in kvs]
            ok = not all(self._valid(structure, (pt, 1.0)) for pt in points)
            if not ok:
                (a, m, b), (lo, mid, hi) = (self._smooth(structure, pt) for pt in points), kvs
                ok = abs((a + (b - a) * (mid - lo) / (hi - lo)) / m - 1) <= KV_TOLERANCE
            self._lines[key] = ok
        return ok

    def _interpolated(self, structure: tuple, cells: list[tuple[int, int, float]],
                      p: Part | None = None) -> Cost:
        """Multilinear between the cell's corners (``_weighted``); a decode part's KV
        staircase (``quanta``) taken out of the corners' cycles and part ``p``'s own added
        (its KV bytes from its own KV lengths, ``quanta.kv_lengths``; without ``p``,
        interpolated)."""
        weighted = self._weighted(structure, cells)
        cycles = dynamic = 0.0
        for point, weight in weighted:
            c = self._at(structure, point)
            cycles, dynamic = cycles + weight * c.cycles, dynamic + weight * c.dynamic_j
        if self._stepped(structure):
            stairs = [self._staircase(structure, pt) for pt, _ in weighted]
            cycles += self._own_steps(p, stairs, [w for _, w in weighted]) - \
                sum(w * s.cycles for (_, w), s in zip(weighted, stairs))
        return Cost(cycles, dynamic)

    def _weighted(self, structure: tuple, cells: list[tuple[int, int, float]]) -> list:
        """(corner, weight) of the multilinear interpolation in ``cells``, but for a skew (the
        last coordinate of a wave of several rows per group, ``keys.skew``): its step
        measured at the cell's lowest corner only (weights w and −w there), as what the
        skew moves (the KV bytes) adds to the rest."""
        skewed = structure[0][0] == "decode" and structure[0][-1] > 1 and cells[-1][2] > 0
        if not skewed:
            return corners(cells)
        lo, hi, w = cells[-1]
        low = tuple(c[0] for c in cells[:-1])
        return corners(cells[:-1] + [(lo, lo, 0.0)]) + [((*low, lo), -w), ((*low, hi), w)]

    def _stepped(self, structure: tuple) -> bool:
        """Whether the part's KV reads' staircase is taken apart (``quanta``): a decode
        part's (a wave's, a SPEED step's) whose KV is in DRAM (no KV buffer) and read when
        its item issues (``weight_prefetch: per_op``; read ahead, behind earlier items, the
        staircase does not reach the part's end: edge, 2 rows of the trained model, −4.6e-4
        per iteration when taken apart, −0.4e-4 not)."""
        return structure[0][0] != "prefill" and self.hw.buffers.kv is None \
            and self.hw.weight_prefetch == "per_op"

    def _staircase(self, structure: tuple, point: tuple[int, ...]) -> Staircase:
        """The ``quanta.Staircase`` of the corner at ``point`` (whatever its L2 verdict): taken
        from its replay's items when ``_at`` replayed it, else built."""
        key = (structure[0], point)
        if key not in self._stairs:
            self._stairs[key] = staircase(corner(structure[0], point), self.rows, self.hw,
                                          self.depth)
        return self._stairs[key]

    def _own_steps(self, p: Part | None, stairs: list[Staircase], weights: list[float]) -> float:
        """What part ``p``'s KV reads cost in DRAM transfers (``quanta.transfer_cycles``): its
        bytes are the first corner's per KV position times its own positions (without
        ``p``: the corners' bytes interpolated); its tiles the corners' where they agree,
        else ``_own_counts``."""
        first = stairs[0]
        if not first.items:  # no attention (a head)
            return 0.0
        if p is None:
            own = [round(sum(w * s.kv[i] for w, s in zip(weights, stairs)))
                   for i in range(len(first.kv))]
        else:
            lengths = kv_lengths(p, self._batched)
            assert len(lengths) == len(first.items), "a part and its corner issue the same KV items"
            own = [b // n * m for b, n, m in zip(first.kv, first.lengths, lengths)]
        counts = first.counts if all(s.counts == first.counts for s in stairs) else \
            self._own_counts(first, own) if all(s.counts for s in stairs) else None
        return first.repeats * transfer_cycles(first.items, own, self.hw, counts)

    def _own_counts(self, first: Staircase, own: list[int]) -> tuple[int, ...]:
        """The stream tiles of ``first``'s items reading ``own`` bytes (``quanta.tile_counts``),
        kept per item and per how many stream slots and pipeline tiles the bytes fill, which
        alone decide them where a tile streams its KV alone (``quanta.Staircase.counts``)."""
        key = (id(first), *(quanta_key(x, b, self.hw) for x, b in zip(first.items, own)))
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = tile_counts(first.items, own, self.hw)
        return counts

    def _smooth(self, structure: tuple, point: tuple[int, ...]) -> float:
        """The corner's cycles less its KV staircase's (``_stepped``), if taken apart."""
        cycles = self._at(structure, point).cycles
        if not self._stepped(structure):
            return cycles
        return cycles - self._staircase(structure, point).cycles

    def _interpolable(self, structure: tuple, coords: list, cells: list) -> bool:
        """Whether the part's cell may be interpolated (once per cell): every corner is a
        part, and, for a prompt's tokens, the interpolation at the first point asked for
        in the cell is within ``PROMPT_TOLERANCE`` of the replay there (a prefill's cost
        steps every few tokens on some arrays: 1 to 3 % every 4 tokens on edge)."""
        key = (structure, tuple((lo, hi) for lo, hi, _ in cells))
        ok = self._cells.get(key)
        if ok is None:
            every = [(lo, hi, 0.5 if hi > lo else 0.0) for lo, hi, _ in cells]
            ok = all(self._valid(structure, c) for c in corners(every))
            if ok and any(kind == PROMPT for kind, _ in coords) and any(w for _, _, w in cells):
                own = self._interpolated(structure, [(round(v), round(v), 0.0) for _, v in coords])
                got = self._interpolated(structure, cells)
                ok = abs(got.cycles / own.cycles - 1) <= PROMPT_TOLERANCE
            self._cells[key] = ok
        return ok

    def _valid(self, structure: tuple, point_weight: tuple) -> bool:
        point = point_weight[0]
        key = (structure, point)
        return key in self._memo or corner(structure[0], point) is not None

    def _at(self, structure: tuple, point: tuple[int, ...]) -> Cost:
        """``structure``: (the part's, its L2 verdict)."""
        key = (structure, point)
        cost = self._memo.get(key)
        if cost is None:
            self.corners += 1
            (part, verdict) = structure
            it, seen = (corner(part, point),), []
            cost = self._memo[key] = self.composed((*part[:3], verdict), it, verdict, seen)
            if self._stepped(structure) and (part, point) not in self._stairs:
                self._stairs[part, point] = staircase(it[0], self.rows, self.hw, self.depth,
                                                      replayed=seen[0])
        return cost

    def composed(self, shape: tuple, it: Iteration, verdict=None, seen: list | None = None) -> Cost:
        """``it``'s cost from a replay of its first ``KEPT_LAYERS`` repeated layers per part
        (``shortened``), each further layer costing what the last kept one added (module
        docstring); the first corner of each ``shape`` (kind, model and layers) is replayed
        whole as well, and the shape composed only if the two agree within
        ``COMPOSED_TOLERANCE``. ``verdict``: the L2's (``verdicts``); a part whose weights
        may stay resident is never composed (its layers may hit and miss apart). ``seen``:
        (the iteration as replayed, the items of its first copy) appended (``_replay``)."""
        if self.depth is None or self._composable.get(shape) is False \
                or verdict not in (None, ALL_MISS):
            return self._replay(it, verdicts=(verdict,), seen=seen)[0]
        cost = self._composed(it, verdict, seen)
        if shape not in self._composable:
            self.corners += 1  # the memo's own replay too
            whole = self.replayed(it, (verdict,))
            self._composable[shape] = abs(cost.cycles / whole.cycles - 1) <= COMPOSED_TOLERANCE
            return whole
        return cost

    def _composed(self, it: Iteration, verdict=None, seen: list | None = None) -> Cost:
        """1. the iteration with ``KEPT_LAYERS`` repeated layers per part, replayed as
        ``replayed`` does, the last copy's layers marked; 2. its cost plus, per part, the
        layers left out times what its last kept layer added (cycles from the previous
        layer's end to its own, the dynamic energy of its items)."""
        short = tuple(shortened(p, self.depth, KEPT_LAYERS) for p in it)
        marks: list[list[int]] = [[] for _ in it]
        cost, ends, energy, _ = self._replay(short, marks, (verdict,), seen)
        cycles, dynamic = cost.cycles, cost.dynamic_j
        done_by = np.maximum.accumulate(ends)  # every item up to this one has ended
        for p, q, m in zip(it, short, marks):
            left_out = len(middle_layers(p, self.depth)) - len(middle_layers(q, self.depth))
            if left_out:
                before, last = _middle_marks(q, self.depth, m)[-2:]
                cycles += left_out * float(done_by[last] - done_by[before])
                dynamic += left_out * float(energy[before + 1:last + 1].sum())
        return Cost(cycles, dynamic)

    def replayed(self, it: Iteration, verdicts: tuple | None = None) -> Cost:
        """The second of two back-to-back copies of ``it``, replayed (module docstring);
        behind an L2, its own pass (``verdicts`` None) or each part's verdict's misses."""
        return self._replay(it, verdicts=verdicts)[0]

    def _items(self, it: Iteration, part_ends: list[int] | None = None,
               marks: list[list[int]] | None = None):
        hw = self.hw
        return work_items(it, self.rows, hw.placement, hw.attention_issue == "batched",
                          copies=2, marks=marks, part_ends=part_ends)

    def _replay(self, it: Iteration, marks: list[list[int]] | None = None,
                verdicts: tuple | None = None, seen: list | None = None):
        """(cost, every item's end cycle, every item's dynamic energy, where each part of
        each copy ends) of ``replayed``; ``seen``: (``it``, the items of its first copy)
        appended (a corner's KV staircase is taken from them, ``quanta.staircase``)."""
        self.replays += 1
        hw = self.hw
        part_ends: list[int] = []
        items, sizes = self._items(it, part_ends, marks)
        if seen is not None:
            seen.append((it, items[:sizes[0]]))
        passed = through_cache(items, hw) if verdicts is None or verdicts[0] is None else \
            self._imposed(items, part_ends, verdicts)  # behind an L2, its misses (hw/l2.py)
        sim = replay(passed, hw, frames=False)  # its items' columns: no log, no occupancy
        first = sizes[0]
        ends = sim.items["end_cycle"]
        end_first = int(ends[:first].max())
        energy = sum(per_item_energy_j(items, sim.items, hw).values())
        dynamic = float(energy[first:].sum())
        return Cost(float(sim.total_cycles - end_first), dynamic), ends, energy, part_ends


def _own_rows_and_groups(coords: list, cells: list) -> list:
    return [c if kind in (KV, SKEW) else (v, v, 0.0) for (kind, v), c in zip(coords, cells)]


def _no_skew(coords: list, cells: list) -> list:
    return [(0, 0, 0.0) if kind == SKEW else c for (kind, _), c in zip(coords, cells)]


def _weight_accesses(p: Part) -> tuple:
    """What decides which weights a part reads, in which order: a wave's model, phase and
    layers (one item per op, whatever its rows); a SPEED step's layers and occupied stages."""
    if isinstance(p, SpeedStep):
        return (p.stages, p.layer_sets, p.layer_steps, tuple(bool(s) for s in p.in_stage))
    return (p.scope, p.phase, p.layers)


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


def cell(kind: str, v: float, array) -> tuple[int, int, float]:
    """(grid point lo <= v, grid point hi > v, (v − lo) / (hi − lo)) of coordinate ``v`` of
    ``kind`` (``keys``) on ``array`` (the hardware's): rows, prompt tokens and KV lengths
    on points that never straddle a tile of the array's dimension they fill (rows of the
    first tile on every row), groups on an octave grid (module docstring)."""
    if kind == COUNT:
        lo, hi = grid_points(v, COUNT_POINTS_PER_OCTAVE)
    elif kind == SKEW:
        lo = floor(v / SKEW_STEP) * SKEW_STEP
        hi = lo if v == lo else lo + SKEW_STEP
    else:
        tile, step = _tiling(kind, array)
        lo, hi = tile_points(v, tile, 1 if kind == ROWS and v <= tile else step)
    return (lo, hi, (v - lo) / (hi - lo)) if hi > lo else (lo, lo, 0.0)


def _tiling(kind: str, array) -> tuple[int, int]:
    """(tile, rows between points) of a coordinate: rows fill the array's rows (output
    stationary: M on rows; the other dataflows cut K or N by rows and columns); a KV
    length fills its columns (the scores' N), and K or N by both in the other
    dataflows; prompt tokens are rows and KV length at once."""
    both = gcd(array.rows, array.cols)
    if kind == ROWS:
        return array.rows, ROW_STEP
    if kind == PROMPT:
        return both, ROW_STEP
    tile = array.cols if array.dataflow == "os" else both
    return tile, tile


def tile_points(v: float, tile: int, step: int) -> tuple[int, int]:
    """Grid points lo <= v < hi inside v's tile of ``tile`` (k·tile + 1 .. (k + 1)·tile):
    the tile's first, every ``step``-th after it, and its last; (v, v) on a point (0 is
    one). A fractional v between two tiles is rounded to one of them."""
    if v <= 0:
        return int(v), int(v)
    first = floor((v - 1) / tile) * tile + 1
    last = first + tile - 1
    if v > last:  # rounded as the batched attention rounds its mean (``iteration``)
        return round(v), round(v)
    lo = first + floor((v - first) / step) * step
    if lo == v or v == last:
        return int(v), int(v)
    return lo, min(lo + step, last)


def grid_points(x: float, per_octave: int) -> tuple[int, int]:
    """The grid points lo <= x < hi around ``x`` >= 1: spacing 2^(⌊log2 x⌋ − log2
    per_octave), at least 1 (module docstring)."""
    step = max(1, 2 ** (floor(log2(max(x, 1.0))) - int(log2(per_octave))))
    lo = int(x // step) * step
    return lo, lo + step

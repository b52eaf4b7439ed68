"""The memo's view of one part of an iteration: its structure, a few coordinates, and the
part that a point of those coordinates stands for (``speedsim.serve.memo``).

A part's cost is decided, up to what the memo's error measures, by:

- a decode ``Wave``: its model, phase and layers, the row patterns it may have, the
  longest pattern present (t_max: the queries of its batched attention), and the
  coordinates *rows* R (the dense GEMMs' M), *groups* n (attention GEMMs, KV reads)
  and *KV length* ℓ of their batched attention (``attention_length``: the mean KV
  length of their rows, weighed as the GEMM's MACs, ``iteration.batched_attention``:
  the GEMM's cost steps with the tiles ℓ fills); of one group, its longest KV length,
  which its merged attention reads (``strategies.verify.merged``: a verify of 5 rows
  with ℓ its mean stepped inside a cell, 2 positions before its tile's end, and the
  memo ran up to +1.5 % on edge); with one row per group ℓ is the mean position + 1,
  R = n, and n is not a coordinate of its own. With several rows per group, the
  target model's waves also have the coordinate *skew* S (``skew``: the mean base over
  the groups less the mean over the rows), since ℓ weighs a group by its rows while
  its KV bytes count once per group: a request's last verify has fewer rows and, the
  request being old, the longest KV, so the verify waves that end requests read more
  KV than the corner of their ℓ (7B on h100: 0.1 to 0.24 % of such a wave short, the
  whole of draft_spec's summed −0.0098 % and its TTFT p90 −1.85 % over the first 60
  requests; keyed, with ``corner``'s filled groups, +0.0004 % and −0.04 %). Keying ℓ
  by the bytes instead breaks the
  edge, whose attention steps with the GEMM's tiles (draft_spec iterations up to
  −2.3 %). A draft model's catch-up waves (1 or 2 rows per group, not by age) keep S =
  0: their skew has no sign, and keying it doubled their corners;
- a prefill ``Wave`` of one prompt: its model and layers, and the coordinate *prompt*
  (its tokens: the GEMMs' rows and the attention's KV length at once); of several
  prompts: its model, layers and prompts, no coordinate (how the prompts spread
  around their mean matters, and such prefills are few);
- a ``SpeedStep``: G, the layer sets and which stages hold an execution (so whether
  the heads run, and how many attention items a layer step issues where attention is
  issued per token: a lone request's step with 4 stages occupied costs 41 % more than
  with 1 on h100, the trained model, at 4 executions against 1); *rows* M (executions
  in flight: every dense GEMM of a cycle-shared step takes them all) and *KV length*
  x̄ + 1. How the executions spread over the occupied stages changes a 7B step on h100
  by < 0.05 % (the heads' rows from 6 to 17 of 16 to 24 executions).

``corner`` builds the part of given coordinates: as many groups of the longest pattern
as the rows allow, one of what is left, the others of one row (as the verify waves that
end requests have them; a skew then needs a small shift of few groups, where rows spread
evenly over the groups needed one of hundreds of positions, past position 1: a 7B verify
at 48 rows, 11 groups and skew 18 fell back to none, −0.47 %), every group at the one
base that gives the KV length ℓ, the groups of fewer rows Δ further for a skew S
(``_bases``; decode); the prefill of that prompt, or of those prompts; the executions
spread evenly over the occupied stages (SPEED).
``None`` where no part has the coordinates (fewer rows than groups or occupied stages,
more than t_max per group, a base before 1, a skew without a shorter group).
"""

from __future__ import annotations

from typing import Optional

from speedsim.serve.iteration import Part, SpeedStep, Wave, canonical

# coordinate kinds, gridded by the memo: rows of a GEMM, a prompt's tokens (rows and KV length
# at once), groups, KV length, how much further the groups of fewer rows read (``skew``)
ROWS, PROMPT, COUNT, KV, SKEW = "rows", "prompt", "count", "kv", "skew"


def coordinates(p: Part) -> tuple[tuple, list[tuple[str, float]]]:
    """(``p``'s structure, its coordinates as (kind, value)) (module docstring)."""
    if isinstance(p, SpeedStep):
        M, x = sum(map(len, p.in_stage)), _mean([b for s in p.in_stage for b in s])
        occupied = tuple(bool(s) for s in p.in_stage)
        return ("speed", p.stages, p.layer_sets, occupied), [(ROWS, M), (KV, x + 1)]
    if p.phase == "prefill":
        if len(p.groups) == 1:
            return ("prefill", p.scope, p.layers, 1), [(PROMPT, p.groups[0][0])]
        return ("prefill", p.scope, p.layers, tuple(b for b, _ in p.groups)), []
    rows = [len(off) for _, off in p.groups]
    R, n, t_max = sum(rows), len(rows), max(rows)
    patterns = tuple(sorted({off for _, off in p.groups} | set(p.patterns),
                            key=lambda o: (len(o), o)))
    kv = attention_length(p.groups, t_max) if n > 1 else p.groups[0][0] + max(p.groups[0][1]) + 1
    if t_max == 1:
        return ("decode", p.scope, p.layers, patterns, 1), [(ROWS, R), (KV, kv)]
    return ("decode", p.scope, p.layers, patterns, t_max), \
        [(ROWS, R), (COUNT, n), (KV, kv), (SKEW, 0 if p.scope else skew(p.groups))]


def skew(groups) -> float:
    """How much further the groups' attention reads than their rows' weighing says: the
    mean base over the groups less the mean over their rows (0 when every group has as
    many rows; > 0 when the groups of fewer rows sit at longer KV, as a request's last,
    short verify does)."""
    R = sum(len(off) for _, off in groups)
    return sum(b for b, _ in groups) / len(groups) - sum(len(off) * b for b, off in groups) / R


def attention_length(groups, t_max: int) -> float:
    """The KV length of the groups' batched attention GEMM (``iteration.batched_attention``:
    the one that keeps the MACs of t_max queries per group): Σ over the groups' rows of
    the row's KV length (base + offset + 1), over groups × t_max."""
    return sum(len(off) * b + _offsets(off) for b, off in groups) / (len(groups) * t_max)


def _offsets(off: tuple[int, ...]) -> int:
    return sum(o + 1 for o in off)


def corner(structure: tuple, point: tuple[int, ...]) -> Optional[Part]:
    """The part of ``structure`` at the coordinates ``point`` (module docstring)."""
    kind = structure[0]
    if kind == "speed":
        return _speed(structure, point)
    if kind == "prefill":
        _, scope, layers, prompts = structure
        prompts = point if prompts == 1 else prompts
        return Wave(scope, "prefill", layers, tuple((b, (0,)) for b in prompts))
    _, scope, layers, patterns, t_max = structure
    if t_max == 1:
        (R, kv), n, tilt = point, point[0], 0
    else:
        R, n, kv, tilt = point
    lengths = _fill(R, n, t_max)
    if lengths is None:
        return None
    by_length = {len(o): o for o in reversed(patterns)}  # the first pattern of each length
    if any(t not in by_length for t in lengths):
        return None
    offsets = [by_length[t] for t in lengths]
    bases = _bases(offsets, n, t_max, kv, tilt)
    if bases is None or any(b + o[0] < 1 for b, o in zip(bases, offsets)):  # a row before 1
        return None
    return Wave(scope, "decode", layers, canonical(list(zip(bases, offsets))))


def _bases(offsets: list[tuple[int, ...]], n: int, t_max: int, kv: int,
           tilt: int) -> Optional[list[int]]:
    """Bases that give the groups' batched attention KV length ``kv`` (to within half a
    position; one group reads its longest KV) and skew ``tilt``: the groups of fewer than
    t_max rows Δ positions further than the others (``skew`` = Δ (n_p / n − R_p / R));
    None if that cannot be (a skew without such a group)."""
    R = sum(map(len, offsets))
    if n == 1:
        return None if tilt else [kv - 1 - max(offsets[0])]
    short = [len(o) < t_max for o in offsets]
    n_p, R_p = sum(short), sum(len(o) for o, s in zip(offsets, short) if s)
    if tilt and not n_p:
        return None
    delta = round(tilt / (n_p / n - R_p / R)) if tilt else 0
    x = round((kv * n * t_max - sum(map(_offsets, offsets)) - R_p * delta) / R)
    return [x + delta if s else x for s in short]


def _fill(R: int, n: int, t_max: int) -> Optional[list[int]]:
    """Row counts of n groups: as many of t_max as R allows, then one of what is left,
    the others of one row (as requests that end draft less); None if that cannot be (a
    group of t_max, 1 <= each <= t_max)."""
    if n < 1 or R < t_max + n - 1 or R > n * t_max:
        return None
    if t_max == 1:
        return [1] * n
    full, left = divmod(R - n, t_max - 1)  # rows beyond one per group
    return [t_max] * full + ([1 + left] if full < n else []) + [1] * (n - full - 1)


def _speed(structure: tuple, point: tuple[int, ...]) -> Optional[SpeedStep]:
    """M executions spread evenly over the occupied stages."""
    _, G, layer_sets, occupied = structure
    M, kv = point
    stages = [g for g in range(G) if occupied[g]]
    if kv < 2 or M < len(stages):  # no execution before position 1; an occupied stage empty
        return None
    q, r = divmod(M, len(stages))
    counts = [0] * G
    for i, g in enumerate(stages):
        counts[g] = q + (i < r)
    return SpeedStep(G, layer_sets, tuple((kv - 1,) * c for c in counts))


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)

"""The memo's view of one part of an iteration: its structure, a few coordinates, and the
part that a point of those coordinates stands for (``speedsim.serve.memo``).

A part's cost is decided, up to what the memo's error measures, by:

- a decode ``Wave``: its model, phase and layers, the row patterns it may have, the
  longest pattern present (t_max: the queries of its batched attention), and the
  coordinates *rows* R (the dense GEMMs' M), *groups* n (attention GEMMs, KV reads)
  and *KV length* ℓ (``kv_read_length``): the mean over its groups of the KV length
  each group's merged attention reads, its longest (``strategies.verify.merged``), so
  that the corner at ℓ reads the part's KV bytes exactly. Weighing each group by its
  rows instead (the batched GEMM's MACs) missed the bytes wherever a group's rows and
  its KV length go together: a request's last verify has fewer rows and, the request
  being old, the longest KV; on h100 (7B) such verify waves ran 0.1 to 0.37 % short,
  the whole of draft_spec's summed −0.011 %, and its TTFT p90 −1.85 %. With one row
  per group ℓ is the mean position + 1, R = n, and n is not a coordinate of its own;
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

``corner`` builds the part of given coordinates: one group of the longest pattern and
the other rows spread as evenly as the patterns allow over the other groups, at bases
as nearly equal as give the KV length ℓ exactly (the later groups one position longer;
decode); the prefill of that prompt,
or of those prompts; the executions spread evenly over the occupied stages (SPEED).
``None`` where no part has the coordinates (fewer rows than groups or occupied stages,
more than t_max per group, a base before 1).
"""

from __future__ import annotations

from typing import Optional

from speedsim.serve.iteration import Part, SpeedStep, Wave, canonical

# coordinate kinds, gridded by the memo: rows of a GEMM, a prompt's tokens (rows and KV length
# at once), groups, KV length
ROWS, PROMPT, COUNT, KV = "rows", "prompt", "count", "kv"


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
    kv = kv_read_length(p.groups)
    if t_max == 1:
        return ("decode", p.scope, p.layers, patterns, 1), [(ROWS, R), (KV, kv)]
    return ("decode", p.scope, p.layers, patterns, t_max), [(ROWS, R), (COUNT, n), (KV, kv)]


def kv_read_length(groups) -> float:
    """The mean over ``groups`` of the KV length each group's merged attention reads:
    base + its longest offset + 1."""
    return sum(_read(b, off) for b, off in groups) / len(groups)


def _read(base: int, off: tuple[int, ...]) -> int:
    return base + max(off) + 1


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
        (R, kv), n = point, point[0]
    else:
        R, n, kv = point
    lengths = _spread(R, n, t_max)
    if lengths is None:
        return None
    by_length = {len(o): o for o in reversed(patterns)}  # the first pattern of each length
    if any(t not in by_length for t in lengths):
        return None
    offsets = [by_length[t] for t in lengths]
    # bases whose reads sum to n·ℓ: q each, the last r groups one more
    q, r = divmod(round(kv * n) - sum(_read(0, o) for o in offsets), n)
    bases = [q] * (n - r) + [q + 1] * r
    if q + min(o[0] for o in offsets) < 1:  # a row before position 1
        return None
    return Wave(scope, "decode", layers, canonical(list(zip(bases, offsets))))


def _spread(R: int, n: int, t_max: int) -> Optional[list[int]]:
    """Row counts of n groups: one of t_max, R − t_max spread as evenly as can be over
    the others; None if that cannot be (1 <= each <= t_max)."""
    if n < 1 or R < t_max + n - 1 or R > n * t_max:
        return None
    if n == 1:
        return [t_max] if R == t_max else None
    q, r = divmod(R - t_max, n - 1)
    return [t_max] + [q + 1] * r + [q] * (n - 1 - r)


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

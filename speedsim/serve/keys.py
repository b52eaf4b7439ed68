"""The memo's view of one part of an iteration: its structure, a few coordinates, and the
part that a point of those coordinates stands for (``speedsim.serve.memo``).

A part's cost is decided, up to what the memo's error measures, by:

- a decode ``Wave``: its model, phase and layers, the row patterns it may have, the
  longest pattern present (t_max: the queries of its batched attention), and the
  coordinates *rows* R (the dense GEMMs' M), *groups* n (attention GEMMs, KV reads)
  and *base* x̄ (the groups' mean position: KV bytes and attention MACs add up, the
  batched attention is sized by the mean, ``iteration.batched_attention``); with one
  row per group R = n, and n is not a coordinate of its own;
- a prefill ``Wave``: its model and layers and the prompts n; the coordinate *rows*
  R = Σ prompt tokens (the prompts' mean is R / n);
- a ``SpeedStep``: G and the layer sets; *rows* M (executions in flight: every dense
  GEMM of a cycle-shared step takes them all), *head* H (executions in stage 0 or
  G − 1: the rows of the fused heads) and *base* x̄. How the other executions spread
  over the middle stages changes a 7B step on h100 by < 0.05 %.

``corner`` builds the part of given coordinates: one group of the longest pattern and
the other rows spread as evenly as the patterns allow over the other groups, every
group at the mean base (decode); n prompts of R / n tokens, as near as whole tokens
allow (prefill); H heads split
between the first and last stage and the other executions spread evenly over the
middle ones (SPEED). ``None`` where no part has the coordinates (fewer rows than
groups, more heads than executions).
"""

from __future__ import annotations

from typing import Optional

from speedsim.serve.iteration import Part, SpeedStep, Wave, canonical

ROWS, COUNT, BASE = "rows", "count", "base"  # coordinate kinds: how the memo grids them


def coordinates(p: Part) -> tuple[tuple, list[tuple[str, float]]]:
    """(``p``'s structure, its coordinates as (kind, value)) (module docstring)."""
    if isinstance(p, SpeedStep):
        n = [len(s) for s in p.in_stage]
        M, x = sum(n), _mean([b for s in p.in_stage for b in s])
        if p.stages <= 2:  # every execution is in the first or the last stage
            return ("speed", p.stages, p.layer_sets), [(ROWS, M), (BASE, x)]
        return ("speed", p.stages, p.layer_sets), [(ROWS, M), (ROWS, n[0] + n[-1]), (BASE, x)]
    if p.phase == "prefill":
        return ("prefill", p.scope, p.layers, len(p.groups)), [(ROWS, sum(b for b, _ in p.groups))]
    rows = [len(off) for _, off in p.groups]
    R, n = sum(rows), len(rows)
    patterns = tuple(sorted({off for _, off in p.groups} | set(p.patterns), key=lambda o: (len(o), o)))
    x = _mean([b for b, _ in p.groups])
    if max(rows) == 1:
        return ("decode", p.scope, p.layers, patterns, 1), [(ROWS, R), (BASE, x)]
    return ("decode", p.scope, p.layers, patterns, max(rows)), [(ROWS, R), (COUNT, n), (BASE, x)]


def corner(structure: tuple, point: tuple[int, ...]) -> Optional[Part]:
    """The part of ``structure`` at the coordinates ``point`` (module docstring)."""
    kind = structure[0]
    if kind == "speed":
        return _speed(structure, point)
    if kind == "prefill":
        _, scope, layers, n = structure
        q, r = divmod(point[0], n)
        prompts = [(q + 1, (0,))] * r + [(q, (0,))] * (n - r)
        return None if q < 1 else Wave(scope, "prefill", layers, canonical(prompts))
    _, scope, layers, patterns, t_max = structure
    if t_max == 1:
        (R, x), n = point, point[0]
    else:
        R, n, x = point
    lengths = _spread(R, n, t_max)
    if lengths is None:
        return None
    by_length = {len(o): o for o in reversed(patterns)}  # the first pattern of each length
    if any(t not in by_length for t in lengths):
        return None
    return Wave(scope, "decode", layers, canonical([(x, by_length[t]) for t in lengths]))


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
    _, G, layer_sets = structure
    if G <= 2:
        (M, x), H = point, point[0]
    else:
        M, H, x = point
    if H > M or M < 1:
        return None
    if G == 1:
        counts = [M]
    else:
        q, r = divmod(M - H, G - 2) if G > 2 else (0, 0)
        counts = [(H + 1) // 2] + [q + 1] * r + [q] * (G - 2 - r) + [H // 2]
    return SpeedStep(G, layer_sets, tuple((x,) * c for c in counts))


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)

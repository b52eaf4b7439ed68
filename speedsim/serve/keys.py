"""The memo's view of one part of an iteration: its structure, a few coordinates, and the
part that a point of those coordinates stands for (``speedsim.serve.memo``).

A part's cost is decided, up to what the memo's error measures, by:

- a decode ``Wave``: its model, phase and layers, the row patterns it may have, the
  longest pattern present (t_max: the queries of its batched attention), and the
  coordinates *rows* R (the dense GEMMs' M), *groups* n (attention GEMMs, KV reads)
  and *KV length* x̄ + t_max (x̄ the groups' mean base: KV bytes and attention MACs
  add up, the batched attention is sized by the mean,
  ``iteration.batched_attention``); with one row per group R = n, and n is not a
  coordinate of its own;
- a prefill ``Wave``: its model, layers and prompts' lengths, no coordinate: its cost
  steps every few prompt tokens (16 → 17 tokens +12 % for the 7B shape on h100, steps
  of 1 to 3 % every 4 tokens on edge), so it is never interpolated;
- a ``SpeedStep``: G, the layer sets and whether any execution is in the first or the
  last stage (the heads run); *rows* M (executions in flight: every dense GEMM of a
  cycle-shared step takes them all) and *KV length* x̄ + 1. How the executions
  spread over the stages changes a 7B step on h100 by < 0.05 % (the heads' rows
  from 6 to 17 of 16 to 24 executions).

``corner`` builds the part of given coordinates: one group of the longest pattern and
the other rows spread as evenly as the patterns allow over the other groups, every
group at the mean base (decode); the prefill of that prompt, or of those prompts; the
executions spread evenly over the stages (SPEED). ``None`` where no part has the
coordinates (fewer rows than groups, or more than t_max per group).
"""

from __future__ import annotations

from typing import Optional

from speedsim.serve.iteration import Part, SpeedStep, Wave, canonical

# coordinate kinds, gridded by the memo: rows of a GEMM, groups, KV length (a base plus its
# group's rows)
ROWS, COUNT, KV = "rows", "count", "kv"


def coordinates(p: Part) -> tuple[tuple, list[tuple[str, float]]]:
    """(``p``'s structure, its coordinates as (kind, value)) (module docstring)."""
    if isinstance(p, SpeedStep):
        n = [len(s) for s in p.in_stage]
        M, x = sum(n), _mean([b for s in p.in_stage for b in s])
        heads = p.stages <= 2 or n[0] + n[-1] > 0
        return ("speed", p.stages, p.layer_sets, heads), [(ROWS, M), (KV, x + 1)]
    if p.phase == "prefill":  # its cost steps every few prompt tokens: never interpolated
        return ("prefill", p.scope, p.layers, tuple(b for b, _ in p.groups)), []
    rows = [len(off) for _, off in p.groups]
    R, n, t_max = sum(rows), len(rows), max(rows)
    patterns = tuple(sorted({off for _, off in p.groups} | set(p.patterns), key=lambda o: (len(o), o)))
    kv = _mean([b for b, _ in p.groups]) + t_max  # the longest group's
    if t_max == 1:
        return ("decode", p.scope, p.layers, patterns, 1), [(ROWS, R), (KV, kv)]
    return ("decode", p.scope, p.layers, patterns, t_max), [(ROWS, R), (COUNT, n), (KV, kv)]


def corner(structure: tuple, point: tuple[int, ...]) -> Optional[Part]:
    """The part of ``structure`` at the coordinates ``point`` (module docstring)."""
    kind = structure[0]
    if kind == "speed":
        return _speed(structure, point)
    if kind == "prefill":
        _, scope, layers, prompts = structure
        return Wave(scope, "prefill", layers, tuple((b, (0,)) for b in prompts))
    _, scope, layers, patterns, t_max = structure
    if t_max == 1:
        (R, kv), n = point, point[0]
    else:
        R, n, kv = point
    x = kv - t_max
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


def _speed(structure: tuple, point: tuple[int, ...]) -> SpeedStep:
    """M executions spread evenly over the G stages, or over the middle ones when none is
    in the first or last (no heads)."""
    _, G, layer_sets, heads = structure
    M, kv = point
    stages = range(G) if heads else range(1, G - 1)
    q, r = divmod(M, len(stages))
    counts = [0] * G
    for i, g in enumerate(stages):
        counts[g] = q + (i < r)
    return SpeedStep(G, layer_sets, tuple((kv - 1,) * c for c in counts))


def _mean(values: list[int]) -> float:
    return sum(values) / len(values)

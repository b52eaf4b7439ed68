"""One serving iteration as data, and as the work items the engine replays.

An iteration is a tuple of *parts* run one after the other (each part's first
items wait for the previous part's last item, as a token's chain waits for the
previous token in ``speedsim.strategies``):

- ``Wave``: ``layers`` (-1 embed, 0..N-1, N the final head) of one model
  (``scope`` "" the target, "draft" a draft model) for a set of *groups*; a
  group is one request's rows, positions ``base + offset`` (decode) or its
  prompt of ``base`` tokens (prefill). Per op, ONE item takes every row of
  every group: dense GEMMs stack all rows (weights fetched once); attention and
  the embedding merge each group's rows (``speedsim.strategies.verify.merged``:
  t queries reading the group's longest KV once) and stack the groups as a
  batch does (``speedsim.strategies.builder``: bytes and MACs add up, each
  GEMM sized by the longest KV);
- ``SpeedStep``: one SPEED stage step of every active request
  (``speedsim.strategies.speed``): at layer step j each in-flight execution in
  stage g runs layer g·L + j; the dense ops of executions whose layers share a
  weight set fuse into one item, attention is one item per stage (one per
  layer step when the hardware issues attention batched); stage-0 entrants
  embed first, and the early head (leaving stage 0) and the final head
  (leaving the last stage) fuse at the end.

``skeleton`` takes an iteration apart into its structure (the parts, and the
row patterns in each: a group's offsets, a SPEED stage) and its counts (groups
per pattern); ``build`` makes the iteration of a structure with given counts,
every group at one base. That is what the memo (``speedsim.serve.memo``)
replays.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence, Union

from speedsim.config.hw import Placement
from speedsim.contracts.oprow import OpRow
from speedsim.contracts.workitem import WorkItem
from speedsim.strategies.builder import ItemBuilder
from speedsim.strategies.common import with_slots
from speedsim.strategies.verify import merged

Group = tuple[int, tuple[int, ...]]  # (base, offsets): one request's rows


@dataclass(frozen=True)
class Wave:
    scope: str  # "" target, "draft" the draft model
    phase: str  # prefill | decode
    layers: tuple[int, ...]
    groups: tuple[Group, ...]  # canonical order: more rows first (``canonical``)
    # row patterns (offsets) this part may have besides its own (``skeleton`` counts them,
    # 0 when absent, so that iterations differing only in a rare pattern share a structure)
    patterns: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class SpeedStep:
    stages: int  # G
    layer_sets: tuple[int, ...]  # weight set of each target layer
    in_stage: tuple[tuple[int, ...], ...]  # per stage g: positions of its executions


Part = Union[Wave, SpeedStep]
Iteration = tuple[Part, ...]
# (scope, phase, position or prompt tokens, layer) -> the op rows
RowSource = Callable[..., list[OpRow]]


def canonical(groups: Sequence[Group]) -> tuple[Group, ...]:
    """Groups with more rows first (a stacked attention item's queries are its first
    group's), then by offsets, the longest base (prompt) first: the same requests give
    the same iteration in any order."""
    return tuple(sorted(groups, key=lambda g: (-len(g[1]), g[1], -g[0])))


def skeleton(it: Iteration) -> tuple[tuple, tuple[int, ...]]:
    """(``it``'s structure, its counts): per part, each row pattern (a group's offsets,
    those the part declares possible included; every SPEED stage) and how many groups
    (executions) have it, 0 included. ``build`` inverts it."""
    shapes, counts = [], []
    for p in it:
        if isinstance(p, Wave):
            patterns = sorted({off for _, off in p.groups} | set(p.patterns),
                              key=lambda o: (-len(o), o))
            counts += [sum(1 for _, off in p.groups if off == o) for o in patterns]
            shapes.append((p.scope, p.phase, p.layers, tuple(patterns), p.patterns))
        else:
            counts += [len(s) for s in p.in_stage]
            shapes.append(("speed", p.stages, p.layer_sets, tuple(range(p.stages))))
    return tuple(shapes), tuple(counts)


def build(shape: tuple, counts: Sequence[int], base: int) -> Iteration:
    """The iteration of ``skeleton`` ``shape`` with ``counts`` groups (executions) per
    pattern, every one at ``base``."""
    parts: list[Part] = []
    at = 0
    for s in shape:
        n = counts[at:at + len(s[3])]
        at += len(s[3])
        if s[0] == "speed":
            parts.append(SpeedStep(s[1], s[2], tuple((base,) * c for c in n)))
        else:
            groups = tuple((base, o) for o, c in zip(s[3], n) for _ in range(c))
            parts.append(Wave(s[0], s[1], s[2], groups, s[4]))
    return tuple(parts)


def bases(it: Iteration) -> list[int]:
    """Every group's base (each SPEED execution's position)."""
    out: list[int] = []
    for p in it:
        out += [b for b, _ in p.groups] if isinstance(p, Wave) else [b for s in p.in_stage for b in s]
    return out


def work_items(parts: Iteration, rows: RowSource, placement: Placement,
               attention_batched: bool, copies: int = 1) -> tuple[list[WorkItem], list[int]]:
    """The items of ``copies`` back-to-back runs of ``parts`` (each part waits for the
    previous one's last items), and the number of items in each copy."""
    b = ItemBuilder(placement)
    prev: Deps = ()
    sizes = []
    for _ in range(copies):
        start = len(b.items)
        for p in parts:
            prev = (_wave(b, p, rows, prev) if isinstance(p, Wave)
                    else _speed_step(b, p, rows, prev, attention_batched))
        sizes.append(len(b.items) - start)
    return b.items, sizes


Deps = tuple[int, ...]


def _add(b: ItemBuilder, rows: list[OpRow], deps: Deps, slot: int, scope: str = "") -> Deps:
    return (b.add(rows, deps=deps, tokens=(), slot=slot, label=rows[0].op, scope=scope),)


def _wave(b: ItemBuilder, w: Wave, rows: RowSource, prev: Deps) -> Deps:
    """Every layer's ops, one item each, in one chain."""
    for layer in w.layers:
        per_group = [[rows(w.scope, w.phase, base + off if w.phase == "decode" else base, layer)
                      for off in offsets] for base, offsets in w.groups]
        for o, (_, slot) in enumerate(with_slots(per_group[0][0])):
            stacked = [r for group in per_group for r in merged([ops[o] for ops in group])]
            if stacked[0].op == "embed":  # gathers rows of one table: one row, bytes summed
                stacked = merged(stacked)
            elif stacked[0].op in _KV_DIM and len(stacked) > 1:
                stacked = [batched_attention(stacked)]
            prev = _add(b, stacked, prev, slot, w.scope)
    return prev


_KV_DIM = {"attn_score": "n", "attn_value": "k"}  # the attention GEMM dimension that is KV
_SUMMED = ("count", "elements", "act_in_bytes", "act_out_bytes", "kv_read_bytes",
           "kv_write_bytes", "macs", "vector_ops")


def batched_attention(rows: list[OpRow]) -> OpRow:
    """Several requests' attention rows (one op, one layer) as one batched GEMM row: the
    requests' GEMMs, bytes and MACs add up; each GEMM has the first row's queries (the
    most: ``canonical``) and the KV length that keeps the MACs, Σ macs / (Σ count · m ·
    head size), the requests' own lengths on average (not the longest: a batched
    attention kernel runs each request over its own keys). Equal rows stack exactly as a
    batch of ``speedsim run`` does."""
    first = rows[0]
    kv = _KV_DIM[first.op]
    head = first.k if kv == "n" else first.n
    sums = {f: sum(getattr(r, f) for r in rows) for f in _SUMMED}
    length = max(1, round(sums["macs"] / (sums["count"] * first.m * head)))
    return first._replace(**sums, **{kv: length}, kv_len=length)


def _speed_step(b: ItemBuilder, s: SpeedStep, rows: RowSource, prev: Deps,
                batched: bool) -> Deps:
    """Embeds of the stage-0 entrants, the L layer steps, then both heads; each
    execution keeps its own chain (``lanes``), fused items wait for all they serve."""
    G, N = s.stages, len(s.layer_sets)
    L = N // G
    execs = [(g, p) for g, positions in enumerate(s.in_stage) for p in positions]
    lanes: list[Deps] = [prev] * len(execs)
    entrants = [e for e, (g, _) in enumerate(execs) if g == 0]
    if entrants:
        _fused(b, lanes, entrants, [rows("", "decode", execs[e][1], -1)[0] for e in entrants], 0)
    for j in range(L):
        _layer_step(b, s, rows, execs, lanes, j, L, batched)
    heads = [(e, rows("", "decode", p, N)) for e, (g, p) in enumerate(execs) if g in (0, G - 1)]
    for o in range(len(heads[0][1]) if heads else 0):
        _fused(b, lanes, [e for e, _ in heads], [h[o] for _, h in heads], 0)
    return tuple(sorted({d for lane in lanes for d in lane}))


def _fused(b: ItemBuilder, lanes: list[Deps], members: list[int], rows: list[OpRow],
           slot: int) -> None:
    """One item for ``rows`` of the executions ``members``: it waits for their chains
    and becomes their chain's end."""
    deps = tuple(d for e in members for d in lanes[e])
    item = _add(b, rows, deps, slot)
    for e in members:
        lanes[e] = item


_PER_EXECUTION_OPS = ("attn_score", "softmax", "attn_value")


def _layer_step(b: ItemBuilder, s: SpeedStep, rows: RowSource, execs: list[tuple[int, int]],
                lanes: list[Deps], j: int, L: int, batched: bool) -> None:
    """Layer step j as ``speedsim.strategies.speed`` plans it: per weight set shared by
    the executions' layers, every op; dense ops one item for all of them, attention one
    item per layer (a batch of the requests' executions there), or one for all when the
    hardware issues attention batched."""
    by_set: dict[int, list[int]] = {}
    ops = []
    for e, (g, p) in enumerate(execs):
        by_set.setdefault(s.layer_sets[g * L + j], []).append(e)
        ops.append(with_slots(rows("", "decode", p, g * L + j)))
    for members in by_set.values():
        for o, (row0, slot) in enumerate(ops[members[0]]):
            split = row0.op in _PER_EXECUTION_OPS and not batched
            for sub in (_by_stage(execs, members) if split else [members]):
                rows = [ops[e][o][0] for e in sub]
                if row0.op in _KV_DIM and len(rows) > 1:
                    rows = [batched_attention(rows)]
                _fused(b, lanes, sub, rows, slot)


def _by_stage(execs: list[tuple[int, int]], members: list[int]) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for e in members:
        out.setdefault(execs[e][0], []).append(e)
    return list(out.values())

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

``shortened`` keeps the first few of a part's repeated layers (a wave's layers
0 .. N − 1, a SPEED step's layer steps), and ``work_items`` marks where each of
them ends: the memo (``speedsim.serve.memo``) replays a part so and composes it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Sequence, Union

from speedsim.config.hw import Placement
from speedsim.contracts.oprow import OpRow
from speedsim.contracts.workitem import WorkItem
from speedsim.strategies.builder import ItemBuilder, stacked as stacked_row
from speedsim.strategies.common import with_slots
from speedsim.strategies.verify import merged
from speedsim.trace.schema import ATTENTION_OPS

Group = tuple[int, tuple[int, ...]]  # (base, offsets): one request's rows


@dataclass(frozen=True)
class Wave:
    scope: str  # "" target, "draft" the draft model
    phase: str  # prefill | decode
    layers: tuple[int, ...]
    groups: tuple[Group, ...]  # canonical order: more rows first (``canonical``)
    # row patterns (offsets) this part may have besides its own (part of its structure in
    # the memo's key, ``speedsim.serve.keys``, so that it does not vary with the groups')
    patterns: tuple[tuple[int, ...], ...] = ()


@dataclass(frozen=True)
class SpeedStep:
    stages: int  # G
    layer_sets: tuple[int, ...]  # weight set of each target layer
    in_stage: tuple[tuple[int, ...], ...]  # per stage g: positions of its executions
    # the layer steps j run (``shortened``); () every one, 0 .. N / G − 1
    layer_steps: tuple[int, ...] = ()


Part = Union[Wave, SpeedStep]
Iteration = tuple[Part, ...]
# (scope, phase, position or prompt tokens, layer) -> the op rows
RowSource = Callable[..., list[OpRow]]


def canonical(groups: Sequence[Group]) -> tuple[Group, ...]:
    """Groups with more rows first (a stacked attention item's queries are its first
    group's), then by offsets, the longest base (prompt) first: the same requests give
    the same iteration in any order."""
    return tuple(sorted(groups, key=lambda g: (-len(g[1]), g[1], -g[0])))


def work_items(parts: Iteration, rows: RowSource, placement: Placement,
               attention_batched: bool, copies: int = 1,
               marks: list[list[int]] | None = None,
               part_ends: list[int] | None = None) -> tuple[list[WorkItem], list[int]]:
    """The items of ``copies`` back-to-back runs of ``parts`` (each part waits for the
    previous one's last items), and the number of items in each copy. ``marks``: per
    part of the last copy, the id of each layer's (layer step's) last item is appended;
    ``part_ends``: after each part of each copy, the number of items so far."""
    b = ItemBuilder(placement)
    prev: Deps = ()
    sizes = []
    stacks: dict[tuple[Wave, int], list] = {}  # a wave's layer's items' rows: the same in each copy
    for copy in range(copies):
        start = len(b.items)
        for i, p in enumerate(parts):
            mark = marks[i] if marks is not None and copy == copies - 1 else None
            prev = (_wave(b, p, rows, prev, mark, stacks) if isinstance(p, Wave)
                    else _speed_step(b, p, rows, prev, attention_batched, mark))
            if part_ends is not None:
                part_ends.append(len(b.items))
        sizes.append(len(b.items) - start)
    return b.items, sizes


def middle_layers(p: Part, depth: Callable[[str], int]) -> tuple[int, ...]:
    """The repeated layers of part ``p`` (``depth(scope)``: its model's layer count): a
    wave's layers 0 .. N − 1 it runs (not the embedding, not the head); a SPEED step's
    layer steps."""
    if isinstance(p, SpeedStep):
        return p.layer_steps or tuple(range(len(p.layer_sets) // p.stages))
    return tuple(layer for layer in p.layers if 0 <= layer < depth(p.scope))


def shortened(p: Part, depth: Callable[[str], int], keep: int) -> Part:
    """``p`` with only the first ``keep`` of its repeated layers (``middle_layers``)."""
    mid = middle_layers(p, depth)
    if len(mid) <= keep:
        return p
    if isinstance(p, SpeedStep):
        return replace(p, layer_steps=mid[:keep])
    drop = set(mid[keep:])
    return replace(p, layers=tuple(layer for layer in p.layers if layer not in drop))


Deps = tuple[int, ...]


def _add(b: ItemBuilder, rows: list[OpRow], deps: Deps, slot: int, scope: str = "") -> Deps:
    return (b.add(rows, deps=deps, tokens=(), slot=slot, label=rows[0].op, scope=scope),)


def _wave(b: ItemBuilder, w: Wave, rows: RowSource, prev: Deps,
          marks: list[int] | None = None, stacks: dict | None = None) -> Deps:
    """Every layer's ops, one item each, in one chain (``stacks``: each layer's items'
    rows, kept across calls)."""
    stacks = {} if stacks is None else stacks
    for layer in w.layers:
        key = (w, layer)
        if key not in stacks:
            stacks[key] = _layer_items(w, rows, layer)
        for stacked, slot in stacks[key]:
            prev = _add(b, stacked, prev, slot, w.scope)
        if marks is not None:
            marks.append(prev[0])
    return prev


def _layer_items(w: Wave, rows: RowSource, layer: int) -> list[tuple[list[OpRow], int]]:
    """(rows, slot) of each item of one layer of ``w``: dense ops stack every row of
    every group; attention and the embedding merge each group's rows (module docstring)."""
    per_group = [[rows(w.scope, w.phase, base + off if w.phase == "decode" else base, layer)
                  for off in offsets] for base, offsets in w.groups]
    out = []
    for o, (row, slot) in enumerate(with_slots(per_group[0][0])):
        stacked = [r for group in per_group for r in merged([ops[o] for ops in group])] \
            if row.op in _MERGED else [ops[o] for group in per_group for ops in group]
        if stacked[0].op == "embed":  # gathers rows of one table: one row, bytes summed
            stacked = merged(stacked)
        elif stacked[0].op in _KV_DIM and len(stacked) > 1:
            stacked = [batched_attention(stacked)]
        elif len(stacked) > 1:  # one row of their sums, as ``ItemBuilder.add`` makes it
            stacked = [stacked_row(stacked)]
        out.append((stacked, slot))
    return out


_KV_DIM = {"attn_score": "n", "attn_value": "k"}  # the attention GEMM dimension that is KV
KV_OPS = tuple(_KV_DIM)  # the ops that read the KV cache
_MERGED = (*ATTENTION_OPS, "embed")  # ops whose rows of one group ``merged`` merges
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
                batched: bool, marks: list[int] | None = None) -> Deps:
    """Embeds of the stage-0 entrants, the L layer steps, then both heads; each
    execution keeps its own chain (``lanes``), fused items wait for all they serve."""
    G, N = s.stages, len(s.layer_sets)
    L = N // G
    execs = [(g, p) for g, positions in enumerate(s.in_stage) for p in positions]
    lanes: list[Deps] = [prev] * len(execs)
    entrants = [e for e, (g, _) in enumerate(execs) if g == 0]
    if entrants:
        _fused(b, lanes, entrants, [rows("", "decode", execs[e][1], -1)[0] for e in entrants], 0)
    for j in s.layer_steps or range(L):
        _layer_step(b, s, rows, execs, lanes, j, L, batched)
        if marks is not None:
            marks.append(max(d for lane in lanes for d in lane))
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
                elif len(rows) > 1:
                    rows = [stacked_row(rows)]
                _fused(b, lanes, sub, rows, slot)


def _by_stage(execs: list[tuple[int, int]], members: list[int]) -> list[list[int]]:
    out: dict[int, list[int]] = {}
    for e in members:
        out.setdefault(execs[e][0], []).append(e)
    return list(out.values())

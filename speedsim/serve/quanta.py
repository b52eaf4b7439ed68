"""The quantized part of a decode part's cost: its KV reads' DRAM transfers
(``speedsim.serve.memo``, *Quanta*).

An attention item's KV read is cut into stream tiles (``cost.item_tiles``, its bytes
split evenly), and a tile's transfer lasts until its busiest DRAM channel has moved its
share (``cost.dram_transfer_cycles``): ⌈granules / channels⌉ granules of
``dram.interleave_bytes``. So a tile's transfer steps by one granule's time every
``channels · interleave_bytes`` bytes (20 KiB on h100), and between two steps it is flat:
the cost of a decode wave is a staircase in its KV bytes, not a line. Its corners sit at
whole KV lengths (every row at one position), whose bytes land on a step (5 rows of the 7B
shape on h100: 2 tiles of 20 KiB · ℓ each), and the iterations between them (rows at
different positions: ℓ = 233.2) on the next one up; a chord through the corners runs
below every such point (−0.8 of a step at ℓ + 0.2, −0.2 at ℓ + 0.8), one-signed.

``transfer_cycles`` is that staircase itself, from the same cost functions the engine
waits on: the memo interpolates a part's cost less its corners' staircase and adds the
part's own (exact where the KV read is on the critical path, as decode's is).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, NamedTuple, Sequence

from speedsim.config.hw import Hardware
from speedsim.contracts.workitem import WorkItem
from speedsim.hw.cost import (dram_transfer_cycles, item_tiles, split_even, stream_slot_bytes,
                              stream_tile_budget)
from speedsim.serve.iteration import (KV_OPS, Iteration, Part, RowSource, SpeedStep,
                                      middle_layers, shortened, work_items)


def kv_items(p: Part, rows: RowSource, hw: Hardware,
             depth: Callable[[str], int] | None) -> tuple[int, tuple[WorkItem, ...]]:
    """(how many times they repeat, the KV-reading items of one repeated layer) of ``p``
    (every layer's attention reads the same KV, ``iteration.middle_layers``); without
    ``depth``, (1, those of every layer)."""
    repeats = 1 if depth is None else len(middle_layers(p, depth))
    one = p if depth is None or not repeats else shortened(p, depth, 1)
    kv_rows = lambda scope, phase, base, layer: (  # the embedding too: a SPEED step's first
        [r for r in rows(scope, phase, base, layer) if layer < 0 or r.op in KV_OPS])
    items, _ = work_items((one,), kv_rows, hw.placement, hw.attention_issue == "batched")
    return repeats, tuple(x for x in items if x.op in KV_OPS and x.kv_read_bytes)


def replayed_kv_items(p: Part, replayed: Iteration, items: Sequence[WorkItem],
                      depth: Callable[[str], int] | None) -> tuple[int, tuple[WorkItem, ...]]:
    """``kv_items`` of ``p`` from ``items``, one copy of ``replayed`` (``p`` with its first
    repeated layers, or all of them): their KV-reading items, of its first repeated layer
    (each repeated layer issues as many, in the same order)."""
    reads = tuple(x for x in items if x.op in KV_OPS and x.kv_read_bytes)
    if depth is None:
        return 1, reads
    (q,) = replayed
    layers = len(middle_layers(q, depth))
    return len(middle_layers(p, depth)), reads[:len(reads) // layers] if layers else reads


class Staircase(NamedTuple):
    """One corner's KV reads (``kv_items``) and what they cost in DRAM transfers."""

    repeats: int  # layers (layer steps) whose KV items are ``items``
    items: tuple[WorkItem, ...]  # the KV-reading items of one layer
    kv: tuple[int, ...]  # their KV bytes
    lengths: tuple[int, ...]  # their KV positions (``kv_lengths``)
    counts: tuple[int, ...] | None  # their stream tiles, where those stream the KV alone
    cycles: int  # repeats × ``transfer_cycles``


def staircase(p: Part, rows: RowSource, hw: Hardware, depth,
              replayed: tuple[Iteration, Sequence[WorkItem]] | None = None) -> Staircase:
    """``p``'s ``Staircase`` (``depth`` as ``kv_items``); ``replayed``: (``p`` as a replay of
    it ran, shortened or whole, the items of one copy), whose KV items are taken
    (``replayed_kv_items``) instead of built again."""
    repeats, items = kv_items(p, rows, hw, depth) if replayed is None else \
        replayed_kv_items(p, *replayed, depth)
    kv = tuple(x.kv_read_bytes for x in items)
    counts = _counts(items, hw)
    return Staircase(repeats, items, kv, kv_lengths(p, hw.attention_issue == "batched"),
                     counts, repeats * transfer_cycles(items, kv, hw, counts))


def _counts(items: Sequence[WorkItem], hw: Hardware) -> tuple[int, ...] | None:
    """Each item's stream tile count, if every item's tiles stream its KV read alone, split
    evenly (``cost.item_tiles``: no spilled inputs); else None."""
    counts = []
    for x in items:
        tiles = item_tiles(x, hw, False)
        if sorted(t.stream_bytes for t in tiles) != sorted(split_even(x.kv_read_bytes, len(tiles))):
            return None
        counts.append(len(tiles))
    return tuple(counts)


def transfer_cycles(items: Sequence[WorkItem], kv_bytes: Sequence[int], hw: Hardware,
                    counts: Sequence[int] | None = None) -> int:
    """Σ over ``items``, each reading ``kv_bytes`` of KV, of its stream tiles' DRAM
    transfer cycles (module docstring); ``counts``: the items' tile counts there, each
    streaming its KV alone (``_counts``), else each item is cut by ``cost.item_tiles``."""
    if counts is not None:
        return sum(_even(int(b), c, hw) for b, c in zip(kv_bytes, counts))
    total = 0
    for x, b in zip(items, kv_bytes):
        tiles = item_tiles(replace(x, kv_read_bytes=int(b)), hw, False)
        total += sum(dram_transfer_cycles(t.stream_bytes, hw) for t in tiles)
    return total


def _even(total: int, parts: int, hw: Hardware) -> int:
    """Transfer cycles of ``total`` bytes in ``parts`` tiles split evenly (``split_even``)."""
    base, extra = divmod(total, parts)
    return extra * dram_transfer_cycles(base + 1, hw) + \
        (parts - extra) * dram_transfer_cycles(base, hw)


def tile_counts(items: Sequence[WorkItem], kv_bytes: Sequence[float], hw: Hardware) -> tuple:
    """How many stream tiles each of ``items`` is cut into, reading ``kv_bytes`` of KV."""
    return tuple(len(item_tiles(replace(x, kv_read_bytes=round(b)), hw, False))
                 for x, b in zip(items, kv_bytes))


def kv_lengths(p: Part, batched: bool) -> tuple[int, ...]:
    """Per KV-reading item of one layer of ``p`` (in ``kv_items``' order), the sum of the
    KV lengths it reads: a decode row at position x reads x + 1 positions, a group its
    longest row's (``strategies.verify.merged``); a SPEED step's items per weight set, op,
    and (attention issued per token) stage, as ``iteration._layer_step`` issues them."""
    if not isinstance(p, SpeedStep):
        return tuple(sum(b + max(off) + 1 for b, off in p.groups) for _ in KV_OPS)
    L = len(p.layer_sets) // p.stages
    j = (p.layer_steps or (0,))[0]
    by_set: dict[int, dict[int, int]] = {}  # weight set -> stage -> Σ KV lengths
    for g, positions in enumerate(p.in_stage):
        for x in positions:
            stages = by_set.setdefault(p.layer_sets[g * L + j], {})
            stages[g] = stages.get(g, 0) + x + 1
    sums = [[sum(st.values())] if batched else list(st.values()) for st in by_set.values()]
    return tuple(s for per_set in sums for _ in KV_OPS for s in per_set)


def quanta_key(x: WorkItem, kv_bytes: int, hw: Hardware) -> tuple[int, int]:
    """What decides how many stream tiles ``x`` reading ``kv_bytes`` of KV alone is cut
    into (``cost.item_tiles``, no weights, no spilled inputs): the stream slots and the
    pipeline tiles those bytes fill."""
    return (-(-kv_bytes // stream_slot_bytes(hw, x.unit)),
            -(-kv_bytes // stream_tile_budget(hw, x.unit)))

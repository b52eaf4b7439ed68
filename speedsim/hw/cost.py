"""Pure cost functions: cycles and bytes of one work item, its tiling, and the roofline.

Nothing here knows about time or SimPy. The replay engine (``speedsim.sim``)
waits on exactly these numbers, and ``roofline`` adds up the same numbers, so
the two cannot drift apart.

On-chip placement (what needs DRAM and what does not) is also decided here:

* **Weights** stream from DRAM into the weight buffer in tiles of at most
  ``weight_tile_budget`` bytes, ``slots`` of them in flight; a tile
  still resident is not fetched again. The tile is sized from the DRAM
  pipeline, not from the buffer (see *Tile sizes* below).
* **Tile sizes.** A tile's compute cannot start before its last byte has
  arrived, so a tile is exposed latency at every item boundary the prefetch
  cannot cover (an item waiting for its deps, a dependency chain through the
  vector unit), and an item cut into a few big tiles overlaps its own
  transfer and compute less than one cut into many: a tile should be as
  small as still keeps the DRAM pipeline full, a small multiple of the
  bandwidth-delay product ``bytes_per_cycle · L`` (``L`` the DRAM latency),
  and a bigger buffer should not cut coarser tiles. With double buffering:

  - a **weight tile** is ``WEIGHT_TILE_LATENCIES`` (24) latencies of data. A
    weight tile is a bulk transfer holding a DMA engine from issue to arrival
    and issued when the tile two before it has computed, so every tile
    exposes about ``L / 2`` when transfer and compute take equally long (and
    one ``L`` with a single engine): 24 latencies keep that within 2 % (4 %).
    Runs of identical weight tiles cost the engine nothing per tile (whole
    periods skipped), so the count of tiles is free;
  - a **stream tile** (KV reads, spilled inputs, streamed parameters) is
    ``STREAM_TILE_LATENCIES`` (8) latencies of data: a demand transfer holds
    no engine (its latency is pipelined), so it only has to outlast one
    latency plus its compute to keep two slots streaming, and an attention
    item whose KV cannot be prefetched (its deps have not started) waits for
    its whole first tile, so its tile is kept short. The engine plays stream
    tiles one by one, which is why it is not shorter still;
  - each is at least one array fold (``R · C`` elements: a DRAM without
    latency needs no pipeline, and finer tiles would only cost engine work),
    and at most its slot (half its share of the buffer: the old rule, which
    still decides for small buffers).

  So a bigger buffer first cuts larger tiles, up to the pipeline's size, then
  keeps more weight tiles resident; it never cuts coarser ones. A
  pipeline-sized cut is taken only where it costs the array nothing: on
  fold boundaries of the *ganged* arrays (``hw.array.count`` arrays split a
  GEMM's columns, so an n-cut is free only in multiples of ``C`` times the
  arrays sharing the GEMM; whole GEMMs go in rounds of ``count``) and evenly,
  in equal groups of GEMMs (attention heads) and equal cuts (one run of
  identical tiles, whose periods the engine skips whole). Where
  no such cut fits the slots or it would cost more array cycles than the
  fewest-piece cut that fits, the latter is kept (``item_tiles``). Without
  double buffering nothing overlaps (one slot: transfer, then compute), so
  the largest tile is best and the tile is the whole slot, as before.
* **Units.** What an item costs follows its unit's *kind* (``Hardware.unit``): a
  matrix unit folds GEMMs on its ``Array`` section, a vector unit runs element-wise
  ops in its ``Vector`` section's lanes. Nothing here names a unit.
* **Vector-unit parameters** (norm scales and shifts: items on a vector unit
  with a ``weight_key``) live in the weight buffer's parameter share (1/8 of
  it, LRU by key) when they fit there (``param_resident``): fetched once, then
  resident until evicted. Larger ones stream through the activation buffer
  every time, like KV reads.
* **Activations** of an item stay in the activation buffer when
  ``act_in_bytes + act_out_bytes`` fits its working area (a quarter of the
  buffer, per unit); otherwise the inputs are read from and the outputs
  written to DRAM ("spilled"). A decode token's activations are tiny and stay.
  Spilled inputs of an array item come in with its first tiles, in full
  stream slots (the array takes its input rows once, at the start); KV reads
  spread evenly over the tiles that consume them (equal heads or cuts read
  equal bytes; a head's shorter last cut reads the same share as the others,
  a simplification that keeps the buffer's trace one point per item, not per tile).
* **KV cache** reads and writes go to DRAM, unless ``hw.buffers.kv`` exists
  and holds the whole KV footprint of the run (``kv_on_chip``).
* The activation buffer is partitioned: each compute unit has a stream area
  (``ComputeUnit.stream_share``: the array 3/8, the vector unit 1/8) and a working
  area (``ACT_WORK_SHARE``, 1/4 each). Streamed bytes
  (KV reads, spilled inputs, vector-unit parameters) move through the stream
  area in slots (two with double buffering, one without), in tiles of at
  most ``stream_tile_budget`` bytes (*Tile sizes*).
"""

from __future__ import annotations

import math
import functools
from operator import attrgetter
from typing import Callable, Hashable, Iterable, NamedTuple, Sequence

from speedsim.config.hw import Hardware
from speedsim.hw.systolic import array_gemm_cycles, ceil_div
from speedsim.contracts.results import Roofline
from speedsim.contracts.workitem import WorkItem

ACT_WORK_SHARE = 1 / 4
PARAM_SHARE = 1 / 8  # of the weight buffer, for vector-unit parameters
WEIGHT_TILE_LATENCIES = 24  # a weight tile moves for this many DRAM latencies (module docstring)
STREAM_TILE_LATENCIES = 8  # and a stream tile for this many


class Tile(NamedTuple):
    """One step of an item: bytes to bring on chip, then cycles on its unit."""

    weight_bytes: int  # into the weight buffer (array items; residency applies)
    stream_bytes: int  # into the activation stream area (KV reads, spilled inputs)
    cycles: int
    macs: int
    vector_ops: int


class Traffic(NamedTuple):
    """DRAM and SRAM bytes of one item by category (weights counted as if not resident)."""

    weight_bytes: int  # array items: via the weight buffer (may hit); vector items: streamed
    kv_read_bytes: int  # DRAM KV reads
    kv_write_bytes: int  # DRAM KV writes
    act_read_bytes: int  # DRAM spilled activation reads
    act_write_bytes: int  # DRAM spilled activation writes
    kv_sram_bytes: int  # KV bytes served by the on-chip KV buffer


def split_even(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` integers that differ by at most one (larger first)."""
    base, extra = divmod(total, parts)
    return [base + 1] * extra + [base] * (parts - extra)


def vector_cycles(elements: int, lanes: int, cycles_per_element: float) -> int:
    """Cycles of an element-wise op: ``⌈elements · cycles_per_element / lanes⌉``."""
    if elements < 0:
        raise ValueError(f"elements must be >= 0, got {elements}")
    if lanes < 1:
        raise ValueError(f"lanes must be >= 1, got {lanes}")
    if cycles_per_element <= 0:
        raise ValueError(f"cycles_per_element must be > 0, got {cycles_per_element}")
    return math.ceil(elements * cycles_per_element / lanes - 1e-9)


def transfer_cycles(bytes_: int, bytes_per_cycle: float) -> int:
    """Cycles to move ``bytes_`` at ``bytes_per_cycle`` (no latency)."""
    if bytes_ < 0:
        raise ValueError(f"bytes_ must be >= 0, got {bytes_}")
    return math.ceil(bytes_ / bytes_per_cycle - 1e-9)


def busiest_channel_bytes(bytes_: int, channels: int, interleave_bytes: int) -> int:
    """Bytes of a transfer that land on its busiest channel: its ``interleave_bytes``
    granules go to consecutive channels from channel 0, which therefore gets
    ``⌈granules / channels⌉`` of them (its last one partial when the transfer's last
    granule is its own). A transfer of one granule uses one channel; one of
    ``channels`` granules or more, all of them."""
    if bytes_ < 0:
        raise ValueError(f"bytes_ must be >= 0, got {bytes_}")
    granules = -(-bytes_ // interleave_bytes)
    per_channel = -(-granules // channels)
    if granules and (granules - 1) % channels == 0:  # the partial last granule is channel 0's
        return bytes_ - (granules - per_channel) * interleave_bytes
    return per_channel * interleave_bytes


def dram_transfer_cycles(bytes_: int, hw: Hardware) -> int:
    """Cycles the DRAM moves one transfer of ``bytes_`` for (no latency): each of the
    ``dram.channels`` channels moves ``1 / channels`` of the bandwidth, and the transfer
    ends when its busiest channel has moved its share (``busiest_channel_bytes``). One
    channel, or a transfer spread evenly over all: ``transfer_cycles`` at the full
    bandwidth; a transfer of one granule: at one channel's."""
    channels = hw.dram.channels
    busiest = busiest_channel_bytes(bytes_, channels, hw.dram.interleave_bytes)
    return transfer_cycles(busiest * channels, hw.dram_bytes_per_cycle)


def slots(hw: Hardware) -> int:
    return 2 if hw.buffers.double_buffering else 1


def weight_buffer_bytes(hw: Hardware) -> int:
    return int(hw.buffers.weight.size_kib * 1024)


def param_capacity(hw: Hardware) -> int:
    """Bytes of the weight buffer kept for resident vector-unit parameters."""
    return int(weight_buffer_bytes(hw) * PARAM_SHARE)


def pipeline_tile_bytes(hw: Hardware, latencies: int) -> int:
    """Bytes that move in ``latencies`` DRAM latencies: that many bandwidth-delay
    products (module docstring, *Tile sizes*)."""
    return int(latencies * hw.dram_bytes_per_cycle * hw.dram_latency_cycles)


def matrix_section(hw: Hardware, unit: str | None = None):
    """The ``Array`` section of the matrix unit ``unit`` (default: the first, which runs
    the GEMMs: ``Hardware.placement``)."""
    return hw.section(_first_matrix(type(hw)) if unit is None else unit)


@functools.cache
def _first_matrix(hw_class: type) -> str:
    return next(u.name for u in hw_class.units if u.kind == "matrix")


@functools.cache
def _of_kind(hw_class: type, kind: str) -> frozenset[str]:
    return frozenset(u.name for u in hw_class.units if u.kind == kind)


def units_of_kind(hw: Hardware, kind: str) -> frozenset[str]:
    """The names of ``hw``'s compute units of ``kind`` (asked per item on hot paths: the
    units are class data, ``Hardware.units``)."""
    return _of_kind(type(hw), kind)


def on_matrix(item: WorkItem, hw: Hardware) -> bool:
    """The item runs on a matrix unit (GEMM-shaped: folds of its ``Array``)."""
    return item.unit in _of_kind(type(hw), "matrix")


def fold_bytes(hw: Hardware, unit: str | None = None) -> int:
    """Bytes of one array fold of the stationary operand: the finest cut of a GEMM
    (on the matrix unit ``unit``; default: the one running GEMMs)."""
    a = matrix_section(hw, unit)
    return a.rows * a.cols * hw.bytes_per_element


def _weight_budget(hw: Hardware) -> int:
    """Bytes of the weight buffer for weight tiles (in flight or resident)."""
    return weight_buffer_bytes(hw) - param_capacity(hw)


def weight_slot_bytes(hw: Hardware) -> int:
    """Bytes of one of ``slots`` equal weight slots: the most a weight tile may hold."""
    return _weight_budget(hw) // slots(hw)


def weight_tile_budget(hw: Hardware) -> int:
    """Weight tile in bytes: the pipeline tile (at least one fold), capped at one of
    ``slots`` weight slots; without double buffering the whole slot."""
    if slots(hw) == 1:
        return weight_slot_bytes(hw)
    return min(weight_slot_bytes(hw), max(pipeline_tile_bytes(hw, WEIGHT_TILE_LATENCIES), fold_bytes(hw)))


def param_resident(item: WorkItem, hw: Hardware) -> bool:
    """A vector item's parameters are kept resident (fetched once per residency)."""
    return (item.unit in _of_kind(type(hw), "elementwise")
            and item.weight_key is not None and 0 < item.weight_bytes <= param_capacity(hw))


def kv_prefetchable(item: WorkItem, tr: "Traffic", hw: Hardware) -> bool:
    """The item streams KV reads only (no spilled inputs, no streamed parameters) and has
    deps: with ``weight_prefetch: ahead`` its stream may start once they have all started,
    since the cache rows it reads exist by then."""
    return bool(tr.kv_read_bytes and not tr.act_read_bytes and item.deps and
                (on_matrix(item, hw) or param_resident(item, hw) or not tr.weight_bytes))


def gemm_cycles(m: int, k: int, n: int, gemms: int, hw: Hardware, unit: str | None = None) -> int:
    """Array cycles of ``gemms`` m×k×n GEMMs on the matrix unit ``unit`` (default: the one
    running GEMMs; ``weight_load`` included).

    ``serial`` is SCALE-Sim's fold model (``speedsim.hw.systolic``). ``overlapped``
    (ws and is, whose stationary operand is preloaded into the PEs row by row in R
    cycles per fold) loads the next fold's operand while the current fold streams, so
    every fold but the first of each GEMM saves its R load cycles; os keeps nothing
    stationary to preload and is unchanged.
    """
    a = matrix_section(hw, unit)
    serial = array_gemm_cycles(m, k, n, gemms, a.rows, a.cols, a.dataflow, a.count, a.split)
    if a.weight_load == "serial" or a.dataflow == "os":
        return serial
    if gemms >= a.count:
        rounds, n_eff = ceil_div(gemms, a.count), n
    else:
        rounds, n_eff = 1, ceil_div(n, min(a.count // gemms, n))
    sr, sc = (k, n_eff) if a.dataflow == "ws" else (k, m)
    folds = ceil_div(sr, a.rows) * ceil_div(sc, a.cols)
    return serial - rounds * (folds - 1) * a.rows


def stream_slot_bytes(hw: Hardware, unit: str) -> int:
    """Bytes of one of ``unit``'s stream slots: its stream area divided among ``slots``."""
    share = hw.unit(unit).stream_share
    return max(1, int(hw.buffers.activation.size_kib * 1024 * share) // slots(hw))


def stream_tile_budget(hw: Hardware, unit: str) -> int:
    """Stream tile of ``unit`` in bytes: one stream slot, with double buffering at most
    ``STREAM_TILE_LATENCIES`` of data or one array fold, whichever is more (module
    docstring, *Tile sizes*)."""
    if slots(hw) == 1:
        return stream_slot_bytes(hw, unit)
    return min(stream_slot_bytes(hw, unit),
               max(pipeline_tile_bytes(hw, STREAM_TILE_LATENCIES), fold_bytes(hw)))


def act_work_capacity(hw: Hardware) -> int:
    return int(hw.buffers.activation.size_kib * 1024 * ACT_WORK_SHARE)


def acts_on_chip(item: WorkItem, hw: Hardware) -> bool:
    return item.act_in_bytes + item.act_out_bytes <= act_work_capacity(hw)


def kv_on_chip(items: Iterable[WorkItem], hw: Hardware) -> bool:
    """True when ``hw.buffers.kv`` holds the run's whole KV footprint.

    The footprint is the larger of all KV bytes written and the largest single
    KV read (a read may cover a prompt written before the replayed items).
    """
    if hw.buffers.kv is None:
        return False
    written = largest_read = 0
    for it in items:
        written += it.kv_write_bytes
        largest_read = max(largest_read, it.kv_read_bytes)
    return max(written, largest_read) <= hw.buffers.kv.size_kib * 1024


def item_traffic(item: WorkItem, hw: Hardware, kv_on_chip_: bool) -> Traffic:
    spill = not acts_on_chip(item, hw)
    kv_r, kv_w = item.kv_read_bytes, item.kv_write_bytes
    return Traffic(
        weight_bytes=item.weight_bytes,
        kv_read_bytes=0 if kv_on_chip_ else kv_r,
        kv_write_bytes=0 if kv_on_chip_ else kv_w,
        act_read_bytes=item.act_in_bytes if spill else 0,
        act_write_bytes=item.act_out_bytes if spill else 0,
        kv_sram_bytes=kv_r + kv_w if kv_on_chip_ else 0,
    )


def fill_first(total: int, capacities: Sequence[int]) -> list[int]:
    """``total`` poured into ``capacities`` in order: the first ones full, the rest empty."""
    out = []
    for cap in capacities:
        out.append(min(cap, total))
        total -= out[-1]
    assert total == 0, "capacities too small"
    return out


def split_aligned(total: int, parts: int, align: int, uniform: bool = False) -> list[int]:
    """``total`` split into at most ``parts`` pieces that are whole multiples of ``align``
    (except the last), as even as that allows. Fewer pieces when ``total`` has fewer
    than ``parts`` blocks of ``align``. ``uniform``: the fewest pieces from ``parts`` to
    twice that which give every piece the same number of blocks (one run of identical
    tiles), if there are such."""
    blocks = ceil_div(total, align)
    parts = min(parts, blocks)
    if uniform:  # unless that means more than twice the pieces
        parts = next((p for p in range(parts, min(2 * parts, blocks) + 1) if blocks % p == 0), parts)
    sizes = [b * align for b in split_even(blocks, parts)]
    sizes[-1] -= sum(sizes) - total
    return sizes


def _ganged(item: WorkItem, hw: Hardware) -> tuple[int, int]:
    """(GEMMs per group, columns per n-cut) that keep a cut free on ``hw.array.count``
    ganged arrays (``speedsim.hw.systolic.array_gemm_cycles``): whole rounds of GEMMs
    over the arrays, and n-cuts that give every array of a column split (or every
    array of a block split) whole folds."""
    a = matrix_section(hw, item.unit)
    gemms = max(item.count, 1)
    if a.count == 1:
        return 1, a.cols
    if a.split == "blocks":  # os: ceil(folds / arrays) waves of one fold
        m_folds = ceil_div(item.m, a.rows)
        folds = m_folds * ceil_div(item.n, a.cols)
        return a.count // math.gcd(a.count, folds), a.cols * (a.count // math.gcd(a.count, m_folds))
    spread = a.count // gemms if gemms < a.count else 1
    return a.count, a.cols * (spread if a.dataflow != "is" else 1)


def _gemm_tiles(item: WorkItem, hw: Hardware, n_tiles: int,
                ganged: bool = False) -> list[tuple[int, int]]:
    """(cycles, macs) of the item's GEMMs split into about ``n_tiles`` pieces.

    Whole GEMMs are grouped first. When there are fewer GEMMs than tiles, each
    GEMM's stationary operand W[k,n] is cut on **fold boundaries** (multiples of
    the array's rows along k, of its columns along n): SCALE-Sim's cycle count is
    a sum over folds, so such cuts cost at most the unsplit GEMM, whereas a cut
    inside a fold would pay a whole fold for a sliver. The dimension cut first is
    the one whose cuts are free for the dataflow (ws: both; os: n; is: k); the
    other follows only if more pieces are needed. ``ganged``: groups and n-cuts also
    respect the ganged arrays (``_ganged``), so that the cuts are free there too
    (fewer pieces than ``n_tiles`` may result), and the groups and cuts are uniform (more
    pieces may result), so that a big GEMM is one long run of identical tiles, whose
    periods the engine skips whole.
    """
    a = matrix_section(hw, item.unit)
    m, k, n, gemms = item.m, item.k, item.n, max(item.count, 1)
    cyc = lambda mm, kk, nn, g: gemm_cycles(mm, kk, nn, g, hw, item.unit)
    group, n_align = _ganged(item, hw) if ganged else (1, a.cols)
    if n_tiles <= gemms:
        return [(cyc(m, k, n, g), g * m * k * n) for g in split_aligned(gemms, n_tiles, group, ganged)]
    per_gemm = ceil_div(n_tiles, gemms)
    if a.dataflow == "is":
        ks = split_aligned(k, per_gemm, a.rows, ganged)
        ns = split_aligned(n, ceil_div(per_gemm, len(ks)), n_align, ganged)
    else:
        ns = split_aligned(n, per_gemm, n_align, ganged)
        ks = split_aligned(k, ceil_div(per_gemm, len(ns)), a.rows, ganged)
    # SCALE-Sim counts a GEMM's cycles up to its last output line, one less than its folds
    # take; that one cycle belongs to the GEMM, not to each piece of it
    piece_cycles = {(kk, nn): cyc(m, kk, nn, 1) + 1 for kk in set(ks) for nn in set(ns)}
    pieces = [(piece_cycles[kk, nn], m * kk * nn) for kk in ks for nn in ns]
    pieces[-1] = (pieces[-1][0] - 1, pieces[-1][1])
    return pieces * gemms


def _compute_bound(pieces: list[tuple[int, int]], dram_bytes: int, hw: Hardware) -> bool:
    """Whether an array item's cycles at ``clock_hz`` outlast its DRAM bytes at the
    achievable bandwidth: such an item runs at ``sustained_clock_hz`` (a GPU holds its
    boost clock while memory-bound, well under its power limit, and drops to the sustained
    clock under tensor-core load; docs/hardware.md)."""
    return (hw.sustained_clock_hz is not None
            and sum(c for c, _ in pieces) > transfer_cycles(dram_bytes, hw.dram_bytes_per_cycle))


def _spilled_inputs(act_read_bytes: int, kv: list[int], budget: int) -> list[int]:
    """Per tile of an array item, the spilled input bytes it brings: in full stream slots
    from the first tile (the room its KV share leaves in each), or evenly where there
    are fewer pieces than the slots would need."""
    if not act_read_bytes:
        return [0] * len(kv)
    room = [max(0, budget - x) for x in kv]
    if sum(room) >= act_read_bytes:
        return fill_first(act_read_bytes, room)
    return split_even(act_read_bytes, len(kv))


def item_tiles(item: WorkItem, hw: Hardware, kv_on_chip_: bool) -> list[Tile]:
    """The item as a sequence of tiles whose on-chip bytes fit their buffer slot."""
    tr = item_traffic(item, hw, kv_on_chip_)
    try:
        kind = hw.unit(item.unit).kind
    except ValueError as exc:
        raise ValueError(f"work item {item.id}: {exc}") from None
    if kind == "matrix":
        return _matrix_tiles(item, hw, tr)
    return _vector_tiles(item, hw, tr)


def _matrix_tiles(item: WorkItem, hw: Hardware, tr: Traffic) -> list[Tile]:
    """``item_tiles`` of an item on a matrix unit: its GEMMs cut on folds."""
    if min(item.m, item.k, item.n) < 1:
        raise ValueError(f"work item {item.id} ({item.op}) on the {item.unit} needs m, k, n >= 1")
    w_total = tr.weight_bytes
    s_total = tr.kv_read_bytes + tr.act_read_bytes
    # 1. what the slots require (cut on array folds, as few pieces as fit) ...
    n_fit = max(1, ceil_div(w_total, weight_slot_bytes(hw)),
                ceil_div(s_total, stream_slot_bytes(hw, item.unit)))
    pieces, budget = _gemm_tiles(item, hw, n_fit), stream_slot_bytes(hw, item.unit)
    # 2. ... or, finer, the pipeline tiles, cut where the ganged arrays lose nothing,
    # when such cuts still fit the slots and cost no more
    n_pipe = max(n_fit, ceil_div(w_total, weight_tile_budget(hw)),
                 ceil_div(s_total, stream_tile_budget(hw, item.unit)))
    if n_pipe > n_fit:
        free = _gemm_tiles(item, hw, n_pipe, ganged=True)
        if len(free) >= min(n_fit, len(pieces)) and \
                sum(c for c, _ in free) <= sum(c for c, _ in pieces):
            pieces, budget = free, stream_tile_budget(hw, item.unit)
    # 3. the bytes spread over the pieces
    count = len(pieces)
    kv = split_even(tr.kv_read_bytes, count)
    acts = _spilled_inputs(tr.act_read_bytes, kv, budget)
    # 4. a compute-bound item runs at the sustained clock
    if _compute_bound(pieces, w_total + s_total, hw):
        pieces = [(hw.compute_cycles(c), mac) for c, mac in pieces]
    return [Tile(w, k + a, c, mac, 0) for w, k, a, (c, mac) in
            zip(split_even(w_total, count), kv, acts, pieces)]


def _vector_tiles(item: WorkItem, hw: Hardware, tr: Traffic) -> list[Tile]:
    """``item_tiles`` of an item on a vector unit: its cycles spread over its stream tiles."""
    v = hw.section(item.unit)
    cycles = 0
    if item.elements:
        try:
            cpe = getattr(v.cycles_per_element, item.vector_kind)
        except AttributeError:
            raise ValueError(f"work item {item.id}: unknown vector_kind {item.vector_kind!r}") from None
        cycles += pick_cycles(item, hw, cpe) if item.vector_kind == "pick" and v.pick_lanes \
            else vector_cycles(item.elements, v.lanes, cpe)
    if item.macs:  # attention mapped to a vector unit: one MAC per lane per cycle
        cycles += vector_cycles(item.macs, v.lanes, 1.0)
    params = 0 if param_resident(item, hw) else tr.weight_bytes
    s_total = params + tr.kv_read_bytes + tr.act_read_bytes
    n_tiles = max(1, ceil_div(s_total, stream_tile_budget(hw, item.unit)))
    return [Tile(0, s, c, mac, v) for s, c, mac, v in
            zip(split_even(s_total, n_tiles), split_even(cycles, n_tiles),
                split_even(item.macs, n_tiles), split_even(item.vector_ops, n_tiles))]


def pick_cycles(item: WorkItem, hw: Hardware, cycles_per_element: float) -> int:
    """Cycles of a pick whose rows are each reduced on ``pick_lanes`` lanes (``Vector``): the
    rows (one id out per row) in waves over the lane groups, each wave one row's logits."""
    v = hw.section(item.unit)
    rows = max(1, item.act_out_bytes // hw.bytes_per_element)
    waves = ceil_div(rows, v.lanes // v.pick_lanes)
    return waves * vector_cycles(item.elements // rows, v.pick_lanes, cycles_per_element)


class TileSums(NamedTuple):
    """Totals over one item's tiles (shared by items of equal shape)."""

    cycles: int
    macs: int
    vector_ops: int
    largest_stream: int  # bytes of its largest stream tile


def tile_sums(tiles: Sequence[Tile]) -> TileSums:
    return TileSums(sum(t.cycles for t in tiles), sum(t.macs for t in tiles),
                    sum(t.vector_ops for t in tiles), max((t.stream_bytes for t in tiles), default=0))


class CostPlan(NamedTuple):
    """Tiles, their totals and DRAM traffic of every item of a run, by item id (not a
    strategy's ``speedsim.contracts.plan.Plan``: this is how the hardware costs one)."""

    kv_on_chip: bool
    tiles: dict[int, list[Tile]]
    traffic: dict[int, Traffic]
    sums: dict[int, TileSums]


def _shape(item: WorkItem) -> tuple:
    """Everything ``item_tiles`` and ``item_traffic`` read, i.e. what makes two items cost the same."""
    return (item.unit, item.m, item.k, item.n, item.count, item.elements, item.vector_kind,
            item.weight_key is None, item.weight_bytes, item.act_in_bytes, item.act_out_bytes, item.kv_read_bytes,
            item.kv_write_bytes, item.macs, item.vector_ops)


def plan(items: Sequence[WorkItem], hw: Hardware) -> CostPlan:
    """``item_tiles``, ``tile_sums`` and ``item_traffic`` of every item; items of equal
    shape are costed once (and share one tile list)."""
    kv_chip = kv_on_chip(items, hw)
    cache: dict[tuple, tuple[list[Tile], Traffic, TileSums]] = {}
    tiles, traffic, sums = {}, {}, {}
    for it in items:
        key = _shape(it)
        hit = cache.get(key)
        if hit is None:
            t = item_tiles(it, hw, kv_chip)
            hit = cache[key] = (t, item_traffic(it, hw, kv_chip), tile_sums(t))
        tiles[it.id], traffic[it.id], sums[it.id] = hit
    return CostPlan(kv_chip, tiles, traffic, sums)


def compulsory_weights(items: Sequence[WorkItem], hw: Hardware) -> list[bool]:
    """Per item (in list order): its weight bytes are compulsory DRAM traffic. Array weights
    and resident vector-unit parameters (``param_resident``) are fetched once per residency
    key at least, so only the first item of a key counts; keyless weights and streamed
    parameters count every time."""
    seen: set = set()
    out = [True] * len(items)
    for i, it in enumerate(items):
        key = it.weight_key
        if key is None or (not on_matrix(it, hw) and not param_resident(it, hw)):
            continue
        if key in seen:
            out[i] = False
        else:
            seen.add(key)
    return out


def roofline(items: Sequence[WorkItem], hw: Hardware, plan_: CostPlan | None = None) -> Roofline:
    """Lower bound on the cycles of ``items``: the most of each compute unit's and the
    DRAM's bound.

    A unit's cycles are the sum of its items' ``item_tiles`` cycles (each unit
    runs one tile at a time). DRAM bytes are the compulsory ones: each weight
    key fetched once (keyless weights every time), all DRAM KV and spilled
    activation traffic; their time is bytes at the effective bandwidth plus one
    latency. Resident vector-unit parameters count once per key, like weights
    (``compulsory_weights``).
    """
    p = plan_ if plan_ is not None else plan(items, hw)
    busy = dict.fromkeys(hw.compute_units, 0)
    dram_bytes = 0
    for it, weights in zip(items, compulsory_weights(items, hw)):
        busy[it.unit] += p.sums[it.id].cycles
        tr = p.traffic[it.id]
        dram_bytes += (tr.weight_bytes if weights else 0) + tr.kv_read_bytes + tr.kv_write_bytes \
            + tr.act_read_bytes + tr.act_write_bytes
    dram = transfer_cycles(dram_bytes, hw.dram_bytes_per_cycle) + (hw.dram_latency_cycles if dram_bytes else 0)
    return Roofline(max(*busy.values(), dram), busy, dram, dram_bytes)


MAX_PATTERN = 16  # the longest period of a tile list looked for (``TileShapes.pattern``)


class TileShapes:
    """Facts about tile lists, cached per list (items of one shape share theirs): where the
    next tile with bytes of a kind is (the loaders' cursors, ``speedsim.sim.loaders``), where
    a period of tiles stops repeating and a list's own period (``speedsim.sim.skipper``)."""

    def __init__(self):
        self._firsts: dict[tuple, list[int]] = {}  # (tile list id, what stops) -> ``_first``
        self._ends: dict[tuple, tuple] = {}  # (tile list id, k0, p) -> ``ends``
        self._patterns: dict[int, int] = {}

    def next_with(self, tiles: list[Tile], field: int) -> list[int]:
        """Per index j, the first index >= j whose tile has bytes in ``Tile`` field ``field``."""
        return self._first(tiles, field, lambda i: tiles[i][field])

    def ends(self, tiles: list[Tile], k0: int, p: int) -> tuple:
        """A period of ``p`` tiles from ``k0``: where it ends (the first index >= ``k0 + p``
        whose tile differs from the one ``p`` before, or >= ``k0`` whose tile has no cycles);
        where its weight, stream bytes stop repeating (the tiles the loaders issue but the
        period does not compute); whether its tiles carry weight, stream bytes."""
        key = (id(tiles), k0, p)
        hit = self._ends.get(key)
        if hit is None:
            at, sample = min(k0 + p, len(tiles)), tiles[k0:k0 + p]
            idle = self._first(tiles, "idle", lambda i: tiles[i].cycles == 0)
            hit = self._ends[key] = (
                min(self._differs(tiles, p, None)[at], idle[min(k0, len(tiles))]),
                (self._differs(tiles, p, "weight_bytes")[at],
                 self._differs(tiles, p, "stream_bytes")[at]),
                (any(t.weight_bytes for t in sample), any(t.stream_bytes for t in sample)))
        return hit

    def _differs(self, tiles: list[Tile], p: int, field: str | None) -> list[int]:
        """Per index i, the first index >= i whose tile (its ``field``) differs from the one
        ``p`` before (or has none ``p`` before)."""
        get = (lambda t: t) if field is None else attrgetter(field)
        return self._first(tiles, (p, field), lambda i: i < p or get(tiles[i]) != get(tiles[i - p]))

    def _first(self, tiles: list[Tile], what: Hashable, stop: Callable[[int], bool]) -> list[int]:
        """Per index i, the first index >= i where ``stop`` holds, else ``len(tiles)``."""
        hit = self._firsts.get((id(tiles), what))
        if hit is None:
            hit = self._firsts[(id(tiles), what)] = [len(tiles)] * (len(tiles) + 1)
            for i in range(len(tiles) - 1, -1, -1):
                hit[i] = i if stop(i) else hit[i + 1]
        return hit

    def pattern(self, tiles: list[Tile]) -> int:
        """The period p <= ``MAX_PATTERN`` of ``tiles``' first stretch, where the first tile
        comes back after a different one, if the first p tiles repeat there, else 1. A head
        cut into 5 equal pieces and a shorter one: 6."""
        hit = self._patterns.get(id(tiles))
        if hit is None:
            n, first = len(tiles), tiles[0]
            run = next((j for j in range(1, min(n, MAX_PATTERN)) if tiles[j] != first), None)
            back = None if run is None else next(
                (j for j in range(run + 1, min(n, MAX_PATTERN + 1)) if tiles[j] == first), None)
            hit = self._patterns[id(tiles)] = \
                back if back and tiles[back:2 * back] == tiles[:back] else 1
        return hit

"""Replay engine: exact timelines, physical sanity, invariants (DESIGN §5, §10)."""

from __future__ import annotations

import gc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speedsim.config.hw import hardware_from_dict
from speedsim.hw import cost
from speedsim.hw.systolic import gemm_cycles
from speedsim.contracts.results import ITEM_COLUMNS, LOG_COLUMNS
from speedsim.sim.engine import replay
from speedsim.contracts.workitem import WorkItem


def small_hw(bandwidth_gb_s=1.0, weight_kib=0.3125, engines=2, channels=1, double=True,
             latency_ns=10.0, efficiency=1.0, act_kib=1.0, array=None, vector=None,
             interleave_bytes=256, **top):
    """8x8 int8 ws array at 1 GHz: bytes/cycle = bandwidth_gb_s * efficiency. The default
    weight buffer (320 B) keeps 40 B for parameters and holds two 140 B weight slots."""
    return hardware_from_dict({
        "name": "t", "clock_hz": 1e9, "precision": "int8",
        "array": {"rows": 8, "cols": 8, "dataflow": "ws"} | (array or {}),
        "vector": {"lanes": 8} | (vector or {}),
        "dram": {"bandwidth_gb_s": bandwidth_gb_s, "latency_ns": latency_ns,
                 "efficiency": efficiency, "channels": channels,
                 "interleave_bytes": interleave_bytes, "energy_pj_per_bit": 4.0},
        "dma": {"engines": engines},
        "buffers": {"weight": {"size_kib": weight_kib, "energy_pj_per_byte": 1.0},
                    "activation": {"size_kib": act_kib, "energy_pj_per_byte": 1.0},
                    "accumulator": {"size_kib": 1, "energy_pj_per_byte": 1.0},
                    "double_buffering": double},
        "energy": {"mac_pj": 0.1, "vector_op_pj": 0.2, "static_power_w": 0.5}} | top)


def gemm(i, m, k, n, key=None, deps=(), **kw):
    return WorkItem(id=i, unit="array", op=kw.pop("op", "mlp_up"), phase="decode", deps=tuple(deps),
                    m=m, k=k, n=n, count=1, weight_key=key, weight_bytes=k * n,
                    act_in_bytes=m * k, act_out_bytes=m * n, macs=m * k * n, **kw)


def spans(result, unit, kind, category=None):
    log = result.log
    rows = log[(log.unit == unit) & (log.kind == kind) & ((log.category == category) | (category is None))]
    return list(zip(rows.start_cycle, rows.end_cycle))


def tiled(items, hw):
    """A replay that logs every tile."""
    return replay(items, hw, log_tiles=True)


def vec(i, elements, deps=(), kind="residual", **kw):
    return WorkItem(id=i, unit="vector", op=kind, phase="decode", deps=tuple(deps),
                    elements=elements, vector_kind=kind, vector_ops=elements, **kw)



# --- exact timelines -------------------------------------------------------------------

TILE = gemm_cycles(1, 8, 16, 8, 8, "ws")  # one 8x16 weight tile (128 B): 2 folds x 23 - 1 = 45
# A GEMM cut into tiles keeps SCALE-Sim's "- 1" once: every tile but its last takes TILE + 1.


def test_double_buffered_gemm_dma_bound_timeline():
    # 1 B/cycle, latency 10, two engines, two 140 B slots -> 4 tiles of 128 B, 128 cycles each.
    # Tiles 0 and 1 are issued at 0 and move one after the other; tile g+2 is issued when
    # tile g finishes computing, and the DRAM streams without a gap.
    r = tiled([gemm(0, 1, 8, 64, key="w")], small_hw())
    assert TILE == 45
    assert spans(r, "dram", "load") == [(0, 128), (128, 256), (256, 384), (384, 512)]
    assert spans(r, "array", "compute") == [(138, 184), (266, 312), (394, 440), (522, 567)]
    assert r.total_cycles == 567 == 512 + 10 + TILE  # all bytes + one latency + last tile


def test_double_buffered_gemm_compute_bound_timeline():
    # 16 B/cycle: a tile arrives 8 + 10 cycles after issue, well inside one tile's compute.
    r = tiled([gemm(0, 1, 8, 64, key="w")], small_hw(bandwidth_gb_s=16.0))
    assert spans(r, "dram", "load") == [(0, 8), (8, 16), (64, 72), (110, 118)]
    assert spans(r, "array", "compute") == [(18, 64), (64, 110), (110, 156), (156, 201)]
    assert r.total_cycles == 18 + 4 * TILE + 3


def test_without_double_buffering_fetch_and_compute_alternate():
    # one slot of 280 B: 2 tiles of 256 B (k=8, n=32: 4 folds x 23 = 92 cycles, the last
    # 91), no overlap
    r = tiled([gemm(0, 1, 8, 64, key="w")], small_hw(double=False))
    assert spans(r, "dram", "load") == [(0, 256), (358, 614)]
    assert spans(r, "array", "compute") == [(266, 358), (624, 715)]


def test_one_dma_engine_pays_the_latency_on_every_tile():
    # a weight tile holds the only engine until its data has arrived: 128 + 10 per tile
    r = tiled([gemm(0, 1, 8, 64, key="w")], small_hw(engines=1))
    assert spans(r, "dram", "load") == [(0, 128), (138, 266), (276, 404), (414, 542)]


def test_dependent_item_waits_for_kv_store():
    items = [gemm(0, 1, 8, 8, key="a", kv_write_bytes=32),
             gemm(1, 1, 8, 8, key="b", deps=[0])]
    r = tiled(items, small_hw(bandwidth_gb_s=16.0))
    it = r.items.set_index("item")
    # item 0: weights 64 B (0..4, +10) = 14, one fold 23 - 1 = 22 cycles -> 36; item 1's
    # weights were prefetched (4..8); the 32 B store: 36..38 + 10 = 48
    assert (it.loc[0, "compute_end_cycle"], it.loc[0, "end_cycle"]) == (36, 48)
    assert (it.loc[1, "ready_cycle"], it.loc[1, "start_cycle"]) == (48, 48)
    assert spans(r, "dram", "load") == [(0, 4), (4, 8)]


def test_demand_load_preempts_a_weight_stream():
    # An 11-tile weight stream (128 B tiles at 1 B/cycle) keeps the DRAM busy. A vector
    # item whose 512 B of parameters do not fit the 40 B parameter share streams them as a
    # demand transfer when it starts at cycle 100 (after a 100-cycle residual); it takes the
    # DRAM at once: 512 cycles of its own bytes + 64 latency, not a wait behind the 128 B
    # weight tile in flight (which resumes at 612 with its 28 bytes left) or the next one.
    # vector stream slots of 512 B; a 64-cycle latency makes 8 latencies of data (512 B) no
    # shorter, so the parameters move as one tile
    hw = small_hw(act_kib=8, latency_ns=64.0)
    items = [gemm(0, 1, 8, 11 * 16, key="w"),
             vec(1, 800),  # 800 elements / 8 lanes = 100 cycles
             vec(2, 8, deps=[1], kind="norm", weight_key="p", weight_bytes=512)]
    r = tiled(items, hw)
    assert spans(r, "dram", "load", "stream") == [(100, 612)]
    assert spans(r, "dram", "load", "weight")[:2] == [(0, 640), (640, 768)]
    norm = r.items.set_index("item").loc[2]
    assert (norm.start_cycle, norm.compute_end_cycle) == (676, 676 + 4)  # 8 x 4 / 8 lanes


def test_kv_reads_are_prefetched_once_their_deps_have_started():
    # attention reads 512 B of KV (32 cycles at 16 B/cycle): issued when its dep (a 100-cycle
    # residual) starts, at 0, so it is on chip (42) before the residual ends; under per_op it
    # waits for the item itself
    attn = vec(1, 8, deps=[0], kind="softmax", kv_read_bytes=512)
    r = tiled([vec(0, 800), attn], small_hw(bandwidth_gb_s=16.0, act_kib=8))
    assert spans(r, "dram", "load", "stream") == [(0, 32)]
    assert spans(r, "vector", "compute") == [(0, 100), (100, 104)]
    per_op = tiled([vec(0, 800), attn], small_hw(bandwidth_gb_s=16.0, act_kib=8,
                                                 weight_prefetch="per_op"))
    assert spans(per_op, "dram", "load", "stream") == [(100, 132)]
    assert spans(per_op, "vector", "compute") == [(0, 100), (142, 146)]


def test_resident_parameters_are_fetched_once():
    hw = small_hw(bandwidth_gb_s=16.0)
    items = [vec(i, 8, deps=[i - 1] if i else [], kind="norm", weight_key=("norm", i % 2),
                 weight_bytes=16) for i in range(4)]
    r = tiled(items, hw)
    assert list(r.items.weight_bytes_fetched) == [16, 16, 0, 0]
    # norm 0: 16 B (1 cycle) + 10 latency, then 8 x 4 / 8 = 4 cycles
    assert spans(r, "vector", "compute")[:2] == [(11, 15), (26, 30)]


def test_array_op_overhead_delays_the_first_tile_not_the_prefetch():
    hw = small_hw(bandwidth_gb_s=16.0, array={"op_overhead_ns": 20.0})
    r = tiled([gemm(0, 1, 8, 64, key="w")], hw)
    assert spans(r, "dram", "load")[:2] == [(0, 8), (8, 16)]
    assert spans(r, "array", "compute")[0] == (20, 66)
    assert r.total_cycles == 20 + 4 * TILE + 3


def test_vector_op_overhead_holds_back_its_demand_transfers():
    hw = small_hw(bandwidth_gb_s=16.0, act_kib=8, vector={"op_overhead_ns": 7.0})
    r = tiled([vec(0, 8, kind="norm", weight_key="p", weight_bytes=512)], hw)
    assert spans(r, "dram", "load", "stream") == [(7, 39)]  # 512 B / 16 = 32 cycles
    assert spans(r, "vector", "compute") == [(49, 53)]


def test_per_op_weight_prefetch_waits_for_the_item():
    items = [gemm(0, 1, 8, 8, key="a", kv_write_bytes=32),
             gemm(1, 1, 8, 8, key="b", deps=[0])]
    r = tiled(items, small_hw(bandwidth_gb_s=16.0, weight_prefetch="per_op"))
    # item 1 starts at 48 (see test_dependent_item_waits_for_kv_store), then fetches 64 B
    assert spans(r, "dram", "load") == [(0, 4), (48, 52)]
    assert spans(r, "array", "compute") == [(14, 36), (62, 84)]


def test_overlapped_weight_load_hides_all_but_the_first_fold_load():
    # 2 folds per tile: serial 46 (45 for the last); overlapped saves one 8-cycle row load
    hw = small_hw(bandwidth_gb_s=16.0, array={"weight_load": "overlapped"})
    r = tiled([gemm(0, 1, 8, 64, key="w")], hw)
    assert spans(r, "array", "compute") == [(18, 56), (56, 94), (94, 132), (132, 169)]


# --- physical sanity ---------------------------------------------------------------------

def weight_stream(n_items=4, k=64, n=4096):
    return [gemm(i, 1, k, n, key=("w", i), deps=[i - 1] if i else []) for i in range(n_items)]


def test_long_weight_stream_reaches_95_percent_of_effective_bandwidth():
    hw = small_hw(bandwidth_gb_s=1.0, efficiency=0.9, weight_kib=16)
    r = replay(weight_stream(), hw)
    moved = r.items.weight_bytes_fetched.sum()
    assert moved == 4 * 64 * 4096
    achieved = moved / r.total_cycles
    assert achieved >= 0.95 * hw.dram_bytes_per_cycle


def test_doubling_dram_bandwidth_nearly_halves_a_memory_bound_run():
    slow = replay(weight_stream(), small_hw(bandwidth_gb_s=0.5, weight_kib=16)).total_cycles
    fast = replay(weight_stream(), small_hw(bandwidth_gb_s=1.0, weight_kib=16)).total_cycles
    assert 1.9 <= slow / fast <= 2.0


def test_second_gemm_on_resident_weights_fetches_nothing():
    items = [gemm(0, 1, 64, 96, key="shared"), gemm(1, 1, 64, 96, key="shared", deps=[0])]
    r = tiled(items, small_hw(bandwidth_gb_s=16.0, weight_kib=8))  # 2 tiles
    fetched = r.items.set_index("item").weight_bytes_fetched
    assert (fetched[0], fetched[1]) == (64 * 96, 0)
    assert (r.log.category == "weight").sum() == 2


def test_weights_larger_than_the_buffer_are_fetched_again():
    items = [gemm(0, 1, 64, 96, key="big"), gemm(1, 1, 64, 96, key="big", deps=[0])]
    r = replay(items, small_hw(bandwidth_gb_s=16.0, weight_kib=2))
    assert list(r.items.weight_bytes_fetched) == [64 * 96, 64 * 96]


# --- invariants ---------------------------------------------------------------------------

def test_result_schema():
    r = replay(weight_stream(2), small_hw(weight_kib=16))
    assert tuple(r.log.columns) == LOG_COLUMNS
    assert tuple(r.items.columns) == ITEM_COLUMNS
    assert tuple(r.occupancy.columns) == ("buffer", "cycle", "bytes")
    assert r.events > 0 and r.total_cycles == r.items.end_cycle.max()


def test_a_lean_replay_has_the_same_items_and_no_frames():
    """``frames=False`` (serving's memo): the items' columns are the items table's, to the
    value (and dtype, numbers); no log or occupancy; the same cycles, events and energy."""
    from speedsim.metrics.energy import per_item_energy_j
    items, hw = decode_like(), small_hw(bandwidth_gb_s=0.5)
    full, lean = replay(items, hw), replay(items, hw, frames=False)
    assert (lean.log, lean.occupancy) == (None, None)
    assert list(lean.items) == list(ITEM_COLUMNS)
    for c in ITEM_COLUMNS:  # (the frame makes text columns strings)
        assert full.items[c].dtype.kind not in "if" or lean.items[c].dtype == full.items[c].dtype, c
        assert list(lean.items[c]) == list(full.items[c]), c
    assert (lean.total_cycles, lean.events) == (full.total_cycles, full.events)
    for part, joules in per_item_energy_j(items, full.items, hw).items():
        assert list(per_item_energy_j(items, lean.items, hw)[part]) == list(joules), part


def test_occupancy_never_exceeds_capacity():
    hw = small_hw(weight_kib=4)
    r = replay(weight_stream(3, k=64, n=512) + [gemm(3, 1, 64, 512, key=("w", 0), deps=[2])], hw)
    peak = r.occupancy.groupby("buffer").bytes.max()
    share = 4 * 1024 * 7 // 8  # the tile share of the buffer; tiles of at most half of it
    assert share - share // 2 < peak["weight"] <= share  # the LRU fills it before evicting


def test_a_finished_replay_is_freed_without_the_cyclic_collector():
    # the CLI runs with the collector paused (speedsim.api.collector_paused): a replay must
    # leave nothing for it but SimPy's own Environment cycle (the environment, its bound
    # event constructors, its empty queue and event counter)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        replay(decode_like(), small_hw(bandwidth_gb_s=0.5))
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert kinds <= {"Environment", "method", "list", "count"}


def test_an_over_full_buffer_trips_the_engine_assertion(monkeypatch):
    from speedsim.hw import cost
    monkeypatch.setattr(cost, "weight_tile_budget", lambda hw: 10**9)  # tiles ignore the buffer
    monkeypatch.setattr(cost, "weight_slot_bytes", lambda hw: 10**9)
    with pytest.raises((AssertionError, ValueError), match="weight"):
        replay(weight_stream(1, k=64, n=512), small_hw())
    with pytest.raises((AssertionError, ValueError), match="weight"):  # a lean replay too
        replay(weight_stream(1, k=64, n=512), small_hw(), frames=False)


def test_a_weight_key_names_one_size():
    with pytest.raises(ValueError, match="weight key 'w' has 64 bytes here and 32 before"):
        replay([gemm(0, 1, 4, 8, key="w"), gemm(1, 1, 8, 8, key="w")], small_hw())


def test_deps_must_come_first():
    with pytest.raises(ValueError, match="depends on 5"):
        replay([gemm(0, 1, 8, 8, deps=[5])], small_hw())


# --- skipped periods vs tile by tile, roofline, on random DAGs ------------------------------
# (a second check beside the independent oracle, speedsim.sim.reference: tests/test_reference_engine.py)

def decode_like(n_tokens=3, layers=2, d=64, kv0=16):
    items, i = [], 0
    for t in range(n_tokens):
        for layer in range(layers):
            prev = (i - 1,) if i else ()
            kv = (kv0 + t) * d
            items += [
                gemm(i, 1, d, 3 * d, key=("qkv", layer), deps=prev, op="qkv", kv_write_bytes=2 * d),
                WorkItem(id=i + 1, unit="array", op="attn_score", phase="decode", deps=(i,),
                         m=1, k=16, n=kv0 + t, count=4, kv_read_bytes=kv, macs=4 * 16 * (kv0 + t)),
                WorkItem(id=i + 2, unit="vector", op="softmax", phase="decode", deps=(i + 1,),
                         elements=4 * (kv0 + t), vector_kind="softmax", vector_ops=4 * (kv0 + t)),
                WorkItem(id=i + 3, unit="array", op="attn_value", phase="decode", deps=(i + 2,),
                         m=1, k=kv0 + t, n=16, count=4, kv_read_bytes=kv, macs=4 * 16 * (kv0 + t)),
                gemm(i + 4, 1, d, d, key=("out", layer), deps=(i + 3,), op="out_proj"),
                WorkItem(id=i + 5, unit="vector", op="residual", phase="decode", deps=(i + 4,),
                         elements=d, vector_kind="residual", vector_ops=d, act_in_bytes=2 * d,
                         act_out_bytes=d, wasted_fraction=0.5 if t == n_tokens - 1 else 0.0),
            ]
            i += 6
    return items


def assert_same(a, b):
    assert a.total_cycles == b.total_cycles
    assert a.items.equals(b.items)
    assert a.log.equals(b.log)
    # every buffer's whole trace: a skipped weight run records the bytes held at the
    # misses that change them (its first ones), where tile-by-tile replay does
    for occ in (a.occupancy, b.occupancy):
        assert (occ.groupby("buffer").cycle.diff().dropna() > 0).all()
    assert a.occupancy.equals(b.occupancy)


def long_runs(n_items=3, d=64, n=4096):
    """Items of many identical tiles: weight streams, KV reads, a spilled vector op."""
    items = []
    for i in range(n_items):
        deps = [len(items) - 1] if items else []
        items.append(gemm(len(items), 1, d, n, key=("w", i % 2), deps=deps, kv_write_bytes=64))
        items.append(WorkItem(id=len(items), unit="array", op="attn_score", phase="decode",
                              deps=(len(items) - 1,), m=1, k=16, n=700, count=8,
                              kv_read_bytes=8 * 16 * 700, macs=8 * 16 * 700))
        items.append(vec(len(items), 9000, deps=(len(items) - 1,), kind="activation",
                         act_in_bytes=9000, act_out_bytes=9000))
    return items


@pytest.mark.parametrize("hw", [small_hw(bandwidth_gb_s=1.0, weight_kib=1),
                                small_hw(bandwidth_gb_s=16.0, weight_kib=1, channels=3, engines=1),
                                small_hw(bandwidth_gb_s=4.0, weight_kib=2, double=False, channels=2),
                                small_hw(bandwidth_gb_s=0.5, weight_kib=8, efficiency=0.7,
                                         engines=3, channels=4)])
def test_closed_form_runs_change_nothing(hw):
    items = long_runs()
    fast, slow = replay(items, hw), replay(items, hw, closed_form_runs=False)
    assert_same(fast, slow)


def test_closed_form_runs_play_long_weight_runs_in_few_events():
    hw = small_hw(bandwidth_gb_s=1.0, weight_kib=1, act_kib=64)  # activations stay on chip
    items = long_runs()
    fast, slow = replay(items, hw), replay(items, hw, closed_form_runs=False)
    assert_same(fast, slow)
    assert fast.events < slow.events / 2


def booked_bulk(monkeypatch) -> list[int]:
    """The issue cycle of every bulk transfer booked with the DRAM, from now on."""
    from speedsim.hw import units

    booked = []
    bulk = units.Dram.bulk
    monkeypatch.setattr(units.Dram, "bulk", lambda self, now, b: (booked.append(now), bulk(self, now, b))[1])
    return booked


def test_a_weight_run_books_its_transient_and_skips_the_rest(monkeypatch):
    """A GEMM's tiles load equal bytes, and all but its last compute for TILE + 1 cycles (the
    last keeps SCALE-Sim's "- 1"). Besides the two slots filled before the GEMM starts, three
    transfers are booked one by one until the pipeline's relative state repeats; the other
    123 are skipped in whole periods, the shorter last tile's too (it loads the same bytes:
    only its compute differs, which the periods do not reach). Exact, as tile by tile."""
    hw = small_hw(bandwidth_gb_s=1.0, weight_kib=1, act_kib=64)
    items = [gemm(0, 1, 64, 256, key="a")]
    tiles = cost.plan(items, hw).tiles[0]
    assert len(tiles) == 128 and tiles[-1] == tiles[0]._replace(cycles=TILE)
    booked = booked_bulk(monkeypatch)
    fast = replay(items, hw)
    assert booked == [0, 0, 184, 312, 440]
    monkeypatch.undo()
    assert_same(fast, replay(items, hw, closed_form_runs=False))


def test_weight_runs_of_a_chain_of_gemms_are_skipped_and_fetch_every_byte(monkeypatch):
    """Three GEMMs of equal tiles in a chain: each run is skipped in whole periods after its
    transient (13 of 384 transfers booked one by one). The log rows, fetched bytes and
    buffer trace equal tile-by-tile replay's."""
    hw = small_hw(bandwidth_gb_s=1.0, weight_kib=1, act_kib=64)
    items = [gemm(0, 1, 64, 256, key="a"), gemm(1, 1, 64, 256, key="b", deps=(0,)),
             gemm(2, 1, 64, 256, key="c", deps=(1,))]
    booked = booked_bulk(monkeypatch)
    fast = replay(items, hw)
    assert len(booked) == 13
    monkeypatch.undo()
    slow = replay(items, hw, closed_form_runs=False)
    assert_same(fast, slow)
    assert fast.items.weight_bytes_fetched.tolist() == [256 * 64] * 3


def test_a_weight_run_is_skipped_while_a_kv_prefetch_moves():
    """The attention after a GEMM prefetches its KV read once the GEMM starts, so the read
    moves during the GEMM's first weight tiles: the skipper waits until the DRAM's relative
    state repeats and equals tile-by-tile replay."""
    hw = small_hw(bandwidth_gb_s=2.0, weight_kib=1)
    items = [gemm(0, 1, 64, 300, key="a", kv_write_bytes=64),
             gemm(1, 1, 64, 2000, key="b", deps=(0,)),
             WorkItem(id=2, unit="array", op="attn_score", phase="decode", deps=(1,), m=1, k=16,
                      n=700, count=8, kv_read_bytes=8 * 16 * 700, macs=8 * 16 * 700)]
    fast = replay(items, hw)
    assert fast.events < 40  # GEMM 1's 500 tiles and the 700 KV tiles: a few stretches
    assert_same(fast, replay(items, hw, closed_form_runs=False))


@st.composite
def random_dags(draw):
    n = draw(st.integers(1, 10))
    # a weight key names one tensor: one GEMM shape per key, one parameter size per key
    shapes = {key: (draw(st.integers(1, 96)), draw(st.integers(1, 2000))) for key in "abc"}
    params = {key: draw(st.sampled_from([0, 16, 128])) for key in "pq"}
    items = []
    for i in range(n):
        deps = tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
        kind = draw(st.sampled_from(["gemm", "gemm", "attn", "vector"]))
        if kind == "gemm":
            key = draw(st.sampled_from([None, "a", "b", "c"]))
            k, nn = shapes[key] if key else (draw(st.integers(1, 96)), draw(st.integers(1, 2000)))
            items.append(gemm(i, draw(st.integers(1, 9)), k, nn, key=key,
                              deps=deps, kv_write_bytes=draw(st.sampled_from([0, 64, 300]))))
        elif kind == "attn":
            L = draw(st.integers(1, 300))
            items.append(WorkItem(id=i, unit=draw(st.sampled_from(["array", "vector"])),
                                  op="attn_score", phase="decode", deps=deps,
                                  m=1, k=8, n=L, count=draw(st.integers(1, 4)), elements=8 * L,
                                  vector_kind="softmax", kv_read_bytes=8 * L, macs=8 * L))
        else:
            e = draw(st.integers(1, 500))
            key = draw(st.sampled_from([None, "p", "q"]))
            items.append(vec(i, e, deps=deps, kind="norm", weight_key=key,
                             weight_bytes=params[key] if key else draw(st.sampled_from([0, 16, 128])),
                             act_in_bytes=e, act_out_bytes=e))
    hw = small_hw(bandwidth_gb_s=draw(st.sampled_from([0.5, 2.0, 16.0])),
                  weight_kib=draw(st.sampled_from([0.3125, 1.0, 8.0])),
                  engines=draw(st.integers(1, 3)), double=draw(st.booleans()),
                  channels=draw(st.sampled_from([1, 1, 3, 8])),
                  interleave_bytes=draw(st.sampled_from([16, 64, 256])),
                  efficiency=draw(st.sampled_from([0.7, 1.0])),
                  weight_prefetch=draw(st.sampled_from(["ahead", "per_op"])),
                  array={"op_overhead_ns": draw(st.sampled_from([0.0, 30.0]))})
    return items, hw


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_dags())
def test_closed_form_runs_equal_tile_by_tile_and_never_beat_the_roofline(case):
    """Both units contend for the DRAM (weights, KV reads, parameters, stores)."""
    items, hw = case
    a = replay(items, hw)
    b = replay(items, hw, closed_form_runs=False)
    assert_same(a, b)
    assert a.total_cycles >= a.roofline.cycles
    done = a.items.set_index("item").end_cycle
    ready = a.items.set_index("item").ready_cycle
    for it in items:
        assert all(ready[it.id] >= done[d] for d in it.deps)


def kv_runs(n_items=3):
    """Attention items of long periodic KV-read tile patterns (period 1, 2 and 3 tiles),
    between GEMMs whose weight tiles are prefetched during them and vector ops, then a
    GEMM with spilled inputs."""
    items = []
    for i, (n, heads) in enumerate([(700, 8), (700, 3), (333, 5)][:n_items]):
        deps = [len(items) - 1] if items else []
        items.append(gemm(len(items), 1, 64, 300, key=("w", i), deps=deps, kv_write_bytes=64))
        items.append(WorkItem(id=len(items), unit="array", op="attn_score", phase="decode",
                              deps=(len(items) - 1,), m=1, k=16, n=n, count=heads,
                              kv_read_bytes=heads * 16 * n, macs=heads * 16 * n))
        items.append(WorkItem(id=len(items), unit="vector", op="softmax", phase="decode",
                              deps=(len(items) - 1,), elements=heads * n, vector_kind="softmax",
                              vector_ops=heads * n, kv_read_bytes=heads * 16 * n))
    # a GEMM whose spilled inputs stream in with its weight tiles: not a stream-only run
    items.append(gemm(len(items), 64, 64, 600, key="spill", deps=[len(items) - 1]))
    return items


def skipped_tiles(monkeypatch) -> list[int]:
    """The tiles each jump of the period skipper skips, from now on."""
    from speedsim.sim import skipper

    skipped = []
    jump = skipper.Stretch._jump
    monkeypatch.setattr(skipper.Stretch, "_jump", lambda self, k, *a: (
        lambda got: (got and skipped.append(got[0] - k), got)[1])(jump(self, k, *a)))
    return skipped


@pytest.mark.parametrize("hw", [small_hw(bandwidth_gb_s=2.0, weight_kib=1),  # compute-bound KV
                                small_hw(bandwidth_gb_s=0.5, weight_kib=1),  # DRAM-bound KV
                                small_hw(bandwidth_gb_s=4.0, weight_kib=2, engines=1, latency_ns=300),
                                small_hw(bandwidth_gb_s=1.0, weight_kib=1, weight_prefetch="per_op",
                                         array={"op_overhead_ns": 30.0})])
def test_periodic_kv_reads_are_skipped_exactly(hw, monkeypatch):
    skipped = skipped_tiles(monkeypatch)
    items = kv_runs()
    fast = replay(items, hw)
    slow = replay(items, hw, closed_form_runs=False)
    assert_same(fast, slow)
    act = lambda r: r.occupancy[r.occupancy.buffer == "activation"].reset_index(drop=True)
    assert act(fast).equals(act(slow))  # the whole trace, not only its peak
    plan = cost.plan(items, hw)
    stream_tiles = sum(1 for it in items for t in plan.tiles[it.id] if t.stream_bytes)
    all_tiles = sum(len(plan.tiles[it.id]) for it in items)
    assert sum(skipped) > 0.8 * stream_tiles  # most tiles are skipped in whole periods
    assert sum(skipped) > 0.9 * all_tiles and fast.events < 25


def test_heads_of_five_equal_pieces_and_a_shorter_one_are_skipped_whole(monkeypatch):
    """7B decode attention at 559 positions on edge: each head's KV is cut into 6 tiles, 5
    of 1140 cycles and one of 1139, and the pipeline is relaxed (the same state before
    every tile). The shortest repeating state is one tile back, which skips only within
    a run of 5; the tiles' own period (6) skips whole heads. Exact, as tile by tile."""
    from speedsim.config import load_hardware
    from speedsim.sim import skipper

    hw = load_hardware("hw_configs/edge.yaml")
    attn = WorkItem(id=1, unit="array", op="attn_score", phase="decode", deps=(0,), m=1, k=128,
                    n=559, count=32, kv_read_bytes=2289664, macs=2289664, act_in_bytes=4096,
                    act_out_bytes=17888)
    items = [vec(0, 4096, kind="residual"), attn, vec(2, 17888, deps=(1,), kind="softmax")]
    tiles = cost.plan(items, hw).tiles[1]
    assert len(tiles) == 192 and [t.cycles for t in tiles[:6]] == [1140] * 5 + [1139]
    visits = []
    visit = skipper.Stretch._visit
    monkeypatch.setattr(skipper.Stretch, "_visit",
                        lambda self, k, now: (visits.append(k), visit(self, k, now))[1])
    fast = replay(items, hw)
    assert len(visits) < 30  # 131 with the shortest period only
    assert_same(fast, replay(items, hw, closed_form_runs=False))


def test_closed_form_runs_record_the_weight_trace_as_tile_by_tile_replay_does():
    """7B layer shapes on edge: GEMMs of 32 KiB and 43 KiB weight tiles alternate, so every
    streamed run begins by evicting the other size; the bytes held change at its first
    misses, which the skipper must place where tile-by-tile replay does (the mean
    occupancy in summary.json is the time-weighted trace)."""
    from speedsim import api
    from speedsim.config import load_hardware, load_workload

    hw = load_hardware("hw_configs/edge.yaml")
    wl = load_workload("workloads/llama7b_cycle_u8.yaml", [
        ("model.n_layers", 8), ("generation.prompt_tokens", 4), ("generation.new_tokens", 2)])
    captured = []
    plan_items = lambda items, hw, **kw: (captured.append(items), replay(items, hw, **kw))[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(api, "replay", plan_items)
        api.simulate(hw, wl, ["sequential"])
    fast, slow = replay(captured[0], hw), replay(captured[0], hw, closed_form_runs=False)
    assert_same(fast, slow)
    weight = fast.occupancy[fast.occupancy.buffer == "weight"]
    assert weight.bytes.nunique() > 3  # the transients are there to get right
    assert fast.events < slow.events / 10

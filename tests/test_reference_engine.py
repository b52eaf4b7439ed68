"""The tile-level reference engine (``speedsim.sim.reference``) as the production engine's oracle.

Exact timelines of tiny scenarios on the reference itself, then production
``replay`` against it: on random DAGs where both units contend for the DRAM
(to the cycle), on random DAGs where the array is the only DRAM client
(to the cycle), and on the shipped hardware × workloads × strategies (to the cycle).
"""

from __future__ import annotations

import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from speedsim.config import load_hardware, load_workload
from speedsim.contracts.workitem import WorkItem
from speedsim.contracts.results import ITEM_COLUMNS
from speedsim.sim.engine import replay
from speedsim.sim.reference import RefDram, RefWeightBuffer, reference_replay
from test_sim_engine import decode_like, gemm, long_runs, random_dags, small_hw, spans, vec

TILE = 45  # one 8x16 weight tile on the 8x8 array: 2 folds x 23 - 1 (test_sim_engine.TILE)


# --- the DRAM alone ---------------------------------------------------------------------

def dram_timeline(engines: int, requests: list[tuple[int, str, int]]) -> list[tuple[str, int]]:
    """(name, arrival cycle) of transfers ``(issue cycle, name, cycles)`` at 1 B/cycle,
    latency 10, names starting with ``d`` demand, others bulk."""
    env = simpy.Environment()
    dram = RefDram(env, small_hw(engines=engines), [])
    seen: list[tuple[str, int]] = []

    def issue(at: int, name: str, cycles: int):
        yield env.timeout(at)
        row = ("dram", 0, name, "load", "", cycles, -1)
        ev = dram.demand(cycles, row) if name[0] == "d" else dram.bulk(cycles, row)
        ev.callbacks.append(lambda e: seen.append((name, e.value)))

    for req in requests:
        env.process(issue(*req))
    env.run()
    return seen


def test_demand_preempts_bulk_first_come_first_served_and_bulk_resumes():
    # bulk b moves 0..20, loses the port to d1 (20..30) and d2 (queued behind d1: 30..35),
    # then moves its remaining 80 cycles 35..115; each arrives 10 cycles after its last byte
    seen = dram_timeline(2, [(0, "b", 100), (20, "d1", 10), (25, "d2", 5)])
    assert seen == [("d1", 40), ("d2", 45), ("b", 125)]


@pytest.mark.parametrize("engines, second", [(1, 120), (2, 110)])
def test_bulk_holds_a_dma_engine_until_its_data_has_arrived(engines, second):
    # one engine: b2 starts when b1 has arrived (60); two: right after b1's last byte (50)
    assert dram_timeline(engines, [(0, "b1", 50), (0, "b2", 50)]) == [("b1", 60), ("b2", second)]


def test_weight_buffer_evicts_the_least_recently_used_unpinned_tile():
    buf = RefWeightBuffer(300)
    assert [buf.acquire(k, 100) for k in "abc"] == [False] * 3
    buf.release("a"), buf.release("b")
    assert buf.acquire("a", 100)  # a hit, and now the most recent
    buf.release("a")
    assert not buf.acquire("d", 100)  # evicts b (least recent unpinned), not c (pinned)
    assert list(buf.tiles) == ["c", "a", "d"] and buf.used == 300


# --- exact timelines of the reference engine -----------------------------------------------

def test_double_buffered_gemm_timeline():
    # 1 B/cycle, latency 10, two engines, two 140 B slots -> 4 tiles of 128 B: the DRAM
    # streams without a gap, each tile computes 10 cycles after its last byte
    r = reference_replay([gemm(0, 1, 8, 64, key="w")], small_hw())
    assert spans(r, "dram", "load") == [(0, 128), (128, 256), (256, 384), (384, 512)]
    assert spans(r, "array", "compute") == [(138, 184), (266, 312), (394, 440), (522, 567)]
    assert r.total_cycles == 567 == 512 + 10 + TILE


def test_one_dma_engine_pays_the_latency_on_every_tile():
    r = reference_replay([gemm(0, 1, 8, 64, key="w")], small_hw(engines=1))
    assert spans(r, "dram", "load") == [(0, 128), (138, 266), (276, 404), (414, 542)]
    assert spans(r, "array", "compute") == [(138, 184), (276, 322), (414, 460), (552, 597)]


def test_small_demand_load_during_a_weight_stream_costs_its_bytes_plus_latency():
    # 11 weight tiles of 128 B keep the DRAM busy; at 100 (after a 100-cycle residual) a
    # norm streams 512 B of parameters (too big for the 40 B share) as one tile (8 latencies
    # of 64 cycles are no shorter): 100..612, on chip at 676, norm 8 x 4 / 8 lanes = 4
    # cycles. Weight tile 0 moved 0..100, resumes 612..640 (28 B left), arrives 704; tile 1
    # follows 640..768, arrives 832.
    hw = small_hw(act_kib=8, latency_ns=64.0)
    items = [gemm(0, 1, 8, 11 * 16, key="w"), vec(1, 800),
             vec(2, 8, deps=[1], kind="norm", weight_key="p", weight_bytes=512)]
    r = reference_replay(items, hw)
    assert spans(r, "dram", "load", "stream") == [(100, 612)]
    assert spans(r, "dram", "load", "weight")[:3] == [(0, 640), (640, 768), (768, 896)]
    assert spans(r, "vector", "compute") == [(0, 100), (676, 680)]
    assert spans(r, "array", "compute")[:2] == [(704, 750), (832, 878)]


def test_kv_reads_are_prefetched_once_their_deps_have_started():
    # 512 B of KV at 16 B/cycle (32 cycles): issued when the residual it depends on starts
    # (0), on chip at 42, before the residual ends (100); under per_op at the item (100)
    attn = vec(1, 8, deps=[0], kind="softmax", kv_read_bytes=512)
    ahead = reference_replay([vec(0, 800), attn], small_hw(bandwidth_gb_s=16.0, act_kib=8))
    assert spans(ahead, "dram", "load", "stream") == [(0, 32)]
    assert spans(ahead, "vector", "compute") == [(0, 100), (100, 104)]
    per_op = reference_replay([vec(0, 800), attn], small_hw(bandwidth_gb_s=16.0, act_kib=8,
                                                            weight_prefetch="per_op"))
    assert spans(per_op, "dram", "load", "stream") == [(100, 132)]
    assert spans(per_op, "vector", "compute") == [(0, 100), (142, 146)]


def test_item_is_done_when_its_store_has_arrived():
    # item 0: 64 B of weights 0..4 (+10), one fold 22 cycles -> 36; its 32 B store 36..38,
    # arrives 48; item 1's weights were prefetched (4..8), it starts at 48
    items = [gemm(0, 1, 8, 8, key="a", kv_write_bytes=32), gemm(1, 1, 8, 8, key="b", deps=[0])]
    r = reference_replay(items, small_hw(bandwidth_gb_s=16.0))
    got = r.items.set_index("item")[["ready_cycle", "start_cycle", "compute_end_cycle", "end_cycle"]]
    assert got.values.tolist() == [[0, 14, 36, 48], [48, 48, 70, 70]]
    assert tuple(r.items.columns) == ITEM_COLUMNS


# --- production vs reference on random DAGs -------------------------------------------------

@st.composite
def array_only_dram_dags(draw):
    """``random_dags`` whose vector items move nothing to or from DRAM (no parameters, no KV,
    activations on chip), so the array is the DRAM's only client."""
    items, hw = draw(random_dags())
    quiet = [WorkItem(id=it.id, unit="vector", op="residual", phase="decode", deps=it.deps,
                      elements=it.elements, vector_kind="residual", vector_ops=it.elements,
                      act_in_bytes=min(it.elements, 128), act_out_bytes=min(it.elements, 128))
             if it.unit == "vector" else it for it in items]
    return quiet, hw


# derandomized: every run draws the same 500 examples, so a failure in CI reproduces on any
# machine (new examples each run once made this test fail one run in many, on a logging
# case since fixed: a bulk transfer pre-empted in the cycle it was granted); 8,000 fresh
# examples (4,000 per test) passed before it was pinned so
EXAMPLES = settings(max_examples=500, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


@EXAMPLES
@given(random_dags())
def test_production_equals_the_reference_to_the_cycle_when_both_units_use_the_dram(case):
    assert_same_transfers(*assert_same_items(*case))


def assert_same_items(items, hw):
    """Both engines' replays of ``items``, asserted equal item for item and in total cycles."""
    prod, ref = replay(items, hw), reference_replay(items, hw)
    assert prod.items.equals(ref.items)  # every item's cycles and bytes
    assert prod.total_cycles == ref.total_cycles
    return prod, ref


def assert_same_transfers(prod, ref) -> None:
    """Per item and DRAM category: the same bytes, first start and last end (the reference
    logs each transfer, production one row per item and category)."""
    def per_item(log):
        dram = log[log.unit == "dram"]
        return dram.groupby(["item", "kind", "category"]).agg(
            start=("start_cycle", "min"), end=("end_cycle", "max"), bytes=("bytes", "sum"),
            busy=("busy_cycles", "sum")).reset_index()
    assert per_item(prod.log).equals(per_item(ref.log))


@EXAMPLES
@given(array_only_dram_dags())
def test_production_equals_the_reference_to_the_cycle_with_one_dram_client(case):
    assert_same_items(*case)


@pytest.mark.parametrize("items", [decode_like(), long_runs()], ids=["decode_like", "long_runs"])
@pytest.mark.parametrize("hw", [small_hw(bandwidth_gb_s=1.0, weight_kib=1),
                                small_hw(bandwidth_gb_s=16.0, weight_kib=1, channels=3, engines=1),
                                small_hw(bandwidth_gb_s=4.0, weight_kib=2, double=False),
                                small_hw(bandwidth_gb_s=0.5, weight_kib=8, efficiency=0.7,
                                         engines=3, weight_prefetch="per_op")])
def test_skipped_runs_equal_the_reference(items, hw):
    prod, ref = replay(items, hw), reference_replay(items, hw)
    assert prod.total_cycles == ref.total_cycles
    assert prod.items.equals(ref.items)
    assert_same_transfers(prod, ref)


# --- production vs reference on the shipped configs -----------------------------------------

def both_engines(hw_file: str, wl_file: str, monkeypatch) -> list[tuple[str, object, object]]:
    """(strategy, production result, reference result) of ``simulate`` with 8 new tokens."""
    import speedsim.api as api

    pairs = []

    def replay_both(items, hw, **kw):
        pairs.append((replay(items, hw, **kw), reference_replay(items, hw)))
        return pairs[-1][0]

    monkeypatch.setattr(api, "replay", replay_both)
    result = api.simulate(load_hardware(hw_file),
                          load_workload(wl_file, [("generation.new_tokens", 8)]))
    return [(name, *pair) for name, pair in zip(result.runs, pairs)]


# edge × llama7b_cycle_u8 (about a minute on the reference) is in benchmarks/bench_oracle.py
SHIPPED = [(f"hw_configs/{hw}.yaml", "workloads/gen.yaml")
           for hw in ("a100", "datacenter", "edge", "h100", "h200", "tiny")] + \
          [(f"hw_configs/{hw}.yaml", "workloads/llama7b_cycle_u8.yaml") for hw in ("h100", "h200")] + \
          [("hw_configs/edge.yaml", "workloads/strategies.yaml")]


@pytest.mark.parametrize("hw_file, wl_file", SHIPPED)
def test_shipped_runs_agree_with_the_reference(hw_file, wl_file, monkeypatch):
    for name, prod, ref in both_engines(hw_file, wl_file, monkeypatch):
        assert prod.total_cycles == ref.total_cycles, name
        assert prod.items.equals(ref.items), name  # every item's cycles and bytes
        assert_same_transfers(prod, ref)


@pytest.mark.parametrize("engine", [replay, reference_replay], ids=["production", "reference"])
def test_a_small_transfer_sees_one_channels_bandwidth_and_a_large_one_all(engine):
    # 16 B/cycle over 4 channels of 4 B/cycle, 64-byte granules; latency 10. A 64 B parameter
    # load is one granule on one channel: 16 cycles (4 with one channel), then the norm's 4.
    # 320 B of KV are 5 granules, two on channel 0: 32 cycles (20 with one), then 4 of
    # softmax. 1024 B of KV move as two 512 B tiles of 8 granules, 2 per channel: 32 cycles
    # each whatever the channels; the second tile computes after the first.
    def timeline(channels: int, item: WorkItem) -> tuple[list[tuple[int, int]], int]:
        hw = small_hw(bandwidth_gb_s=16.0, channels=channels, interleave_bytes=64, act_kib=8,
                      weight_kib=2)
        r = engine([item], hw)
        loads = r.log[r.log.unit == "dram"]
        return sorted(set(zip(loads.start_cycle, loads.end_cycle))), r.total_cycles
    param = vec(0, 8, kind="norm", weight_key="p", weight_bytes=64)
    short, long_ = (vec(0, 8, kind="softmax", kv_read_bytes=b) for b in (320, 1024))
    assert timeline(4, param) == ([(0, 16)], 16 + 10 + 4)
    assert timeline(1, param) == ([(0, 4)], 4 + 10 + 4)
    assert timeline(4, short) == ([(0, 32)], 32 + 10 + 4)
    assert timeline(1, short) == ([(0, 20)], 20 + 10 + 4)
    for channels in (1, 4):
        spans_ = [(0, 32), (32, 64)] if engine is reference_replay else [(0, 64)]  # per tile / item
        assert timeline(channels, long_) == (spans_, 64 + 10 + 2)


def test_a_prefetch_gated_on_a_start_books_before_the_starting_items_own_stream():
    # Item 1's KV read may start once item 0 has started (cycle 0); item 0's own KV read is
    # issued at the end of its (zero) issue overhead, also cycle 0, but after: 8 B at
    # 0.35 B/cycle take 23 cycles each, so item 1's is 0..23 and item 0's 23..46, on chip
    # at 56; item 0 computes 56..78, item 1 78..83.
    hw = small_hw(bandwidth_gb_s=0.5, efficiency=0.7, engines=1, double=False)
    attn = dict(phase="decode", m=1, k=8, n=1, count=1, elements=8, vector_kind="softmax",
                kv_read_bytes=8, macs=8)
    items = [WorkItem(id=0, unit="array", op="attn_score", **attn),
             WorkItem(id=1, unit="vector", op="attn_score", deps=(0,), **attn)]
    for r in (reference_replay(items, hw), replay(items, hw)):
        loads = r.log[r.log.category == "stream"].sort_values("start_cycle")
        assert list(zip(loads.item, loads.start_cycle, loads.end_cycle)) == [(1, 0, 23), (0, 23, 46)]
        assert list(r.items.end_cycle) == [78, 83]


def test_a_bulk_pre_empted_in_the_cycle_it_is_granted_starts_when_its_first_byte_moves():
    # Found by the random DAGs above. Item 0 is done at 482, so item 1's 8 B KV read is issued
    # then (482..483); item 2 ends its 30-cycle issue overhead at 482 too and issues its 1 B
    # weight tile (per_op). The reference granted that bulk transfer the port at 482 and lost it
    # to the demand in the same cycle, and logged 482 as its start though it moved no byte then.
    hw = small_hw(bandwidth_gb_s=16.0, efficiency=0.7, engines=1, double=False,
                  interleave_bytes=16, array={"op_overhead_ns": 30.0}, weight_prefetch="per_op")
    items = [gemm(0, 5, 20, 32, kv_write_bytes=64),
             WorkItem(id=1, unit="vector", op="attn_score", phase="decode", deps=(0,), m=1, k=8,
                      n=1, count=1, elements=8, vector_kind="softmax", kv_read_bytes=8, macs=8),
             gemm(2, 1, 1, 1, key="a"), gemm(3, 1, 1, 1, key="a")]
    for r in (reference_replay(items, hw), replay(items, hw)):
        late = r.log[(r.log.unit == "dram") & (r.log.item >= 1)]
        assert list(zip(late.item, late.category, late.start_cycle, late.end_cycle)) == \
            [(1, "stream", 482, 483), (2, "weight", 483, 484)]


@pytest.mark.parametrize("engine", [replay, reference_replay], ids=["production", "reference"])
def test_the_compute_units_come_from_the_hardware(engine, monkeypatch):
    """Both engines run one process per unit the hardware names (``Hardware.compute_units``):
    with the array alone, array items replay as before and a vector item is refused."""
    from speedsim.config.hw import Hardware

    hw = small_hw(bandwidth_gb_s=2.0, weight_kib=1)
    items = [gemm(0, 1, 64, 300, key="a", kv_write_bytes=64), gemm(1, 1, 64, 200, key="b", deps=(0,))]
    both = engine(items, hw)
    monkeypatch.setattr(Hardware, "compute_units", property(lambda self: ("array",)))
    assert engine(items, hw).items.equals(both.items)
    with pytest.raises(ValueError, match="runs on 'vector', not one of \\('array',\\)"):
        engine(items + [vec(2, 8, deps=(1,))], hw)

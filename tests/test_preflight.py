"""Checks made before the replay: run-size estimates, tiles that fit, attention on the vector unit."""

import dataclasses
import math

import pytest

from speedsim.api import simulate
from speedsim.config import ConfigError, load_hardware, load_workload
from speedsim.config.budget import Limits, check_budget, numeric_bytes, work_items
from speedsim.hw import cost

EDGE, GEN = "hw_configs/edge.yaml", "workloads/gen.yaml"
SHORT = [("generation.new_tokens", 8)]


@pytest.mark.parametrize("workload", ["gen", "no_sharing", "batch4", "low_acceptance"])
def test_the_work_estimate_is_within_a_third_of_the_items(workload):
    wl = load_workload(f"workloads/{workload}.yaml", SHORT)
    result = simulate(load_hardware(EDGE), wl)
    items = sum(len(r.plan.items) for r in result.runs.values())
    assert 0.75 * items <= work_items(wl, 2) <= 1.34 * items, items


def test_numeric_bytes_count_weights_and_kv_cache_in_float32():
    wl = load_workload(GEN)  # d 384, d_ff 1536, U 3, N 12, vocab 256, 256 positions, batch 1
    per_set = 384 * 3 * 384 + 384 * 384 + 2 * 384 * 1536
    kv = 12 * 2 * 256 * 384
    assert numeric_bytes(wl) == 4 * (3 * per_set + (256 + 256) * 384 + kv)
    shape_only = load_workload("workloads/llama7b_cycle_u8.yaml")
    assert numeric_bytes(shape_only) == 0


def test_limits_are_checked_on_both_numbers_and_can_be_raised():
    wl = load_workload(GEN)
    need = work_items(wl, 2)
    check_budget(wl, 2, Limits(max_work_items=need))
    with pytest.raises(ConfigError, match=f"about {need:,} work items"):
        check_budget(wl, 2, Limits(max_work_items=need - 1))
    with pytest.raises(ConfigError, match="GiB"):
        check_budget(wl, 2, Limits(max_memory_gib=0.01))


@pytest.mark.parametrize("size_kib, ok", [(2.0, True), (1.99, False)])
def test_a_double_buffered_weight_buffer_holds_two_array_tiles(size_kib, ok):
    over = [("buffers.weight.size_kib", size_kib)]
    if ok:
        assert load_hardware(EDGE, over).buffers.weight.size_kib == size_kib
    else:
        with pytest.raises(ConfigError, match="cannot hold 2 32x32 int8 array tiles of 1024"):
            load_hardware(EDGE, over)


def test_the_activation_buffer_boundary_is_where_the_replay_starts_to_fit():
    """4 KiB holds gen's two largest stream tiles (2048 bytes each) and runs; 3.9 KiB is refused.
    No vector item streams beside them: the dependencies keep them apart."""
    wl = load_workload(GEN, SHORT)
    simulate(load_hardware(EDGE, [("buffers.activation.size_kib", 4.0)]), wl)
    with pytest.raises(ConfigError, match="needs at least 4 KiB") as err:
        simulate(load_hardware(EDGE, [("buffers.activation.size_kib", 3.9)]), wl)
    assert err.value.key == "hw.buffers.activation.size_kib"


@pytest.mark.parametrize("attn_deps", [(), (0,)])
def test_an_array_tile_over_its_slot_leaves_room_for_the_vector_units_stream(attn_deps):
    """Regression: a 64-byte activation buffer (4×8 is arrays) passed the preflight with
    two 30-byte KV tiles of an attention item (a fold minimum, over the array's 12-byte
    slot), then overflowed when the vector unit streamed its parameters beside them
    (here to 68 bytes) — also when the norm is the attention's dep, since KV is
    prefetched once the deps have started. Both units' slots are now counted."""
    from test_sim_engine import small_hw, vec
    from speedsim.contracts.workitem import WorkItem
    from speedsim.hw.fit import check_tiles_fit
    from speedsim.sim.engine import replay

    hw = small_hw(act_kib=0.0625, array={"rows": 4, "cols": 8, "count": 4, "dataflow": "is"})
    norm = vec(0, 1, kind="norm", weight_bytes=128, act_in_bytes=1, act_out_bytes=1)
    attn = WorkItem(id=1, unit="array", op="attn_score", phase="decode", deps=attn_deps,
                    m=1, k=8, n=15, count=1, kv_read_bytes=120, macs=120)
    tiles = cost.plan([norm, attn], hw).tiles
    assert max(t.stream_bytes for t in tiles[1]) == 30 > cost.stream_slot_bytes(hw, "array")
    with pytest.raises(ConfigError, match="beside 2 of the vector unit's 4 bytes"):
        check_tiles_fit([norm, attn], hw)
    with pytest.raises(AssertionError, match="occupancy 68 bytes exceeds its 64"):
        replay([norm, attn], hw)  # what the preflight now refuses
    # a norm after the attention never streams beside it: accepted, and it runs
    after = [dataclasses.replace(attn, id=0, deps=()), vec(1, 1, deps=(0,), kind="norm", weight_bytes=128,
                                                          act_in_bytes=1, act_out_bytes=1)]
    check_tiles_fit(after, hw)
    replay(after, hw)


def test_attention_on_the_vector_unit_costs_one_mac_per_lane_per_cycle():
    hw_array = load_hardware(EDGE)
    hw_vector = load_hardware(EDGE, [("attention_on", "vector")])
    result = simulate(hw_vector, load_workload(GEN, SHORT), ["sequential"])
    items = [it for it in result.runs["sequential"].plan.items
             if it.op in ("attn_score", "attn_value")]
    assert items and all(it.unit == "vector" and it.elements == 0 for it in items)
    for it in items[:4]:
        tiles = cost.item_tiles(it, hw_vector, False)
        assert sum(t.cycles for t in tiles) == math.ceil(it.macs / hw_vector.vector.lanes)
    array_run = simulate(hw_array, load_workload(GEN, SHORT), ["sequential"])
    assert result.summary["strategies"]["sequential"]["macs"] == \
        array_run.summary["strategies"]["sequential"]["macs"]

"""The roofline lower bound (docs/metrics.md, DESIGN §7): by hand on a tiny DAG, and never
above the simulated decode time on any shipped workload."""

from __future__ import annotations

import glob

import numpy as np
import pytest

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload
from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost
from speedsim.metrics import roofline
from speedsim.metrics.core import latency
from speedsim.sim.engine import replay
from test_metrics import WL, hw

TILE_CYCLES = 45  # one 8×16 weight tile at M = 1 on the 8×8 ws array: 2 folds × 23 − 1


def _gemm(i: int, key: str, deps: tuple[int, ...], phase: str = "decode") -> WorkItem:
    return WorkItem(id=i, unit="array", op="qkv", phase=phase, deps=deps, m=1, k=8, n=16,
                    count=1, weight_key=key, weight_bytes=128, act_in_bytes=8, act_out_bytes=16,
                    macs=128)


def diamond() -> Plan:
    """Prefill GEMM on weights "a"; decode: a GEMM on "a" (seen, no compulsory bytes) and one
    on "b" (128 B) side by side, then a softmax over 80 elements reading 200 B of KV."""
    items = [_gemm(0, "a", (), "prefill"), _gemm(1, "a", (0,)), _gemm(2, "b", (0,)),
             WorkItem(id=3, unit="vector", op="softmax", phase="decode", deps=(1, 2), elements=80,
                      vector_kind="softmax", kv_read_bytes=200, act_in_bytes=8, act_out_bytes=8,
                      vector_ops=80)]
    execs = [TokenExec(0, "prefill", 0, 4, "committed", 0, 0),
             TokenExec(1, "decode", 0, 4, "committed", 1, 3)]
    return Plan("hand", items, execs, prefill_last_item=0)


def test_item_bounds_by_hand():
    # effective DRAM 1 B/cycle; softmax: 80 elements · 4 cycles / 8 lanes = 40 cycles
    p = diamond()
    assert list(roofline.item_bound_cycles(p.items, hw())) == [
        max(128, TILE_CYCLES), TILE_CYCLES, max(128, TILE_CYCLES), max(200, 40)]


def test_bound_is_the_longest_path_to_the_last_commit():
    # prefill counts 0; max(45, 128) on the two parallel branches, then 200: 328 cycles
    assert roofline.roofline_decode_cycles(diamond(), hw()) == 128 + 200
    assert roofline.roofline_decode_s(diamond(), hw()) == pytest.approx(328e-9)


def test_diamond_simulates_above_its_bound():
    p = diamond()
    sim = replay(p.items, hw())
    decode_s = latency(p, sim.items, hw(), WL)["decode_time_s"]
    assert decode_s >= roofline.roofline_decode_s(p, hw())


def test_longest_path_takes_the_heavier_branch():
    items = diamond().items
    finish = roofline.longest_path_cycles(items, np.array([7, 5, 3, 2]))
    assert finish == {0: 0, 1: 5, 2: 3, 3: 7}


SHIPPED = sorted(glob.glob("workloads/*.yaml"))


@pytest.mark.parametrize("workload", SHIPPED)
def test_simulated_decode_is_never_below_the_bound(workload):
    """Every shipped workload on edge (8 new tokens; the 7B shape with 3 on datacenter)."""
    big = "llama" in workload
    hw_ = load_hardware("hw_configs/datacenter.yaml" if big else "hw_configs/edge.yaml")
    wl = load_workload(workload, [("generation.new_tokens", 3 if big else 8)])
    result = simulate(hw_, wl)
    for name, m in result.summary["strategies"].items():
        assert m["decode_time_s"] >= result.summary["roofline"][name] > 0, name


# -- what a weight buffer of its size cannot avoid ----------------------------------------------

def test_unavoidable_weight_bytes_by_hand():
    five = list("abcde") * 4  # a cycle of 5 weights of 128 B, 4 times
    # each pass is a window (it closes when "a" comes again): 640 B touched, at most 256 on chip
    assert roofline.unavoidable_weight_bytes(five, [128] * 20, 256) == 4 * (640 - 256)
    assert roofline.unavoidable_weight_bytes(five, [128] * 20, 640) == 0  # all fit
    assert roofline.unavoidable_weight_bytes(five, [128] * 20, 639) == 4 * 1
    # sequence sharing (each weight twice in a row): a repeat closes a window only once it
    # holds more than the buffer: [a a b] [b c] [c a] [a b] [b c] [c], 200 − 150 B each but
    # the last (100 B fit)
    assert roofline.unavoidable_weight_bytes(list("aabbccaabbcc"), [100] * 12, 150) == 5 * 50
    assert roofline.unavoidable_weight_bytes(list("aabbccaabbcc"), [100] * 12, 300) == 0


def weight_stream(passes: int = 4) -> Plan:
    """A prefill GEMM, then a decode chain of GEMMs cycling over 5 weights of 128 B."""
    keys = list("abcde") * passes
    items = [_gemm(0, "p", (), "prefill")] + [_gemm(i + 1, k, (i,)) for i, k in enumerate(keys)]
    execs = [TokenExec(0, "prefill", 0, 4, "committed", 0, 0),
             TokenExec(1, "decode", 0, 4, "committed", 1, len(keys))]
    return Plan("stream", items, execs, prefill_last_item=0)


def test_a_buffer_too_small_for_the_weights_bounds_by_their_traffic():
    # weight buffer 256 B, 1 B/cycle: the path counts each weight once (5 · 128 + 15 · 45 =
    # 1315 cycles); the buffer must fetch 640 − 256 B per pass: 4 · 384 = 1536 cycles
    small = hw(buffers={"weight": {"size_kib": 0.25, "energy_pj_per_byte": 1.0},
                        "activation": {"size_kib": 1, "energy_pj_per_byte": 2.0},
                        "accumulator": {"size_kib": 1, "energy_pj_per_byte": 3.0}})
    p = weight_stream()
    finish = roofline.longest_path_cycles(p.items, roofline.item_bound_cycles(p.items, small))
    assert finish[20] == 5 * 128 + 15 * TILE_CYCLES
    assert roofline.resource_bound_cycles(p.items, 20, small, cost.plan(p.items, small)) == 1536
    assert roofline.roofline_decode_cycles(p, small) == 1536
    assert roofline.roofline_decode_cycles(p, hw()) == 5 * 128 + 15 * TILE_CYCLES  # 1 KiB: fits
    sim = replay(p.items, small)
    assert latency(p, sim.items, small, WL)["decode_time_s"] >= roofline.roofline_decode_s(p, small)


def test_the_cone_of_the_last_commit_leaves_out_what_it_does_not_wait_for():
    items = diamond().items
    assert roofline.dependency_cone(items, 3) == [True, True, True, True]
    assert roofline.dependency_cone(items, 2) == [True, False, True, False]


@pytest.mark.parametrize("workload", ["llama2_7b", "llama7b_cycle_u8"])
def test_a_run_with_busy_dram_achieves_most_of_its_bound(workload):
    """Issue 31: h100 × a 7B shape read 49 % of the bound with the DRAM 88 % busy, because
    the bound assumed every weight stayed on chip. A run whose DRAM is ≥ 85 % busy is
    DRAM-bound: the bound must be at least 80 % achieved. (The h100 of issue 31: weights
    prefetched across items, no per-item overheads; as calibrated, a 7B run keeps the DRAM
    71 % busy, the rest of its time going to kernel overheads the bound leaves out.)"""
    hw_ = load_hardware("hw_configs/h100.yaml", [("dram.efficiency", 1.0),
                                                 ("weight_prefetch", "ahead"),
                                                 ("array.op_overhead_ns", 0),
                                                 ("vector.op_overhead_ns", 0)])
    wl = load_workload(f"workloads/{workload}.yaml", [("generation.new_tokens", 16)])
    s = simulate(hw_, wl).summary
    busy = {n: m["dram_bandwidth_utilization"] for n, m in s["strategies"].items()}
    for name, fraction in s["roofline_fraction"].items():
        assert busy[name] < 0.85 or fraction >= 0.8, (name, busy[name], fraction)
        assert fraction <= 1.0
    if workload == "llama2_7b":
        assert busy["speed"] >= 0.85  # the case the test is about occurs

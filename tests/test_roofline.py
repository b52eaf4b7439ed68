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
    big = "llama7b" in workload
    hw_ = load_hardware("hw_configs/datacenter.yaml" if big else "hw_configs/edge.yaml")
    wl = load_workload(workload, [("generation.new_tokens", 3 if big else 8)])
    result = simulate(hw_, wl)
    for name, m in result.summary["strategies"].items():
        assert m["decode_time_s"] >= result.summary["roofline"][name] > 0, name

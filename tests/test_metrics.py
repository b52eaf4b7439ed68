"""Every metric of docs/metrics.md on a tiny synthetic run whose answer is computed by hand.

The run is not simulated: the plan, the per-item table, the event log and the
occupancy samples are written out below, so each expected number follows from
the formula in docs/metrics.md with pencil and paper (1 GHz: a cycle is 1 ns).

Plan (B = 2 sequences, n = 6 new tokens: 5 committed decode executions):

    item unit   phase   start  end   macs  vops wasted  weight kv_r kv_w act  tokens step
    0    array  prefill     0   100  6400     0  0.0     100    0   20   0   (0,)    -1
    1    array  decode    100   110   640     0  0.0      50   10    2   0   (1,)     0
    2    array  decode    110   130   640     0  0.0       0   12    2   0   (2,)     1
    3    array  decode    130   160  1280     0  0.5      50   14    4   0   (3, 6)   1
    4    array  decode    160   200   640     0  0.0       0   16    2   0   (4,)     2
    5    array  decode    200  1200   640     0  0.0       0   18    2   0   (5,)     2
    6    vector decode    200  1250     0   500  1.0       0    0    0  30   (6,)     2

Executions: prefill (0, item 0); decode k = 0..4 committed, ending at items 1..5;
execution 6 (k = 2, launched on a wrong prediction) flushed, items 3 and 6.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from speedsim.config.hw import hardware_from_dict
from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.workitem import WorkItem
from speedsim.metrics import core
from speedsim.metrics.energy import energy, sram_bytes
from speedsim.report.summary import StrategyRun, build_summary
from speedsim.report.timeline import chrome_trace

NS = 1e-9
ROWS = [  # item unit phase start end macs vops wasted weight kv_r kv_w act tokens step
    (0, "array", "prefill", 0, 100, 6400, 0, 0.0, 100, 0, 20, 0, (0,), -1),
    (1, "array", "decode", 100, 110, 640, 0, 0.0, 50, 10, 2, 0, (1,), 0),
    (2, "array", "decode", 110, 130, 640, 0, 0.0, 0, 12, 2, 0, (2,), 1),
    (3, "array", "decode", 130, 160, 1280, 0, 0.5, 50, 14, 4, 0, (3, 6), 1),
    (4, "array", "decode", 160, 200, 640, 0, 0.0, 0, 16, 2, 0, (4,), 2),
    (5, "array", "decode", 200, 1200, 640, 0, 0.0, 0, 18, 2, 0, (5,), 2),
    (6, "vector", "decode", 200, 1250, 0, 500, 1.0, 0, 0, 0, 30, (6,), 2),
]
COLS = ["item", "unit", "phase", "start_cycle", "end_cycle", "macs", "vector_ops",
        "wasted_fraction", "weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes", "act_bytes",
        "tokens", "step"]
ACCEPTED = np.array([True, True, False, True, True])  # early prediction of k equalled the final


def hw(**top):
    """8×8 array (64 PEs) at 1 GHz; DRAM 2 GB/s peak (2 B/cycle), efficiency 0.5 (1 B/cycle)."""
    return hardware_from_dict({
        "name": "hand", "clock_hz": 1e9, "precision": "int8",
        "array": {"rows": 8, "cols": 8, "dataflow": "ws"}, "vector": {"lanes": 8},
        "dram": {"bandwidth_gb_s": 2.0, "latency_ns": 10.0, "efficiency": 0.5,
                 "energy_pj_per_bit": 4.0},
        "buffers": {"weight": {"size_kib": 1, "energy_pj_per_byte": 1.0},
                    "activation": {"size_kib": 1, "energy_pj_per_byte": 2.0},
                    "accumulator": {"size_kib": 1, "energy_pj_per_byte": 3.0}},
        "energy": {"mac_pj": 0.1, "vector_op_pj": 0.2, "static_power_w": 0.5}} | top)


def items_table() -> pd.DataFrame:
    return pd.DataFrame(ROWS, columns=COLS)


def work_items() -> list[WorkItem]:
    """The work items behind the table: what the plan handed the engine (act_in/out 8/8)."""
    out = []
    for i, unit, phase, _start, _end, macs, vops, wasted, weight, kv_r, kv_w, _act, tokens, step \
            in ROWS:
        out.append(WorkItem(id=i, unit=unit, op="x", phase=phase, deps=(i - 1,) if i else (),
                            weight_key=("w", i) if weight else None, weight_bytes=weight,
                            act_in_bytes=8, act_out_bytes=8, kv_read_bytes=kv_r,
                            kv_write_bytes=kv_w, macs=macs, vector_ops=vops, tokens=tokens,
                            wasted_fraction=wasted, step=step))
    return out


def plan() -> Plan:
    execs = [TokenExec(0, "prefill", 0, 4, "committed", 0, 0)]
    execs += [TokenExec(k + 1, "decode", k, 4 + k, "committed", k + 1, k + 1) for k in range(5)]
    execs += [TokenExec(6, "decode", 2, 6, "flushed", 3, 6)]
    return Plan("hand", work_items(), execs, prefill_last_item=0, launched=6, flushes=1)


def sim() -> SimpleNamespace:
    log = pd.DataFrame({"unit": ["array", "vector", "vector", "dram"],
                        "item": [0, 6, 6, 1], "op": ["x", "x", "x", "x"],
                        "kind": ["compute", "compute", "compute", "load"],
                        "start_cycle": [0, 200, 500, 90], "end_cycle": [100, 450, 600, 100],
                        "bytes": [0, 0, 0, 50], "macs": [6400, 0, 0, 0],
                        "wasted_fraction": [0.0, 1.0, 1.0, 0.0]})
    occupancy = pd.DataFrame({"buffer": ["weight", "weight", "weight", "activation"],
                              "cycle": [0, 100, 500, 0], "bytes": [64, 128, 0, 16]})
    return SimpleNamespace(items=items_table(), log=log, occupancy=occupancy, total_cycles=1250)


WL = SimpleNamespace(generation=SimpleNamespace(batch=2, new_tokens=6))


# -- latency -------------------------------------------------------------------------------

def test_latency_by_hand():
    m = core.latency(plan(), items_table(), hw(), WL)
    # commits c_k = 110, 130, 160, 200, 1200; TTFT = end of item 0 = 100
    assert m["ttft_s"] == pytest.approx(100 * NS)
    assert m["decode_tokens"] == 5
    assert m["decode_time_s"] == pytest.approx(1100 * NS)
    assert m["time_per_token_s"] == pytest.approx(220 * NS)  # 1100 / 5
    assert m["tokens_per_s"] == pytest.approx(2 * 5 / 1100e-9)
    assert m["end_to_end_s"] == pytest.approx(1200 * NS)


def test_token_gap_percentiles_by_hand():
    m = core.latency(plan(), items_table(), hw(), WL)
    # gaps 10, 20, 30, 40, 1000; linear interpolation: p50 at rank 2 -> 30,
    # p99 at rank 3.96 -> 40 + 0.96 * 960 = 961.6 (p90 would be 616)
    assert m["inter_token_p50_s"] == pytest.approx(30 * NS)
    assert m["inter_token_p99_s"] == pytest.approx(961.6 * NS)


def test_commit_cycles_follow_position_not_exec_order():
    assert list(core.commit_cycles(plan(), items_table())) == [110, 130, 160, 200, 1200]


# -- utilization and buffers ---------------------------------------------------------------

def test_utilization_by_hand():
    u = core.utilization(sim(), hw())
    # useful MACs 6400 + 4·640 + 1280·0.5 = 9600 over 64 PEs · 1250 cycles
    assert u["array_utilization"] == pytest.approx(9600 / 80000)
    assert u["vector_utilization"] == pytest.approx((250 + 100) / 1250)
    # 332 bytes moved over peak 2 B/cycle (efficiency not applied) · 1250 cycles
    assert core.dram_bytes(items_table()) == 332
    assert u["dram_bandwidth_utilization"] == pytest.approx(332 / 2500)


def test_buffer_occupancy_by_hand():
    b = core.utilization(sim(), hw())["buffers"]
    # weight: 64 B for 100 cycles, 128 B for 400, 0 for 750
    assert b["weight"] == {"peak_bytes": 128, "mean_bytes": pytest.approx(57600 / 1250),
                           "capacity_bytes": 1024}
    assert b["activation"]["peak_bytes"] == 16
    assert b["activation"]["mean_bytes"] == pytest.approx(16.0)  # held the whole run


# -- work and speculation ------------------------------------------------------------------

def test_work_by_hand():
    w = core.work(sim())
    assert w["macs"] == 10240 and w["vector_ops"] == 500 and w["dram_bytes"] == 332
    assert w["dram_bytes_by_kind"] == {"weight_bytes": 200, "kv_read_bytes": 70,
                                       "kv_write_bytes": 32, "act_bytes": 30}
    assert w["wasted_macs"] == pytest.approx(640)  # half of item 3
    assert w["wasted_dram_bytes"] == pytest.approx((50 + 14 + 4) * 0.5 + 30)


def test_speculation_by_hand():
    s = core.speculation(plan(), ACCEPTED)
    assert (s["launched"], s["committed"], s["flushed"], s["flushes"]) == (6, 5, 1, 1)
    # checked: executions 1..4 (rode on the prediction of 0..3): True, False, True, True
    assert s["acceptance_rate"] == pytest.approx(3 / 4)
    # executions per decode step: {1}, {2, 3, 6}, {4, 5, 6} -> 1, 3, 3
    assert s["mean_tokens_in_flight"] == pytest.approx(7 / 3)
    assert s["stage_steps"] == 3


# -- energy ---------------------------------------------------------------------------------

def test_energy_parts_by_hand():
    e = energy(plan().items, sim(), hw())
    assert e["compute"] == pytest.approx(10240 * 0.1e-12)
    assert e["vector"] == pytest.approx(500 * 0.2e-12)
    assert e["dram"] == pytest.approx(332 * 8 * 4.0e-12)
    assert e["static"] == pytest.approx(0.5 * 1250e-9)
    # SRAM (pJ/B: weight 1, activation 2, accumulator 3), per item act_in = act_out = 8:
    # weight  = fetched + weight read (array items): 2·(100 + 50 + 50) = 400 B
    # act     = 6 · (16 + 2·(kv_r + kv_w)) + vector item (16 + 30 spilled) = 96 + 2·102 + 46 = 346 B
    # acc     = 2 · 8 per array item = 96 B
    assert e["sram"] == pytest.approx((400 * 1 + 346 * 2 + 96 * 3) * 1e-12)
    assert e["total"] == pytest.approx(e["compute"] + e["vector"] + e["dram"] + e["sram"]
                                       + e["static"])


def test_wasted_energy_by_hand():
    e = energy(plan().items, sim(), hw())
    # half of item 3: MACs 1280, DRAM 68 B, SRAM weight 100 B, act 16 + 36 B, acc 16 B;
    # all of item 6: 500 vector ops, DRAM 30 B, act 46 B
    item3 = (1280 * 0.1 + 68 * 32 + 100 * 1 + 52 * 2 + 16 * 3) * 0.5
    item6 = 500 * 0.2 + 30 * 32 + 46 * 2
    assert e["wasted"] == pytest.approx((item3 + item6) * 1e-12)


def test_energy_per_token_counts_every_token_of_the_run():
    assert core.run_tokens(WL) == 12  # B · n


def test_sram_bytes_of_an_on_chip_kv_buffer():
    on_chip = hw(buffers={"weight": {"size_kib": 1, "energy_pj_per_byte": 1.0},
                          "activation": {"size_kib": 1, "energy_pj_per_byte": 2.0},
                          "accumulator": {"size_kib": 1, "energy_pj_per_byte": 3.0},
                          "kv": {"size_kib": 1, "energy_pj_per_byte": 1.0}})
    kv = sram_bytes(plan().items, items_table(), on_chip)["kv"]
    assert list(kv) == [20, 12, 14, 18, 18, 20, 0]


# -- summary: speedup, roofline fraction ----------------------------------------------------

def _run(decode_s: float, roof_s: float, baseline: bool = False) -> StrategyRun:
    # a run that says it is the speedup baseline (where StrategyRun carries that flag)
    flag = {"baseline": baseline} if "baseline" in StrategyRun.__dataclass_fields__ else {}
    return StrategyRun(plan(), sim(), {"decode_time_s": decode_s, "roofline_decode_s": roof_s},
                       None, **flag)


def test_speedup_and_roofline_fraction(tiny_workload):
    runs = {"sequential": _run(3e-3, 1.5e-3, baseline=True), "speed": _run(1e-3, 0.25e-3)}
    s = build_summary(hw(), tiny_workload(), runs)
    assert s["speedup"] == {"sequential": 1.0, "speed": pytest.approx(3.0)}
    assert s["roofline"] == {"sequential": 1.5e-3, "speed": 0.25e-3}
    assert s["roofline_fraction"] == {"sequential": pytest.approx(0.5), "speed": pytest.approx(0.25)}


# -- timeline --------------------------------------------------------------------------------

def test_timeline_timestamps_in_microseconds():
    trace = chrome_trace({"hand": (plan(), sim())}, clock_hz=2e9)  # 0.5 ns per cycle
    units = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == 1]
    assert [e["name"] for e in units] == ["x", "x", "x", "x (load)"]
    assert [e["ts"] for e in units] == pytest.approx([0.0, 0.1, 0.25, 0.045])
    assert [e["dur"] for e in units] == pytest.approx([0.05, 0.125, 0.05, 0.005])
    tokens = [e for e in trace["traceEvents"] if e["ph"] == "X" and e["pid"] == 2]
    assert [(e["name"], e["tid"]) for e in tokens] == [
        ("prefill", 1), ("pos 4", 1), ("pos 5", 1), ("pos 6", 1), ("pos 6", 2), ("pos 7", 1),
        ("pos 8", 1)]
    assert [e["ts"] for e in tokens] == pytest.approx([0.0, 0.05, 0.055, 0.065, 0.065, 0.08, 0.1])
    assert [e["dur"] for e in tokens] == pytest.approx([0.05, 0.005, 0.01, 0.015, 0.56, 0.02, 0.5])
    flush = [e for e in trace["traceEvents"] if e["ph"] == "i"]
    assert [(e["ts"], e["tid"]) for e in flush] == [(pytest.approx(0.625), 2)]


def test_expected_acceptance_by_hand():
    """Tokens 1 .. committed − 1 are checked (as acceptance_rate counts them): with 4
    committed executions, e_1..e_3 = 0.5, 0.2, 1.0; e_0 and e_4 are never consulted."""
    from speedsim.metrics.core import expected_acceptance

    e = np.array([0.9, 0.5, 0.2, 1.0, 0.0])
    got = expected_acceptance(4, e)
    assert got["acceptance_positions"] == 3
    assert got["expected_acceptance_rate"] == pytest.approx((0.5 + 0.2 + 1.0) / 3, abs=1e-15)
    assert got["acceptance_stderr"] == pytest.approx(np.sqrt(0.25 + 0.16 + 0.0) / 3, abs=1e-15)
    assert expected_acceptance(4, None) == {"expected_acceptance_rate": None,
                                            "acceptance_stderr": None, "acceptance_positions": 3}

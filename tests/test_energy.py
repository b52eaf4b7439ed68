"""Energy (DESIGN §6): parts add up, DRAM energy is bits x pJ/bit, waste is attributed."""

import pytest

from speedsim.metrics.energy import energy
from speedsim.sim.engine import replay
from speedsim.contracts.workitem import WorkItem
from test_sim_engine import decode_like, gemm, small_hw


def _energy(items, hw):
    return energy(items, replay(items, hw), hw)


def test_parts_sum_to_total():
    e = _energy(decode_like(), small_hw(bandwidth_gb_s=4.0, weight_kib=4))
    assert set(e) == {"total", "dram", "sram", "compute", "vector", "static", "wasted"}
    parts = e["dram"] + e["sram"] + e["compute"] + e["vector"] + e["static"]
    assert e["total"] == pytest.approx(parts, rel=1e-12)
    assert all(e[k] > 0 for k in ("dram", "sram", "compute", "vector", "static"))
    assert 0 < e["wasted"] < e["total"]


def test_dram_energy_is_bits_times_pj_per_bit():
    hw = small_hw(bandwidth_gb_s=4.0, weight_kib=4)
    items = decode_like()
    r = replay(items, hw)
    cols = ["weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes", "act_bytes"]
    bits = 8 * r.items[cols].to_numpy().sum()
    assert energy(items, r, hw)["dram"] == pytest.approx(bits * hw.dram.energy_pj_per_bit * 1e-12, rel=1e-12)
    assert bits > 0


def test_one_gemm_by_hand():
    hw = small_hw(bandwidth_gb_s=16.0)
    items = [gemm(0, 1, 8, 64, key="w")]
    r = replay(items, hw)
    e = energy(items, r, hw)
    assert e["compute"] == pytest.approx(512 * 0.1e-12)
    assert e["dram"] == pytest.approx(512 * 8 * 4.0e-12)
    # weight buffer: 512 in + 512 out; activation: 8 in + 64 out; accumulator 2 x 64; 1 pJ/B
    assert e["sram"] == pytest.approx((1024 + 72 + 128) * 1e-12)
    assert e["static"] == pytest.approx(0.5 * r.total_cycles / 1e9)
    assert e["vector"] == 0 and e["wasted"] == 0


def test_resident_weights_cost_no_dram_energy():
    hw = small_hw(bandwidth_gb_s=16.0, weight_kib=8)
    once = _energy([gemm(0, 1, 64, 96, key="s")], hw)["dram"]
    twice = _energy([gemm(0, 1, 64, 96, key="s"), gemm(1, 1, 64, 96, key="s", deps=[0])], hw)
    assert twice["dram"] == pytest.approx(once)


def test_fully_wasted_item_is_all_waste():
    hw = small_hw()
    item = WorkItem(id=0, unit="vector", op="act", phase="decode", elements=100,
                    vector_kind="activation", vector_ops=100, wasted_fraction=1.0)
    e = _energy([item], hw)
    assert e["wasted"] == pytest.approx(e["total"] - e["static"])

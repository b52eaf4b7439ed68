"""Whole decodes against first principles: the perfect-overlap bound and monotonicity."""

import pytest

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload
from speedsim.hw import cost


def _run(hw_over=(), *, hw_file="hw_configs/edge.yaml", new_tokens=24):
    hw = load_hardware(hw_file, list(hw_over))
    wl = load_workload("workloads/gen.yaml", [
        ("model.weights", {"source": "shape_only"}), ("generation.prompt", None),
        ("generation.new_tokens", new_tokens),
        ("strategies.speed.acceptance", {"source": "bernoulli", "rate": 0.8, "seed": 3})])
    return hw, simulate(hw, wl)


def _perfect_overlap_s(hw, run) -> float:
    """max(array cycles, vector cycles, DRAM bytes / effective bytes per cycle) of the
    decode items, from SCALE-Sim's cycle counts and the bytes the decode moved."""
    decode = [it for it in run.plan.items if it.phase == "decode"]
    plan = cost.plan(decode, hw)
    busy = {"array": 0, "vector": 0}
    for it in decode:
        busy[it.unit] += sum(t.cycles for t in plan.tiles[it.id])
    items = run.sim.items[run.sim.items["phase"] == "decode"]
    moved = items[["weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes", "act_bytes"]].to_numpy().sum()
    return max(busy["array"], busy["vector"], moved / hw.dram_bytes_per_cycle) / hw.clock_hz


@pytest.mark.parametrize("over, bound", [((), "array"), ((("dram.bandwidth_gb_s", 3.2),), "dram")])
def test_edge_decode_within_3_percent_of_the_perfect_overlap_bound(over, bound):
    hw, result = _run(over)
    for name, run in result.runs.items():
        m = run.metrics
        ideal = _perfect_overlap_s(hw, run)
        assert ideal <= m["decode_time_s"] <= 1.03 * ideal, (name, m["decode_time_s"] / ideal)
        assert max(m["bound_by"], key=m["bound_by"].get) == bound, m["bound_by"]


MORE = [("dram.bandwidth_gb_s", 25.6, 51.2), ("dram.bandwidth_gb_s", 3.2, 6.4),
        ("buffers.weight.size_kib", 64, 256), ("buffers.weight.size_kib", 256, 1024),
        ("buffers.weight.size_kib", 1024, 4096), ("buffers.activation.size_kib", 128, 512),
        ("buffers.activation.size_kib", 512, 2048), ("dma.engines", 1, 2),
        ("dma.engines", 2, 4), ("array.rows", 32, 64), ("array.cols", 32, 64)]


@pytest.mark.parametrize("key, less, more", MORE)
def test_more_of_a_resource_is_never_slower(key, less, more):
    _, small = _run([(key, less)], new_tokens=12)
    _, big = _run([(key, more)], new_tokens=12)
    for name in ("sequential", "speed"):
        assert big.summary["strategies"][name]["decode_time_s"] <= \
            small.summary["strategies"][name]["decode_time_s"], name


def _decode_s(result) -> dict[str, float]:
    return {name: result.summary["strategies"][name]["decode_time_s"] for name in ("sequential", "speed")}


def test_a_bigger_weight_buffer_never_slows_edge_decode():
    """8 KiB … 4 MiB, doubling: tiles grow to the DRAM pipeline's size, then the buffer
    buys prefetch depth and residency, never coarser tiles (``cost`` docstring)."""
    times = [_decode_s(_run([("buffers.weight.size_kib", 8 * 2 ** i)], new_tokens=12)[1])
             for i in range(10)]
    for name in ("sequential", "speed"):
        series = [t[name] for t in times]
        assert all(b <= a for a, b in zip(series, series[1:])), (name, series)
    assert times[-1]["sequential"] < times[0]["sequential"]  # the sweep spans a real effect


def test_a_bigger_weight_buffer_never_slows_datacenter_7b_decode():
    wl = load_workload("workloads/llama7b_cycle_u8.yaml", [("generation.new_tokens", 8)])
    times = [_decode_s(simulate(load_hardware("hw_configs/datacenter.yaml",
                                              [("buffers.weight.size_kib", kib)]), wl))
             for kib in (2048, 8192, 32768, 131072)]
    for name in ("sequential", "speed"):
        series = [t[name] for t in times]
        assert all(b <= a for a, b in zip(series, series[1:])), (name, series)


@pytest.mark.parametrize("hw_file", ["hw_configs/edge.yaml", "hw_configs/tiny.yaml",
                                     "hw_configs/datacenter.yaml", "hw_configs/h100.yaml"])
def test_shipped_hardware_closed_form_equals_tile_by_tile(hw_file, monkeypatch):
    import speedsim.api as api
    from speedsim.sim.engine import replay

    _, fast = _run(hw_file=hw_file, new_tokens=6)
    monkeypatch.setattr(api, "replay", lambda items, hw, **kw: replay(items, hw, closed_form_runs=False, **kw))
    _, slow = _run(hw_file=hw_file, new_tokens=6)
    for name in fast.runs:
        assert fast.runs[name].sim.items.equals(slow.runs[name].sim.items), name
        assert fast.runs[name].sim.log.equals(slow.runs[name].sim.log), name

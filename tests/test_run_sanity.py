"""Physical sanity of whole runs: each check is a ratio within one configuration.

The memory-bound setting is ``edge`` with its LPDDR slowed to 3.2 GB/s: a 1 KiB
weight tile then takes ~376 cycles to arrive and ~95 to use (SCALE-Sim's
weight-stationary fold at M = 1), so decode waits on DRAM.
"""

import glob

import numpy as np
import pytest

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload

MEMORY_BOUND = [("dram.bandwidth_gb_s", 3.2)]


def _run(hw_over=(), wl_over=(), *, new_tokens=32, strategies=None, accept=1.0):
    hw = load_hardware("hw_configs/edge.yaml", list(hw_over))
    wl = load_workload("workloads/gen.yaml", [
        ("model.weights", {"source": "shape_only"}), ("generation.prompt", None),
        ("generation.new_tokens", new_tokens),
        ("strategies.speed.acceptance", {"source": "bernoulli", "rate": accept, "seed": 3}),
        *wl_over])
    result = simulate(hw, wl, strategies)
    for name, m in result.summary["strategies"].items():
        assert m["decode_time_s"] >= result.summary["roofline"][name] > 0, name
    return result


def _decode_s(result, name):
    return result.summary["strategies"][name]["decode_time_s"]


def test_doubling_dram_bandwidth_nearly_halves_memory_bound_decode():
    # on one channel: over several, a transfer lasts as long as its busiest channel, and
    # tiles are sized in DRAM latencies of data, so doubling the bandwidth also changes how
    # evenly each transfer spreads (edge's 4 channels: 0.7 % of DRAM time at 3.2 GB/s,
    # 0.3 % at 6.4), which is no part of this law
    one = [("dram.channels", 1)]
    slow = _run(MEMORY_BOUND + one, strategies=["sequential"])
    fast = _run([("dram.bandwidth_gb_s", 6.4)] + one, strategies=["sequential"])
    ratio = _decode_s(fast, "sequential") / _decode_s(slow, "sequential")
    assert 0.5 <= ratio <= 0.6, ratio


def test_the_same_bandwidth_over_more_channels_is_never_faster():
    # a transfer smaller than channels x interleave_bytes uses only some channels
    one, four = (_run(MEMORY_BOUND + [("dram.channels", c)], strategies=["sequential"])
                 for c in (1, 4))
    sixteen = _run(MEMORY_BOUND + [("dram.channels", 16)], strategies=["sequential"])
    t1, t4, t16 = (_decode_s(r, "sequential") for r in (one, four, sixteen))
    assert t1 < t4 < t16, (t1, t4, t16)


def test_speed_without_sharing_is_not_faster_when_memory_bound():
    r = _run(MEMORY_BOUND, [("model.sharing", {"scheme": "none"})])
    assert r.summary["speedup"]["speed"] <= 1.01
    # and nothing fused: SPEED moved at least the sequential weight bytes
    seq, spd = (r.summary["strategies"][n]["dram_bytes_by_kind"]["weight_bytes"]
                for n in ("sequential", "speed"))
    assert spd >= seq


@pytest.mark.parametrize("stages, unique", [(4, 3), (2, 6)])
def test_full_acceptance_approaches_g(stages, unique):
    """A short prompt keeps KV traffic (which does not amortize) small beside the weights."""
    r = _run(MEMORY_BOUND, [("strategies.speed.stages", stages), ("generation.prompt_tokens", 8),
                            ("model.sharing", {"scheme": "cycle", "unique_layers": unique})],
             new_tokens=64)
    n = 63  # decode executions
    pipeline_ideal = n * stages / (n + stages - 1)  # fill and drain cost G - 1 stage steps
    speedup = r.summary["speedup"]["speed"]
    assert 0.85 * pipeline_ideal <= speedup <= stages, speedup
    assert r.summary["strategies"]["speed"]["speculation"]["flushed"] == 0
    # memory-bound: the speedup is the ratio of DRAM traffic, to within 10 %
    seq, spd = (r.summary["strategies"][n]["dram_bytes"] for n in ("sequential", "speed"))
    assert speedup == pytest.approx(seq / spd, rel=0.1)


def test_zero_acceptance_is_not_faster_than_sequential():
    r = _run(MEMORY_BOUND, accept=0.0)
    assert r.summary["speedup"]["speed"] <= 1.0
    spec = r.summary["strategies"]["speed"]["speculation"]
    assert spec["acceptance_rate"] == 0.0 and spec["flushes"] == 30
    # execution k >= 1 was launched wrong once, along with up to G - 2 younger ones
    assert spec["launched"] == 31 + sum(min(3, 31 - k) for k in range(1, 31))


def test_speedup_falls_as_acceptance_falls():
    s = [_run(MEMORY_BOUND, accept=a).summary["speedup"]["speed"] for a in (1.0, 0.6, 0.2)]
    assert s[0] > s[1] > s[2], s


def test_macs_in_log_equal_trace_plus_flushed_work():
    r = _run(accept=0.5)
    for name, run in r.runs.items():
        logged = run.sim.log.loc[run.sim.log["kind"] == "compute", "macs"].sum()
        planned = sum(it.macs for it in run.plan.items)
        assert logged == planned
        wasted = run.metrics["wasted_macs"]
        assert (wasted > 0) == (name == "speed")
    # useful SPEED work = sequential work + the early heads of committed executions
    seq = sum(it.macs for it in r.runs["sequential"].plan.items)
    spd = r.runs["speed"]
    useful = sum(it.macs * (1 - it.wasted_fraction) for it in spd.plan.items)
    m = r.workload.model
    early_head = m.d_model * m.vocab_size  # per committed execution (batch 1)
    assert useful == pytest.approx(seq + 31 * early_head)


@pytest.mark.parametrize("path", sorted(glob.glob("workloads/*.yaml")))
def test_every_shipped_workload_commits_the_sequential_tokens(path):
    wl = load_workload(path, [("generation.new_tokens", 6)])
    if wl.model.d_model > 1024:  # the 7B shape: fewer tokens and a prompt of 16
        wl = load_workload(path, [("generation.new_tokens", 3), ("generation.prompt_tokens", 16)])
    r = simulate(load_hardware("hw_configs/edge.yaml"), wl)
    numeric = wl.model.weights.source != "shape_only"
    assert r.summary["tokens_match"] is (True if numeric else None)  # None: no real ids
    assert r.summary["positions_match"] is True
    committed = r.tokens[r.tokens["status"] == "committed"]
    for name in r.runs:
        pos = sorted(committed[committed["strategy"] == name]["position"].unique())
        assert pos == list(range(wl.generation.prompt_tokens,
                                 wl.generation.prompt_tokens + wl.generation.new_tokens - 1))
    assert all(np.isfinite(v) for v in r.summary["speedup"].values())


def test_resident_shared_weights_help_sequential_too():
    """U weight sets (1 byte per element on edge) that fit the weight buffer: after the
    prefill, sequential decoding fetches no layer weights again (DESIGN §5: a fair
    comparison). gen.yaml: U = 3 sets of 1.69 MiB; an 8 MiB buffer holds them."""
    # at 6.4 GB/s the weight stream, not the array, bounds edge decode, so residency shows
    slow_dram = ("dram.bandwidth_gb_s", 6.4)
    small = _run([slow_dram], strategies=["sequential"])
    m = small.workload.model
    set_bytes = 4 * m.d_model ** 2 + 2 * m.d_model * m.d_ff  # wqkv, wo, w_up, w_down
    assert m.unique_layers * set_bytes < 8192 * 1024
    big = _run([slow_dram, ("buffers.weight.size_kib", 8192)], strategies=["sequential"])
    fetched = {}
    for name, r in (("small", small), ("big", big)):
        items = r.runs["sequential"].sim.items
        fetched[name] = items.loc[items["phase"] == "decode", "weight_bytes_fetched"].sum()
    assert fetched["small"] > 31 * m.n_layers * 0.9 * set_bytes  # every layer's weights, every token
    # the first decode token fetches the U sets (and the head) about once — prefill
    # tiles its GEMMs differently, so its tiles are not reused — and then nothing more
    assert m.unique_layers * set_bytes <= fetched["big"] < 1.3 * m.unique_layers * set_bytes
    assert _decode_s(big, "sequential") < _decode_s(small, "sequential")

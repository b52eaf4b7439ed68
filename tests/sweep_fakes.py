"""A small deterministic stand-in for ``speedsim.sweep.point.simulate_point``, and base configs for it.

``point`` validates its configs with the real schema (so invalid values raise
``ConfigError`` naming the key path), does a little exact integer NumPy work,
and returns a flat metric dict shaped like the real one from a roofline-style
formula. Two marked combinations fail on purpose: ``prompt_tokens == 13``
raises ``ConfigError``; ``array.rows == 7`` raises ``RuntimeError`` with a
two-line message. ``slow_point`` sleeps ``SPEEDSIM_FAKE_SLEEP_S`` (default
0.05 s) first, so a sweep can be killed midway and the parallel benchmark has
something to overlap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from speedsim.config import ConfigError, hardware_from_dict, workload_from_dict

BASE_HW: dict[str, Any] = {
    "name": "fake-edge",
    "clock_hz": 1.0e9,
    "precision": "int8",
    "array": {"rows": 32, "cols": 32, "dataflow": "ws"},
    "vector": {"lanes": 64},
    "dram": {"bandwidth_gb_s": 25.6, "latency_ns": 120, "efficiency": 0.9, "energy_pj_per_bit": 6.5},
    "buffers": {"weight": {"size_kib": 256, "energy_pj_per_byte": 0.9},
                "activation": {"size_kib": 128, "energy_pj_per_byte": 0.9},
                "accumulator": {"size_kib": 64, "energy_pj_per_byte": 0.9}},
    "energy": {"mac_pj": 0.1, "vector_op_pj": 0.2, "static_power_w": 0.1},
}

BASE_WORKLOAD: dict[str, Any] = {
    "name": "fake-gen",
    "model": {"d_model": 64, "n_heads": 4, "d_ff": 256, "n_layers": 12, "vocab_size": 512,
              "sharing": {"scheme": "cycle", "unique_layers": 4}},
    "generation": {"prompt_tokens": 16, "new_tokens": 32, "batch": 1, "seed": 0},
    "strategies": {"sequential": {},
                   "speed": {"acceptance": {"source": "bernoulli", "rate": 0.8, "seed": 1}}},
}


def _checksum(n: int, seed: int) -> int:
    """Exact integer work (no float rounding that could differ between processes)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(-8, 8, size=(n, n), dtype=np.int64)
    for _ in range(4):
        a = (a @ a) % 1009
    return int(a.sum())


def point(hw: dict[str, Any], workload: dict[str, Any], strategies: list[str] | None) -> dict[str, Any]:
    h = hardware_from_dict(hw)
    w = workload_from_dict(workload)
    if w.generation.prompt_tokens == 13:
        raise ConfigError("13 prompt tokens is the fake's marked invalid value",
                          key="generation.prompt_tokens")
    if h.array.rows == 7:
        raise RuntimeError("fake simulator crashed\nwith a second line")
    strategies = strategies or w.strategies.names()
    m, g = w.model, w.generation
    weight_bytes = m.n_layers * (4 * m.d_model ** 2 + 2 * m.d_model * m.d_ff) * h.bytes_per_element
    macs = weight_bytes // h.bytes_per_element
    per_token_s = max(weight_bytes / (h.dram.bandwidth_gb_s * 1e9 * h.dram.efficiency),
                      macs / (h.array.pes * h.clock_hz))
    ttft_s = g.prompt_tokens * macs / (h.array.pes * h.clock_hz)
    out: dict[str, Any] = {}
    seq_time = per_token_s * g.new_tokens
    for s in strategies:
        if s == "speed":
            rate = getattr(w.strategies.speed.acceptance, "rate", 1.0)
            time_s = seq_time / (1 + (w.stages - 1) * rate)
        else:
            time_s = seq_time
        out[f"{s}.decode_time_s"] = time_s
        out[f"{s}.time_per_token_s"] = time_s / g.new_tokens
        out[f"{s}.tokens_per_s"] = g.new_tokens * g.batch / time_s
        out[f"{s}.ttft_s"] = ttft_s
        out[f"{s}.energy_per_token_j"] = (macs * h.energy.mac_pj * 1e-12 + h.energy.static_power_w
                                          * time_s / g.new_tokens)
        out[f"speedup.{s}"] = seq_time / time_s
    out["tokens_match"] = True
    out["silicon.pes"] = h.array.pes
    out["silicon.sram_kib"] = sum(b.size_kib for b in (h.buffers.weight, h.buffers.activation,
                                                       h.buffers.accumulator))
    out["silicon.cost_proxy"] = out["silicon.pes"] + out["silicon.sram_kib"]
    out["fake.checksum"] = np.int64(_checksum(48, g.prompt_tokens + h.array.rows))
    return out


def slow_point(hw: dict[str, Any], workload: dict[str, Any], strategies: list[str] | None) -> dict[str, Any]:
    time.sleep(float(os.environ.get("SPEEDSIM_FAKE_SLEEP_S", "0.05")))
    return point(hw, workload, strategies)


def write_sweep(folder: str | Path, spec: dict[str, Any], name: str = "sweep.yaml") -> Path:
    """Write the base configs and ``spec`` (hw/workload keys filled in) into ``folder``."""
    folder = Path(folder)
    (folder / "hw.yaml").write_text(yaml.safe_dump(BASE_HW))
    (folder / "wl.yaml").write_text(yaml.safe_dump(BASE_WORKLOAD))
    path = folder / name
    path.write_text(yaml.safe_dump({"hw": "hw.yaml", "workload": "wl.yaml", **spec}, sort_keys=False))
    return path

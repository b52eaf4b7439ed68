"""Metrics of one strategy's run: pure functions of the plan, the simulation result and
the configs (DESIGN §7; every formula is written out in docs/metrics.md).

Nothing here reaches back into the simulation: it reads the event log (``log``),
the per-item table (``items``) and the buffer occupancy samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from speedsim.config.hw import Hardware
from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan

DRAM_BYTE_COLUMNS = ("weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes", "act_bytes")


def commit_cycles(plan: Plan, items: pd.DataFrame) -> np.ndarray:
    """End cycle of each committed decode execution, in position order."""
    end = items["end_cycle"].to_numpy()
    committed = sorted((e.index, e.last_item) for e in plan.execs
                       if e.phase == "decode" and e.status == "committed")
    return np.array([end[last] for _, last in committed], dtype=np.int64)


def latency(plan: Plan, items: pd.DataFrame, hw: Hardware, wl: Workload) -> dict[str, Any]:
    clock = hw.clock_hz
    ttft_cycles = int(items["end_cycle"].to_numpy()[plan.prefill_last_item])
    commits = commit_cycles(plan, items)
    decode_tokens = len(commits)
    last = int(commits[-1]) if decode_tokens else ttft_cycles
    decode_cycles = last - ttft_cycles
    gaps = np.diff(np.concatenate([[ttft_cycles], commits])) / clock
    decode_s = decode_cycles / clock
    B = wl.generation.batch
    return {
        "ttft_s": ttft_cycles / clock,
        "decode_time_s": decode_s,
        "decode_tokens": decode_tokens,
        "time_per_token_s": decode_s / decode_tokens if decode_tokens else 0.0,
        "inter_token_p50_s": float(np.percentile(gaps, 50)) if decode_tokens else 0.0,
        "inter_token_p99_s": float(np.percentile(gaps, 99)) if decode_tokens else 0.0,
        "tokens_per_s": B * decode_tokens / decode_s if decode_s > 0 else 0.0,
        "end_to_end_s": last / clock,
    }


def utilization(sim: Any, hw: Hardware) -> dict[str, Any]:
    cycles = max(int(sim.total_cycles), 1)
    items, log = sim.items, sim.log
    useful = 1.0 - items["wasted_fraction"].to_numpy()
    on_array = (items["unit"] == "array").to_numpy()
    useful_macs = float((items["macs"].to_numpy() * useful)[on_array].sum())
    vec = log[(log["unit"] == "vector") & (log["kind"] == "compute")]
    vector_busy = float((vec["end_cycle"] - vec["start_cycle"]).sum())
    dram = dram_bytes(items)
    peak_bytes_per_cycle = hw.dram.bandwidth_gb_s * 1e9 / hw.clock_hz
    return {
        "array_utilization": useful_macs / (hw.array.pes * cycles),
        "vector_utilization": vector_busy / cycles,
        "dram_bandwidth_utilization": dram / (peak_bytes_per_cycle * cycles),
        "buffers": occupancy_stats(sim.occupancy, hw, cycles),
    }


def item_dram_bytes(items: pd.DataFrame) -> np.ndarray:
    """DRAM bytes each item moved: weights fetched, KV read and written, activations."""
    return items[list(DRAM_BYTE_COLUMNS)].sum(axis=1).to_numpy(dtype=np.int64)


def dram_bytes(items: pd.DataFrame) -> int:
    return int(item_dram_bytes(items).sum())


def occupancy_stats(occ: pd.DataFrame, hw: Hardware, cycles: int) -> dict[str, Any]:
    """Peak and time-weighted mean bytes per buffer (occupancy is a step function)."""
    out: dict[str, Any] = {}
    for name, frame in occ.groupby("buffer", sort=True):
        frame = frame.sort_values("cycle", kind="stable")
        t = frame["cycle"].to_numpy(dtype=np.int64)
        b = frame["bytes"].to_numpy(dtype=np.float64)
        dt = np.diff(np.append(t, max(cycles, int(t[-1]))))
        cap = _capacity_bytes(hw, str(name))
        out[str(name)] = {
            "peak_bytes": int(b.max()),
            "mean_bytes": float((b * dt).sum() / max(cycles, 1)),
            "capacity_bytes": cap,
        }
    return out


def _capacity_bytes(hw: Hardware, name: str) -> int | None:
    buf = getattr(hw.buffers, name, None)
    return int(buf.size_kib * 1024) if buf is not None and hasattr(buf, "size_kib") else None


def work(sim: Any) -> dict[str, Any]:
    items = sim.items
    w = items["wasted_fraction"].to_numpy()
    per_item_dram = item_dram_bytes(items)
    return {
        "macs": int(items["macs"].sum()),
        "vector_ops": int(items["vector_ops"].sum()),
        "dram_bytes": int(per_item_dram.sum()),
        "dram_bytes_by_kind": {c.replace("_fetched", ""): int(items[c].sum())
                               for c in DRAM_BYTE_COLUMNS},
        "wasted_macs": float((items["macs"].to_numpy() * w).sum()),
        "wasted_dram_bytes": float((per_item_dram * w).sum()),
    }


def speculation(plan: Plan, accepted: np.ndarray | None) -> dict[str, Any]:
    """Launched / committed / flushed executions and the acceptance along the committed chain."""
    dec = [e for e in plan.execs if e.phase == "decode"]
    committed = [e for e in dec if e.status == "committed"]
    # execution k + 1 rides on the early prediction execution k made; the last one's
    # prediction launches nothing and is not checked
    checked = [e.index + 1 for e in committed if accepted is not None and e.index + 1 < len(committed)]
    hits = int(sum(bool(accepted[i]) for i in checked)) if accepted is not None else 0
    in_flight = _executions_per_step(plan)
    return {
        "launched": len(dec),
        "committed": len(committed),
        "flushed": len(dec) - len(committed),
        "flushes": plan.flushes,
        "acceptance_rate": hits / len(checked) if checked else 1.0,
        "mean_tokens_in_flight": float(np.mean(in_flight)) if in_flight else 0.0,
        "stage_steps": len(in_flight),
    }


def _executions_per_step(plan: Plan) -> list[int]:
    """Executions served in each decode step (the item ``step`` field counts stage steps)."""
    per_step: dict[int, set[int]] = {}
    for it in plan.items:
        if it.phase == "decode" and it.step >= 0:
            per_step.setdefault(it.step, set()).update(it.tokens)
    return [len(v) for v in per_step.values()]


def roofline_decode_s(plan: Plan, sim: Any, hw: Hardware) -> float:
    """Lower bound on the decode time: the busiest of array, vector and DRAM.

    Array and vector cycles come from the same cost functions the simulator
    uses (``speedsim.hw.cost.roofline``); the DRAM bound is the bytes this run
    actually moved during decode at the effective bandwidth, so weight
    residency and fusion are credited exactly as the simulation found them.
    """
    from speedsim.hw.cost import roofline, transfer_cycles

    decode = [it for it in plan.items if it.phase == "decode"]
    if not decode:
        return 0.0
    bound = roofline(decode, hw)
    items = sim.items[sim.items["phase"] == "decode"]
    moved = dram_bytes(items)
    dram_cycles = transfer_cycles(moved, hw.dram_bytes_per_cycle)
    return max(bound.array_cycles, bound.vector_cycles, dram_cycles) / hw.clock_hz


def decode_bound_by(plan: Plan, sim: Any) -> dict[str, float]:
    """``speedsim.metrics.bound.bound_by`` over the decode window: TTFT to the last commit."""
    from speedsim.metrics.bound import bound_by

    end = sim.items["end_cycle"].to_numpy()
    start = int(end[plan.prefill_last_item])
    commits = commit_cycles(plan, sim.items)
    return bound_by(sim.log, start, int(commits[-1]) if len(commits) else start)

"""Metrics of one strategy's run: pure functions of the plan, the simulation result and
the configs (DESIGN §7; every formula is written out in docs/metrics.md).

Nothing here reaches back into the simulation: it reads the event log (``log``),
the per-item table (``items``) and the buffer occupancy samples.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import pandas as pd

from speedsim.config.hw import ComputeUnit, Hardware
from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan

DRAM_BYTE_COLUMNS = ("weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes", "act_bytes")


def commit_cycles(plan: Plan, items: pd.DataFrame) -> np.ndarray:
    """End cycle of each committed decode execution, in position order."""
    end = items["end_cycle"].to_numpy()
    committed = sorted((e.index, e.last_item) for e in plan.execs
                       if e.phase == "decode" and e.status == "committed")
    return np.array([end[last] for _, last in committed], dtype=np.int64)


def ttft_cycles(plan: Plan, items: pd.DataFrame) -> int:
    """The cycle the last prefill item ended: token 0 exists."""
    return int(items["end_cycle"].to_numpy()[plan.prefill_last_item])


def latency(plan: Plan, items: pd.DataFrame, hw: Hardware, wl: Workload) -> dict[str, Any]:
    """TTFT, decode time, per-token latency and its gap percentiles, tokens/s (docs/metrics.md)."""
    clock = hw.clock_hz
    ttft = ttft_cycles(plan, items)
    commits = commit_cycles(plan, items)
    decode_tokens = len(commits)
    last = int(commits[-1]) if decode_tokens else ttft
    gaps_s = np.diff(np.concatenate([[ttft], commits])) / clock
    decode_s = (last - ttft) / clock
    return {
        "ttft_s": ttft / clock,
        "decode_time_s": decode_s,
        "decode_tokens": decode_tokens,
        "time_per_token_s": _ratio(decode_s, decode_tokens),
        "inter_token_p50_s": _percentile(gaps_s, 50),
        "inter_token_p99_s": _percentile(gaps_s, 99),
        "tokens_per_s": _ratio(wl.generation.batch * decode_tokens, decode_s),
        "end_to_end_s": last / clock,
    }


def _ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, 0 for an empty denominator (no decode)."""
    return numerator / denominator if denominator > 0 else 0.0


def _percentile(values: np.ndarray, q: float) -> float:
    """The q-th percentile (NumPy's linear interpolation), 0 for no values."""
    return float(np.percentile(values, q)) if len(values) else 0.0


def utilization(sim: Any, hw: Hardware) -> dict[str, Any]:
    """Each compute unit's (``<unit>_utilization``, in ``hw.units`` order) and the DRAM's
    utilization and buffer occupancy over the whole run."""
    cycles = max(int(sim.total_cycles), 1)
    out: dict[str, Any] = {f"{u.name}_utilization": unit_utilization(sim, hw, u, cycles)
                           for u in hw.units}
    out["dram_bandwidth_utilization"] = dram_bandwidth_utilization(sim.items, hw, cycles)
    out["buffers"] = occupancy_stats(sim.occupancy, hw, cycles)
    return out


def unit_utilization(sim: Any, hw: Hardware, unit: ComputeUnit, cycles: int) -> float:
    """A matrix unit's ``matrix_utilization``, an elementwise unit's ``busy_utilization``."""
    if unit.kind == "matrix":
        return matrix_utilization(sim.items, unit.name, hw.section(unit.name).pes, cycles)
    return busy_utilization(sim.log, unit.name, cycles)


def matrix_utilization(items: pd.DataFrame, unit: str, pes: int, cycles: int) -> float:
    """Useful (committed) MACs of the items on ``unit`` / (its ``pes`` · cycles)."""
    useful = 1.0 - items["wasted_fraction"].to_numpy()
    on_unit = (items["unit"] == unit).to_numpy()
    return float((items["macs"].to_numpy() * useful)[on_unit].sum()) / (pes * cycles)


def busy_utilization(log: pd.DataFrame, unit: str, cycles: int) -> float:
    """The busy cycles of ``unit`` (its compute intervals) / cycles."""
    busy = log[(log["unit"] == unit) & (log["kind"] == "compute")]
    return float((busy["end_cycle"] - busy["start_cycle"]).sum()) / cycles


def dram_bandwidth_utilization(items: pd.DataFrame, hw: Hardware, cycles: int) -> float:
    """DRAM bytes moved / (peak bytes per cycle · cycles); efficiency is not applied."""
    peak_bytes_per_cycle = hw.dram.bandwidth_gb_s * 1e9 / hw.clock_hz
    return dram_bytes(items) / (peak_bytes_per_cycle * cycles)


def item_dram_bytes(items: pd.DataFrame) -> np.ndarray:
    """DRAM bytes each item moved: weights fetched, KV read and written, activations
    (``items``: a replay's items table, or its columns by name)."""
    return np.sum([np.asarray(items[c], dtype=np.int64) for c in DRAM_BYTE_COLUMNS], axis=0,
                  dtype=np.int64)


def dram_bytes(items: pd.DataFrame) -> int:
    return int(item_dram_bytes(items).sum())


def occupancy_stats(occ: pd.DataFrame, hw: Hardware, cycles: int) -> dict[str, Any]:
    """Peak and time-weighted mean bytes per buffer (occupancy is a step function)."""
    out: dict[str, Any] = {}
    for name, frame in occ.groupby("buffer", sort=True):
        frame = frame.sort_values("cycle", kind="stable")
        t = frame["cycle"].to_numpy(dtype=np.int64)
        b = frame["bytes"].to_numpy(dtype=np.float64)
        out[str(name)] = {"peak_bytes": int(b.max()), "mean_bytes": time_weighted_mean(t, b, cycles),
                          "capacity_bytes": _capacity_bytes(hw, str(name))}
    return out


def time_weighted_mean(t: np.ndarray, b: np.ndarray, cycles: int) -> float:
    """Mean over [0, cycles) of the step function that is b[i] from t[i] to t[i+1]."""
    dt = np.diff(np.append(t, max(cycles, int(t[-1]))))
    return float((b * dt).sum() / max(cycles, 1))


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


def speculation(plan: Plan, accepted: np.ndarray,
                expected: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Launched / committed / flushed executions and the acceptance along the committed chain
    (realized, and expected from the model's distributions when ``expected`` is known)."""
    dec = [e for e in plan.execs if e.phase == "decode"]
    committed = sum(e.status == "committed" for e in dec)
    in_flight = _executions_per_step(plan)
    return {
        "launched": len(dec),
        "committed": committed,
        "flushed": len(dec) - committed,
        "flushes": plan.flushes,
        "acceptance_rate": acceptance_rate(committed, accepted),
        **expected_acceptance(committed, expected),
        "mean_tokens_in_flight": float(np.mean(in_flight)) if in_flight else 0.0,
        "stage_steps": len(in_flight),
    }


def acceptance_rate(committed: int, accepted: np.ndarray) -> Optional[float]:
    """Early predictions that equalled the final one / predictions checked; None (null in
    ``summary.json``, "—" in the table) when none was checked.

    Execution k + 1 rides on the early prediction execution k made, so the
    predictions checked are those for tokens 1 .. committed − 1; the last
    execution's prediction launches nothing and is not checked.
    """
    checked = range(1, committed)
    if not len(checked):
        return None
    return int(sum(bool(accepted[i]) for i in checked)) / len(checked)


def expected_acceptance(committed: int, expected: Optional[np.ndarray]) -> dict[str, Any]:
    """Over the same predictions as ``acceptance_rate`` (tokens 1 .. committed − 1, n of
    them): ``expected_acceptance_rate`` = mean of e_i, the probability each draft is kept
    (Σ_x min(p(x), q(x))); ``acceptance_stderr`` = sqrt(Σ e_i (1 − e_i)) / n, the standard
    deviation of the realized rate around it (the outcomes are independent given the
    prefix); ``acceptance_positions`` = n. Null where e is not known (``file`` source)."""
    n = max(committed - 1, 0)
    out: dict[str, Any] = {"expected_acceptance_rate": None, "acceptance_stderr": None,
                           "acceptance_positions": n}
    if expected is None or n == 0:
        return out
    e = np.asarray(expected, np.float64)[1:committed]
    out["expected_acceptance_rate"] = float(e.mean())
    out["acceptance_stderr"] = float(np.sqrt((e * (1.0 - e)).sum()) / n)
    return out


def _executions_per_step(plan: Plan) -> list[int]:
    """Executions served in each decode step (the item ``step`` field counts stage steps)."""
    per_step: dict[int, set[int]] = {}
    for it in plan.items:
        if it.phase == "decode" and it.step >= 0:
            per_step.setdefault(it.step, set()).update(it.tokens)
    return [len(v) for v in per_step.values()]


def run_tokens(wl: Workload) -> int:
    """Tokens a whole run produces, all sequences: ``B · n`` (token 0 comes from prefill)."""
    return wl.generation.batch * wl.generation.new_tokens


def decode_bound_by(plan: Plan, sim: Any, hw: Hardware) -> dict[str, float]:
    """``speedsim.metrics.bound.bound_by`` over the decode window: TTFT to the last commit."""
    from speedsim.metrics.bound import bound_by

    end = sim.items["end_cycle"].to_numpy()
    start = int(end[plan.prefill_last_item])
    commits = commit_cycles(plan, sim.items)
    return bound_by(sim.log, start, int(commits[-1]) if len(commits) else start,
                    hw.compute_units)

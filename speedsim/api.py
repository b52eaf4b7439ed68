"""The public entry point: simulate strategies for one (hardware, workload) pair.

``simulate`` follows the one-way flow of DESIGN §3 and returns data only:

1. the reference decoder's greedy run (numeric weights) — committed tokens and
   early / final predictions; none for shape-only models;
2. the op trace at the hardware's element size;
3. acceptance outcomes (model, bernoulli or file) for speculative strategies;
4. per strategy: plan (work-item DAG) → replay on the SimPy accelerator →
   metrics and energy;
5. the summary (DESIGN §9), the per-execution token table, and the resolved
   configuration that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from speedsim import __version__
from speedsim.config.budget import Limits, check_budget
from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware, hardware_from_dict
from speedsim.config.workload import Workload, workload_from_dict
from speedsim.metrics import core
from speedsim.metrics.energy import energy as energy_breakdown
from speedsim.model.generation import (GenerationRecord, acceptance_vector, run_reference,
                                       run_speed_numeric)
from speedsim.model.sharing import shape_layer_sets
from speedsim.model.weights import Params, load_params
from speedsim.hw.fit import check_tiles_fit
from speedsim.sim.engine import SimResult, replay
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.plan import Plan
from speedsim.strategies.registry import get_strategy
from speedsim.trace import build_trace


@dataclass(frozen=True)
class StrategyRun:
    plan: Plan
    sim: SimResult
    metrics: dict[str, Any]
    committed: Optional[np.ndarray]  # token ids [B, new_tokens] (None for shape-only models)
    carried: Optional[np.ndarray] = None  # [decode executions, B]: input token of each, by
    #                                       exec_id - 1 (-1 where not modelled)


@dataclass(frozen=True)
class RunResult:
    hw: Hardware
    workload: Workload
    runs: dict[str, StrategyRun]
    summary: dict[str, Any]
    tokens: pd.DataFrame
    record: Optional[GenerationRecord] = field(default=None, repr=False)

    def resolved_config(self) -> dict[str, Any]:
        return resolved_config(self.hw, self.workload)

    def saved_tables(self) -> dict[str, pd.DataFrame]:
        """Extra tables written beside the contract files, so plots need no rerun."""
        tables = {}
        for name, run in self.runs.items():
            tables[f"items_{name}.csv"] = run.sim.items.drop(columns=["tokens"], errors="ignore")
            tables[f"occupancy_{name}.csv"] = run.sim.occupancy
        return tables


def resolved_config(hw: Hardware, wl: Workload) -> dict[str, Any]:
    return {"hw": hw.model_dump(mode="json"), "workload": wl.model_dump(mode="json")}


def strategy_list(wl: Workload, names: Optional[Sequence[str]]) -> list[str]:
    configured = wl.strategies.names()
    if names is None:
        return configured
    for n in names:
        get_strategy(n)  # unknown names fail here, listing the valid ones
        if n not in configured:
            raise ConfigError(f"strategy {n!r} is not configured in the workload "
                              f"(configured: {', '.join(configured)})", key="--strategies")
    return list(dict.fromkeys(names))


def simulate(hw: Hardware, wl: Workload, strategies: Optional[Sequence[str]] = None,
             limits: Limits = Limits()) -> RunResult:
    names = strategy_list(wl, strategies)
    check_budget(wl, len(names), limits)  # before anything is built
    # 1. reference numerics (None for shape-only models); the weights load once
    numeric = wl.model.weights.source != "shape_only"
    params = load_params(wl) if numeric else None
    record = run_reference(wl, params) if numeric else None
    # 2. the op trace at the hardware's element size
    trace = build_trace(wl, bytes_per_element=hw.bytes_per_element)
    # 3. acceptance outcomes for speculative strategies
    accepted = acceptance_vector(wl, record) if wl.strategies.speed is not None else None
    base = StrategyInput(trace=trace, n_layers=wl.model.n_layers,
                         layer_sets=shape_layer_sets(wl.model),
                         prompt_tokens=wl.generation.prompt_tokens,
                         new_tokens=wl.generation.new_tokens, attention_on=hw.attention_on,
                         stages=wl.stages if wl.strategies.speed is not None else 1,
                         accepted=accepted)
    # 4. plan, replay, measure
    runs: dict[str, StrategyRun] = {}
    for name in names:
        plan = get_strategy(name)().plan(base)
        check_tiles_fit(plan.items, hw)
        sim = replay(plan.items, hw)
        committed, carried = committed_tokens(name, wl, record, plan, params)
        metrics = strategy_metrics(plan, sim, hw, wl, accepted if name != "sequential" else None)
        runs[name] = StrategyRun(plan, sim, metrics, committed, carried)
    # 5. summary and token table
    summary = build_summary(hw, wl, runs)
    tokens = token_table(runs, wl, record)
    return RunResult(hw, wl, runs, summary, tokens, record)


def committed_tokens(name: str, wl: Workload, record: Optional[GenerationRecord], plan: Plan,
                     params: Optional[Params] = None) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(committed token ids [B, new_tokens], input token of each decode execution).

    SPEED with ``acceptance: model`` really runs pipelined in NumPy (flushes and
    KV rollback included); its commits are what ``tokens_match`` compares with
    sequential greedy, and its own schedule must be the one the simulator
    replayed. With other acceptance sources the schedule is synthetic: the
    committed ids are the greedy ones by construction of the lossless schedule.
    """
    if record is None:
        return None, None
    if name == "speed" and wl.strategies.speed.acceptance.source == "model":
        run = run_speed_numeric(wl, params)
        if run.schedule.launched != plan.launched or run.schedule.flushes != plan.flushes:
            raise RuntimeError("the NumPy SPEED pipeline and the replayed schedule disagree: "
                               f"{run.schedule.launched}/{run.schedule.flushes} vs "
                               f"{plan.launched}/{plan.flushes} launched/flushes")
        return run.tokens, run.carried
    # synthetic schedule: committed executions carry the greedy tokens; what a flushed
    # one carried is not modelled (-1)
    carried = np.full((plan.launched, record.committed.shape[0]), -1, dtype=np.int64)
    for e in plan.execs:
        if e.phase == "decode" and e.status == "committed":
            carried[e.exec_id - 1] = record.committed[:, e.index]
    return record.committed, carried


def strategy_metrics(plan: Plan, sim: SimResult, hw: Hardware, wl: Workload,
                     accepted: Optional[np.ndarray]) -> dict[str, Any]:
    m: dict[str, Any] = {}
    m.update(core.latency(plan, sim.items, hw, wl))
    m["cycles"] = int(sim.total_cycles)
    m.update(core.utilization(sim, hw))
    m.update(core.work(sim))
    m["energy_j"] = energy_breakdown(sim, hw)
    m["energy_per_token_j"] = m["energy_j"]["total"] / (wl.generation.batch * wl.generation.new_tokens)
    m["committed_tokens"] = wl.generation.new_tokens
    m["roofline_decode_s"] = core.roofline_decode_s(plan, sim, hw)
    if plan.strategy != "sequential":
        m["speculation"] = core.speculation(plan, accepted)
    return m


def build_summary(hw: Hardware, wl: Workload, runs: dict[str, StrategyRun]) -> dict[str, Any]:
    strategies = {n: r.metrics for n, r in runs.items()}
    seq = strategies.get("sequential")
    speedup = {n: (seq["decode_time_s"] / m["decode_time_s"] if seq and m["decode_time_s"] > 0
                   else None) for n, m in strategies.items()}
    roofline = {n: m["roofline_decode_s"] for n, m in strategies.items()}
    return {
        "speedsim_version": __version__,
        "hardware": hw.name,
        "workload": wl.name,
        "strategies": strategies,
        "speedup": speedup,
        "roofline": roofline,
        "roofline_fraction": {n: (roofline[n] / m["decode_time_s"] if m["decode_time_s"] else 1.0)
                              for n, m in strategies.items()},
        "tokens_match": tokens_match(runs),
        "config": resolved_config(hw, wl),
    }


def tokens_match(runs: dict[str, StrategyRun]) -> bool:
    """Every strategy committed the same token ids (numeric models), or — for shape-only
    models — the same positions, each exactly once and in order."""
    committed = [r.committed for r in runs.values()]
    if all(c is not None for c in committed):
        return all(np.array_equal(committed[0], c) for c in committed[1:])
    positions = []
    for r in runs.values():
        pos = sorted(e.index for e in r.plan.execs if e.phase == "decode" and e.status == "committed")
        positions.append(pos)
    return all(p == list(range(len(positions[0]))) for p in positions) and \
        all(p == positions[0] for p in positions)


def token_table(runs: dict[str, StrategyRun], wl: Workload,
                record: Optional[GenerationRecord]) -> pd.DataFrame:
    """One row per token execution and sequence (DESIGN §9 ``tokens.csv``)."""
    rows = []
    B = wl.generation.batch
    for name, run in runs.items():
        start = run.sim.items["start_cycle"].to_numpy()
        end = run.sim.items["end_cycle"].to_numpy()
        for e in run.plan.execs:
            if e.phase != "decode":
                continue
            for b in range(B):
                token = -1 if run.carried is None else int(run.carried[e.exec_id - 1, b])
                rows.append({"strategy": name, "exec": e.exec_id, "sequence": b,
                             "position": e.position, "token_id": token,
                             "status": e.status, "start_cycle": int(start[e.first_item]),
                             "end_cycle": int(end[e.last_item])})
    return pd.DataFrame(rows, columns=["strategy", "exec", "sequence", "position", "token_id",
                                       "status", "start_cycle", "end_cycle"])


def simulate_point(hw: dict[str, Any], workload: dict[str, Any],
                   strategies: Optional[Sequence[str]] = None, *, hw_file: str = "<hw>",
                   workload_file: str = "<workload>", base_dir: Optional[str] = None) -> dict[str, Any]:
    """One sweep point: plain config dicts in, a flat dict of metrics out."""
    hwc = hardware_from_dict(hw, file=hw_file)
    wlc = workload_from_dict(workload, file=workload_file, base_dir=base_dir)
    result = simulate(hwc, wlc, strategies)
    return flatten_summary(result.summary, hwc)


def flatten_summary(summary: dict[str, Any], hw: Hardware) -> dict[str, Any]:
    flat: dict[str, Any] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = obj

    for name, m in summary["strategies"].items():
        walk(name, m)
    walk("speedup", summary["speedup"])
    walk("roofline", summary["roofline"])
    flat["tokens_match"] = summary["tokens_match"]
    b = hw.buffers
    flat["silicon.pes"] = hw.array.pes
    flat["silicon.sram_kib"] = sum(x.size_kib for x in (b.weight, b.activation, b.accumulator, b.kv)
                                   if x is not None)
    flat["silicon.cost_proxy"] = flat["silicon.pes"] + flat["silicon.sram_kib"]
    return flat

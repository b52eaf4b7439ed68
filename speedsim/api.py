"""The public entry point: simulate strategies for one (hardware, workload) pair.

``simulate`` follows the one-way flow of DESIGN §3 and returns data only:

1. the reference decoder's greedy run (numeric weights) — committed tokens and
   early / final predictions; none for shape-only models; taken from
   ``reference_cache`` when one holds its inputs' key (``model.reference_cache``);
2. the op trace at the hardware's element size;
3. acceptance outcomes (model, bernoulli or file) for speculative strategies;
4. per strategy: plan (work-item DAG) → replay on the SimPy accelerator →
   metrics and energy;
5. the summary (DESIGN §9), the per-execution token table, and the resolved
   configuration that produced them (``speedsim.report.summary``).

Committed tokens: every lossless strategy commits the greedy tokens, so they
come from the reference run. That SPEED's NumPy pipeline really produces them
(flushes and KV rollback included) and follows the replayed schedule is
proved in the tests (``tests/test_model_speed.py``), not re-run here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware
from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan
from speedsim.metrics import core
from speedsim.metrics.energy import energy as energy_breakdown
from speedsim.model.decoder import GenerationRecord
from speedsim.model.reference_cache import RecordCache, cached_generate
from speedsim.model.sharing import shape_layer_sets
from speedsim.report.summary import StrategyRun, build_summary, resolved_config, token_table
from speedsim.sim.engine import SimResult, replay
from speedsim.strategies.acceptance import acceptance_vector
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import get_strategy
from speedsim.trace import build_trace

__all__ = ["RunResult", "StrategyRun", "simulate", "strategy_list"]


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


def simulate(hw: Hardware, wl: Workload, strategies: Optional[Sequence[str]] = None, *,
             reference_cache: Optional[RecordCache] = None) -> RunResult:
    """``reference_cache`` (``load``/``store`` by key, e.g. ``speedsim.cli.io.ReferenceCache``)
    lets runs that share weights, prompts and generation settings skip the reference run."""
    names = strategy_list(wl, strategies)
    # 1. reference numerics (None for shape-only models)
    record = (cached_generate(wl, reference_cache)
              if wl.model.weights.source != "shape_only" else None)
    # 2. the op trace at the hardware's element size
    trace = build_trace(wl, bytes_per_element=hw.bytes_per_element)
    # 3. acceptance outcomes for speculative strategies
    speculative = wl.strategies.speed is not None
    accepted = acceptance_vector(wl, record) if speculative else None
    base = StrategyInput(trace=trace, n_layers=wl.model.n_layers,
                         layer_sets=shape_layer_sets(wl.model),
                         prompt_tokens=wl.generation.prompt_tokens,
                         new_tokens=wl.generation.new_tokens, attention_on=hw.attention_on,
                         stages=wl.stages if speculative else 1, accepted=accepted)
    # 4. plan, replay, measure
    runs = {name: _run_strategy(name, base, hw, wl, record) for name in names}
    # 5. summary and token table
    summary = build_summary(hw, wl, runs)
    return RunResult(hw, wl, runs, summary, token_table(runs, wl.generation.batch), record)


def _run_strategy(name: str, base: StrategyInput, hw: Hardware, wl: Workload,
                  record: Optional[GenerationRecord]) -> StrategyRun:
    strategy = get_strategy(name)()
    plan = strategy.plan(base)
    sim = replay(plan.items, hw)
    accepted = base.accepted if strategy.speculative else None
    metrics = strategy_metrics(plan, sim, hw, wl, accepted)
    committed, carried = committed_tokens(wl, record, plan)
    return StrategyRun(plan, sim, metrics, committed, carried)


def committed_tokens(wl: Workload, record: Optional[GenerationRecord],
                     plan: Plan) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(committed token ids [B, new_tokens], input token of each decode execution).

    A committed execution carried the greedy token of its index. A flushed one
    that was the first launched after a committed execution carried that
    execution's early prediction — known only with ``acceptance: model`` (the
    reference run's own predictions). What younger flushed executions carried
    was predicted by flushed work, which is not modelled: -1.
    """
    if record is None:
        return None, None
    carried = np.full((plan.launched, record.committed.shape[0]), -1, dtype=np.int64)
    model_acceptance = wl.strategies.speed is not None and \
        wl.strategies.speed.acceptance.source == "model"
    status = {e.exec_id: e.status for e in plan.execs}
    for e in plan.execs:
        if e.phase != "decode":
            continue
        if e.status == "committed":
            carried[e.exec_id - 1] = record.committed[:, e.index]
        elif model_acceptance and status.get(e.exec_id - 1) == "committed":
            carried[e.exec_id - 1] = record.early[:, e.index]
    return record.committed, carried


def strategy_metrics(plan: Plan, sim: SimResult, hw: Hardware, wl: Workload,
                     accepted: Optional[np.ndarray]) -> dict[str, Any]:
    """Every per-strategy number of the summary; ``accepted`` None: not speculative."""
    m: dict[str, Any] = {}
    m.update(core.latency(plan, sim.items, hw, wl))
    m["cycles"] = int(sim.total_cycles)
    m.update(core.utilization(sim, hw))
    m.update(core.work(sim))
    m["energy_j"] = energy_breakdown(sim, hw)
    m["energy_per_token_j"] = m["energy_j"]["total"] / (wl.generation.batch * wl.generation.new_tokens)
    m["committed_tokens"] = wl.generation.new_tokens
    m["roofline_decode_s"] = core.roofline_decode_s(plan, sim, hw)
    if accepted is not None:
        m["speculation"] = core.speculation(plan, accepted)
    return m

"""The public entry point: simulate strategies for one (hardware, workload) pair.

``simulate`` follows the one-way flow of DESIGN §3 and returns data only:

1. the reference decoder's greedy run (numeric weights) — committed tokens and
   early / final predictions; none for shape-only models; taken from
   ``reference_cache`` when one holds its inputs' key (``model.reference_cache``);
2. the op trace at the hardware's element size;
3. each strategy configures itself from the run's context (``strategies.base``):
   acceptance outcomes (model, bernoulli or file), a draft model's trace;
4. per strategy: plan (work-item DAG) → replay on the SimPy accelerator →
   metrics and energy;
5. the summary (DESIGN §9), the per-execution token table, the per-position
   acceptance profile of the speculative strategies, and the resolved
   configuration that produced them (``speedsim.report.summary``).

Committed tokens come from each strategy's ``outcome``: every lossless one
commits the greedy tokens of the reference run (that the NumPy SPEED, early-exit
and draft-model runs really produce them, and follow the replayed schedules, is
proved in ``tests/test_model_speed.py`` and ``tests/test_model_spec.py``, not
re-run here); the shallow model commits its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cache, partial
from typing import Any, Callable, Optional, Sequence

import numpy as np

import pandas as pd

from speedsim.config.budget import Limits, check_budget
from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware
from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan
from speedsim.contracts.workitem import WorkItem
from speedsim.forking import collector_paused, run_forked
from speedsim.hw import cost
from speedsim.hw.l2 import through_cache
from speedsim.metrics.strategy import strategy_metrics
from speedsim.model.decoder import GenerationRecord
from speedsim.model.reference_cache import RecordCache, cached_generate
from speedsim.model.sharing import shape_layer_sets
from speedsim.hw.fit import check_tiles_fit
from speedsim.model.weights import load_params
from speedsim.report.summary import (StrategyRun, acceptance_table, build_summary,
                                     resolved_config, token_table)
from speedsim.sim.engine import replay
from speedsim.strategies.base import RunContext, Strategy
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import get_strategy
from speedsim.trace import build_trace

Finish = Callable[[str, int, StrategyRun], StrategyRun]  # (strategy name, position, run) -> kept

__all__ = ["RunResult", "StrategyRun", "collector_paused", "gemm_time_s", "simulate", "strategy_list"]


@dataclass(frozen=True)
class RunResult:
    hw: Hardware
    workload: Workload
    runs: dict[str, StrategyRun]
    summary: dict[str, Any]
    tokens: pd.DataFrame
    record: Optional[GenerationRecord] = field(default=None, repr=False)
    acceptance: Optional[pd.DataFrame] = None  # per-position profile (acceptance.csv)

    def resolved_config(self) -> dict[str, Any]:
        return resolved_config(self.hw, self.workload)

    def saved_tables(self) -> dict[str, pd.DataFrame]:
        """Extra tables written beside the contract files, so plots need no rerun."""
        return {file: table for name, run in self.runs.items()
                for file, table in strategy_tables(name, run).items()}


def strategy_tables(name: str, run: StrategyRun) -> dict[str, pd.DataFrame]:
    """One strategy's ``RunResult.saved_tables``, by file name."""
    return {f"items_{name}.csv": run.sim.items.drop(columns=["tokens"], errors="ignore"),
            f"occupancy_{name}.csv": run.sim.occupancy}


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
             limits: Limits = Limits(), *,
             reference_cache: Optional[RecordCache] = None, workers: int = 1,
             finish: Optional[Finish] = None,
             reference: Optional[Callable[[], GenerationRecord]] = None) -> RunResult:
    """``reference_cache`` (``load``/``store`` by key, e.g. ``speedsim.report.io.ReferenceCache``)
    lets runs that share weights, prompts and generation settings skip the reference run;
    ``reference``, when given, is called for the reference run instead (one already under
    way: ``speedsim.forking.Ahead`` of ``cached_generate``).
    ``workers``: processes that run the strategies at once (``speedsim.forking``); the result
    is the same for any number. ``finish(name, position, run)``, when given, is called on
    each strategy's run in the process that ran it, as soon as it is done, and the result
    holds what it returns: ``speedsim run`` writes the strategy's own files there, while
    the others still run, and keeps ``StrategyRun.summary_only``."""
    names = strategy_list(wl, strategies)
    check_budget(wl, len(names), limits)  # before anything is built
    with collector_paused():  # the trace and its index are 100k long-lived rows for a 7B run
        # 1. the op trace at the hardware's element size (while a reference run started
        # ahead finishes)
        base = strategy_input(hw, wl)
        # 2. reference numerics (None for shape-only models)
        numeric = wl.model.weights.source != "shape_only"
        weights = cache(partial(load_params, wl)) if numeric else None  # loaded once, if at all
        record = None if not numeric else reference() if reference is not None \
            else cached_generate(wl, reference_cache, weights)
        # 3. each strategy configures itself (acceptance outcomes, draft traces) from the context
        ctx = RunContext(wl, base, hw.bytes_per_element, weights, record)
        # 4. plan, replay, measure: one job per strategy (the trace index, built once here,
        # is inherited by every worker)
        base.index
        strategies = [get_strategy(name).configure(ctx) for name in names]
        jobs = [partial(_run_strategy, s, base, hw, wl, partial(finish, name, i) if finish else None)
                for i, (name, s) in enumerate(zip(names, strategies))]
        runs = dict(zip(names, run_forked(jobs, workers)))
        # 5. summary and token table
        summary = build_summary(hw, wl, runs)
        tokens = token_table(runs, wl.generation.batch, wl.generation.prompt_tokens)
        return RunResult(hw, wl, runs, summary, tokens, record,
                         acceptance_table(runs, wl.generation.prompt_tokens))


def strategy_input(hw: Hardware, wl: Workload) -> StrategyInput:
    """What every strategy plans from: the op trace at ``hw``'s element size, the layers'
    weight sets, the generation lengths and the hardware's attention choices."""
    return StrategyInput(trace=build_trace(wl, bytes_per_element=hw.bytes_per_element),
                         n_layers=wl.model.n_layers, layer_sets=shape_layer_sets(wl.model),
                         prompt_tokens=wl.generation.prompt_tokens,
                         new_tokens=wl.generation.new_tokens, placement=hw.placement,
                         attention_batched=hw.attention_issue == "batched")


def _run_strategy(strategy: Strategy, base: StrategyInput, hw: Hardware, wl: Workload,
                  finish: Optional[Callable[[StrategyRun], StrategyRun]] = None) -> StrategyRun:
    with collector_paused():
        run = _measured_run(strategy, base, hw, wl)
        return finish(run) if finish is not None else run


def _measured_run(strategy: Strategy, base: StrategyInput, hw: Hardware,
                  wl: Workload) -> StrategyRun:
    plan = strategy.plan(base)
    # what the engine replays: behind an L2 (hw/l2.py), the bytes that miss; the plan's own
    # items stay for the metrics, so that the roofline bounds any buffer of that size
    items = through_cache(plan.items, hw)
    costed = cost.plan(items, hw)
    check_tiles_fit(items, hw, costed)
    sim = replay(items, hw, costed=costed)
    if items is not plan.items:
        sim = replace(sim, costed=None)
    outcome = strategy.outcome(plan)
    spec = strategy.speculative
    metrics = strategy_metrics(plan, sim, hw, wl, outcome.accepted if spec else None,
                               outcome.expected if spec else None)
    for key, extra in outcome.report.items():
        metrics[key] = {**metrics.get(key, {}), **extra}
    # the costing is a pure function of the items and the hardware, kept no longer than the
    # run needs it: recomputing it (``cost.plan``) is cheaper than a worker sending it back
    sim = replace(sim, costed=None)
    return StrategyRun(plan, sim, metrics, outcome.committed, outcome.carried,
                       lossless=strategy.lossless, baseline=strategy.baseline,
                       accepted=outcome.accepted if spec else None,
                       expected=outcome.expected if spec else None)


def gemm_time_s(hw: Hardware, m: int, k: int, n: int) -> float:
    """Simulated seconds of one ``Y[m,n] = X[m,k] W[k,n]`` alone on ``hw``, every operand
    from DRAM: the simulator's answer to a matmul microbenchmark (validation only)."""
    e = hw.bytes_per_element
    item = WorkItem(id=0, unit=hw.placement.gemm, op="matmul", phase="prefill", m=m, k=k, n=n, count=1,
                    weight_key=("matmul",), weight_bytes=k * n * e, act_in_bytes=m * k * e,
                    act_out_bytes=m * n * e, macs=m * k * n)
    return replay([item], hw).total_cycles / hw.clock_hz

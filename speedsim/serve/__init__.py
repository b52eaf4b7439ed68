"""Serving under load: requests arriving over time, continuously batched (DESIGN §12).

``serve(hw, workload, traffic)`` sits above ``speedsim.api`` and below the CLI,
and returns data only:

1. the requests of the traffic config (``requests``), checked against the
   model's ``max_seq_len``;
2. each strategy configures itself as in ``simulate`` (``RunContext``): its
   acceptance outcomes become per-request draws (``progress``);
3. per strategy, on forked workers (``speedsim.forking``, dealt by ``WORK``), each with
   a memo of its own: the continuous-batching server (``scheduler``) asks for each
   iteration's cost, replayed on the engine from the iteration's work items
   (``iteration``, ``memo``);
4. the per-request table and the summary (``metrics``), with the resolved
   configuration that produced them.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, partial
from typing import Any, Callable, Optional, Sequence

import numpy as np
import pandas as pd

from speedsim import __version__
from speedsim.api import collector_paused, strategy_input, strategy_list
from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware
from speedsim.config.traffic import Traffic
from speedsim.config.workload import Workload
from speedsim.forking import run_forked
from speedsim.model.reference_cache import cached_generate
from speedsim.model.weights import load_params
from speedsim.report.summary import resolved_config
from speedsim.serve.memo import IterationCosts
from speedsim.serve.metrics import request_table, summary
from speedsim.serve.progress import Acceptance, steppers
from speedsim.serve.requests import Request, make_requests
from speedsim.serve.rows import RowBank
from speedsim.serve.scheduler import Limits, retime, run_server
from speedsim.strategies.base import RunContext
from speedsim.strategies.registry import get_strategy

__all__ = ["ServeResult", "serve"]

SPECULATIVE = ("speed", "early_exit_spec", "draft_spec")


@dataclass(frozen=True)
class ServeResult:
    hw: Hardware
    workload: Workload
    traffic: Traffic
    summary: dict[str, Any]
    requests: pd.DataFrame  # one row per request and strategy (``metrics.REQUEST_COLUMNS``)

    def resolved_config(self) -> dict[str, Any]:
        return {**resolved_config(self.hw, self.workload),
                "traffic": self.traffic.model_dump(mode="json")}


def serve(hw: Hardware, wl: Workload, traffic: Traffic, strategies: Optional[Sequence[str]] = None,
          *, exact: bool = False, audit: bool = False, workers: int = 1,
          tick: Callable[[int], None] = lambda n: None) -> ServeResult:
    """``exact``: replay every iteration instead of reading the memo; ``audit``: the memo
    drives the run, every iteration is also replayed, and the memo's error is reported
    on each iteration and on the summary metrics of the same iteration sequence
    (``same_schedule``). ``workers``: processes that serve the strategies at once
    (``speedsim.forking``, dealt by ``WORK``); each strategy has a memo of its own, so the
    result is the same for any number. ``tick(n)``: n more requests done (by any worker;
    it must be safe to call from a forked process)."""
    names = strategy_list(wl, strategies)
    with collector_paused():
        # 1. the requests
        requests = make_requests(traffic)
        check_lengths(requests, wl, traffic)
        check_span(requests, hw, traffic)
        if "speed" in names:
            check_speed_servable(wl)
        # 2. each strategy's acceptance outcomes, drawn per request
        draws = acceptance_draws(hw, wl, [n for n in names if n in SPECULATIVE])
        bank = RowBank(_models(wl), hw.bytes_per_element)
        limits = Limits(traffic.scheduler.max_batch, traffic.scheduler.max_prefill_tokens)
        # 3. one job per strategy: its server, iteration by iteration, then its tables
        jobs = [partial(serve_strategy, stepper, requests, limits, bank, hw, traffic,
                        exact, audit, tick)
                for stepper in steppers(wl, names, draws.__getitem__)]
        served = run_forked(jobs, workers, weights=[WORK.get(n, 1) for n in names])
    entries = {name: entry for name, (entry, _) in zip(names, served)}
    add_advantage(entries)
    doc = {"speedsim_version": __version__, "hardware": hw.name, "workload": wl.name,
           "traffic": traffic.name, "strategies": entries}
    return ServeResult(hw, wl, traffic, doc, pd.concat([t for _, t in served], ignore_index=True))


# Relative wall time of serving each strategy alone, by which ``serve`` deals them to its
# workers (``forking.deal``): the 7B cycle-shared shape on h100, 1,000 requests
# (traffic/llama7b_poisson.yaml), 4.7, 4.8, 10.4, 29.4 and 34.3 s (2026-12-07). A verify
# wave's corners (groups of k + 1 rows) and a draft pass's make the speculative ones
# replay most. A strategy not listed weighs 1.
WORK = {"sequential": 1, "shallow": 1, "speed": 2, "early_exit_spec": 6, "draft_spec": 7}


def serve_strategy(stepper, requests: list[Request], limits: Limits, bank: RowBank,
                   hw: Hardware, traffic: Traffic, exact: bool, audit: bool,
                   tick: Callable[[int], None]) -> tuple[dict[str, Any], pd.DataFrame]:
    """One strategy served (its summary entry, its rows of the request table), with an
    iteration-cost memo of its own (``memo.IterationCosts``): its corners are replayed for
    it alone, so what it costs never depends on what ran before it."""
    costs = IterationCosts(hw, bank, exact, audit, bank.depth)
    served = run_server(stepper, requests, limits, costs, hw.clock_hz, tick)
    table = request_table(served, requests)
    entry = summary(served, table, hw, traffic.slo, limits.max_batch)
    memo = {"iterations": costs.calls, "replays": costs.replays, "exact": exact}
    if audit:
        memo["audit"] = {**costs.audit_report(),
                         **same_schedule(served, entry, requests, costs, hw, traffic)}
    return {**entry, "memo": memo}, table


def same_schedule(served, entry: dict, requests: list[Request], costs: IterationCosts,
                  hw: Hardware, traffic: Traffic) -> dict[str, Any]:
    """The memo's error on the summary metrics, its run's iteration sequence kept: the
    timeline recomputed from every iteration's replayed cost (``scheduler.retime``) and
    each metric of ``AUDITED_METRICS`` compared, relative (memo / replayed − 1)."""
    exact = retime(served, requests, [e for e, _ in costs.audited], hw.clock_hz)
    table = request_table(exact, requests)
    ref = summary(exact, table, hw, traffic.slo, traffic.scheduler.max_batch)
    return {"summary_rel_error": {name: metric(entry, name) / metric(ref, name) - 1
                                  for name in AUDITED_METRICS}}


AUDITED_METRICS = ("ttft_s.p50", "ttft_s.p90", "ttft_s.p99", "ttft_s.mean", "tpot_s.p50",
                   "tpot_s.p90", "tpot_s.p99", "tpot_s.mean", "e2e_s.p50", "e2e_s.p90",
                   "e2e_s.p99", "e2e_s.mean", "throughput_tokens_per_s", "goodput_rps",
                   "mean_batch", "energy_per_token_j")


def metric(entry: dict, name: str) -> float:
    """``entry``'s value of a dotted name ("ttft_s.p99")."""
    key, _, q = name.partition(".")
    return entry[key][q] if q else entry[key]


def check_lengths(requests: list[Request], wl: Workload, traffic: Traffic) -> None:
    """Every request fits the model's context (``max_seq_len``, when it has one)."""
    if wl.model.max_seq_len is None:
        return
    longest = max(requests, key=lambda r: r.prompt_tokens + r.output_tokens)
    if longest.prompt_tokens + longest.output_tokens > wl.model.max_seq_len:
        key = "arrivals.path" if traffic.arrivals.process == "trace" else \
            "prompt_tokens" if longest.prompt_tokens >= wl.model.max_seq_len else "output_tokens"
        raise ConfigError(f"request {longest.id} needs {longest.prompt_tokens} + "
                          f"{longest.output_tokens} positions, more than the model's "
                          f"max_seq_len {wl.model.max_seq_len}", key=f"traffic.{key}")


def check_span(requests: list[Request], hw: Hardware, traffic: Traffic) -> None:
    """The last arrival lies where the server's clock (float seconds) still resolves one
    cycle: within 2^52 cycles (about 52 days at 1 GHz)."""
    last, span = requests[-1].arrival_s, 2.0 ** 52 / hw.clock_hz
    if last > span:
        key = "arrivals.path" if traffic.arrivals.process == "trace" else "arrivals.rate_rps"
        raise ConfigError(f"the last request arrives at {last:.3g} s, beyond the {span:.3g} s "
                          f"(2^52 cycles at clock_hz {hw.clock_hz:g}) in which the server's "
                          "clock resolves one cycle", key=f"traffic.{key}")


def check_speed_servable(wl: Workload) -> None:
    """The served SPEED step (``speedsim.serve.iteration``) is G equal stages of N / G
    layers, the early head after stage 0 and no second proposal: anything else is refused, not approximated."""
    sp = wl.strategies.speed
    sh = wl.model.sharing
    if sh.prelude_layers or sh.coda_layers:
        raise ConfigError("speedsim serve models SPEED over a loop model without prelude or "
                          "coda layers only", key="workload.model.sharing."
                          + ("prelude_layers" if sh.prelude_layers else "coda_layers"))
    if sp.exit_depth != 1:
        raise ConfigError(f"speedsim serve models SPEED at exit_depth 1 only, not {sp.exit_depth}",
                          key="workload.strategies.speed.exit_depth")
    if sp.second_depth is not None:
        raise ConfigError("speedsim serve does not model SPEED's second proposal",
                          key="workload.strategies.speed.second_depth")


def acceptance_draws(hw: Hardware, wl: Workload, names: list[str]) -> dict[str, Acceptance]:
    """Per speculative strategy: request -> its acceptance outcomes (``progress``)."""
    if not names:
        return {}
    numeric = wl.model.weights.source != "shape_only"
    weights = cache(partial(load_params, wl)) if numeric else None
    record = cached_generate(wl, None, weights) if numeric else None
    ctx = RunContext(wl, strategy_input(hw, wl), hw.bytes_per_element, weights, record)
    return {n: partial(per_request, getattr(wl.strategies, n).acceptance,
                       np.asarray(get_strategy(n).configure(ctx).acceptance.accepted, dtype=bool))
            for n in names}


def per_request(acc, vector: np.ndarray, r: Request) -> np.ndarray:
    """bool [output_tokens] of request ``r`` (``speedsim.serve.progress``)."""
    T = r.output_tokens
    if acc.source == "bernoulli":
        rng = np.random.default_rng(acc.seed if r.id == 0 else [acc.seed, r.id])
        return rng.random(T) < acc.rate
    offset = 0 if r.id == 0 else int(np.random.default_rng(r.id).integers(vector.size))
    return np.resize(np.roll(vector, -offset), T)


def add_advantage(entries: dict[str, dict]) -> None:
    """Each strategy's throughput over sequential decoding's, and sequential's median TPOT
    over its own (the per-token latency speedup), when sequential ran."""
    seq = entries.get("sequential")
    if not seq or not seq["throughput_tokens_per_s"]:
        return
    for e in entries.values():
        e["throughput_vs_sequential"] = e["throughput_tokens_per_s"] / seq["throughput_tokens_per_s"]
        e["tpot_speedup_p50"] = seq["tpot_s"]["p50"] / e["tpot_s"]["p50"]


def _models(wl: Workload) -> dict[str, object]:
    models = {"": wl.model}
    if wl.strategies.draft_spec is not None:
        models["draft"] = wl.strategies.draft_spec.draft_model
    return models


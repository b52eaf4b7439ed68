"""The run summary (DESIGN §9 ``summary.json``) and the per-execution token table.

Both are pure functions of the strategies' runs: plan, event log, metrics and
committed tokens. ``tokens_match`` is the losslessness check every summary
carries: all lossless strategies committed the same real token ids (null
without numerics); ``positions_match``: every strategy committed the same
positions, each once and in order. The baseline of ``speedup`` is the strategy
that says it is one (sequential decoding), never a name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Optional

import numpy as np
import pandas as pd

from speedsim import __version__
from speedsim.config.hw import Hardware
from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan
from speedsim.metrics.compare import roofline_fractions, speedups
from speedsim.contracts.results import SimResult

ACCEPTANCE_COLUMNS = ["strategy", "position", "expected", "realized"]
TOKEN_COLUMNS = ["strategy", "exec", "sequence", "position", "token_id", "status",
                 "start_cycle", "end_cycle", "next_token_id"]


@dataclass(frozen=True)
class StrategyRun:
    plan: Plan
    sim: SimResult
    metrics: dict[str, Any]
    committed: Optional[np.ndarray]  # token ids [B, new_tokens] (None for shape-only models)
    carried: Optional[np.ndarray] = None  # [decode executions, B]: input token of each, by
    #                                       exec_id - 1 (-1 where not modelled)
    lossless: bool = True  # it commits the target's greedy tokens (``tokens_match`` checks it)
    baseline: bool = False  # speedups are measured against it (sequential decoding)
    accepted: Optional[np.ndarray] = None  # bool [new_tokens]: each draft kept (speculative)
    expected: Optional[np.ndarray] = None  # float [new_tokens]: P(kept); None: not known

    def summary_only(self) -> "StrategyRun":
        """This run less what only its own files need: the plan's items and the replay's
        log, occupancy and item columns other than the cycles the token table reads.
        ``build_summary`` and ``token_table`` give the same from it; a worker that has
        written the files sends back this (``speedsim run``: a 7B run's whole result took
        the parent ~0.8 s to unpickle)."""
        sim = self.sim
        return replace(self, plan=replace(self.plan, items=[]),
                       sim=replace(sim, log=sim.log.iloc[:0], occupancy=sim.occupancy.iloc[:0],
                                   items=sim.items[["start_cycle", "end_cycle"]]))


def resolved_config(hw: Hardware, wl: Workload) -> dict[str, Any]:
    return {"hw": hw.model_dump(mode="json"), "workload": wl.model_dump(mode="json")}


def build_summary(hw: Hardware, wl: Workload, runs: dict[str, StrategyRun]) -> dict[str, Any]:
    strategies = {n: r.metrics for n, r in runs.items()}
    seq = next((strategies[n] for n, r in runs.items() if r.baseline), None)
    return {
        "speedsim_version": __version__,
        "hardware": hw.name,
        "workload": wl.name,
        "strategies": strategies,
        "speedup": speedups(strategies, seq),
        "roofline": {n: m["roofline_decode_s"] for n, m in strategies.items()},
        "roofline_fraction": roofline_fractions(strategies),
        "tokens_match": tokens_match(runs),
        "positions_match": positions_match(runs),
        "config": resolved_config(hw, wl),
    }


def tokens_match(runs: dict[str, StrategyRun]) -> Optional[bool]:
    """Every lossless strategy committed the same real token ids; None when a run has
    none (shape-only models) — then ``positions_match`` is the check left. Lossy
    strategies (the shallow model) report their own ``quality`` instead."""
    committed = [r.committed for r in runs.values() if r.lossless]
    if not committed or any(c is None for c in committed):
        return None
    return all(np.array_equal(committed[0], c) for c in committed[1:])


def positions_match(runs: dict[str, StrategyRun]) -> bool:
    """Every strategy committed every position exactly once and in order, the same ones."""
    positions = [_committed_positions(r.plan) for r in runs.values()]
    return all(p == list(range(len(positions[0]))) for p in positions) and \
        all(p == positions[0] for p in positions)


def _committed_positions(plan: Plan) -> list[int]:
    return sorted(e.index for e in plan.execs if e.phase == "decode" and e.status == "committed")


def token_table(runs: dict[str, StrategyRun], batch: int, prompt_tokens: int) -> pd.DataFrame:
    """One row per decode token execution and sequence (DESIGN §9 ``tokens.csv``):
    ``token_id`` is the token the execution takes in at ``position`` (-1 without numerics),
    ``next_token_id`` the token it commits, for the next position (-1 where flushed or
    without numerics): the last committed row's is the last generated token."""
    rows = [row for name, run in runs.items()
            for row in _token_rows(name, run, batch, prompt_tokens)]
    return pd.DataFrame(rows, columns=TOKEN_COLUMNS)


def _token_rows(name: str, run: StrategyRun, batch: int, prompt_tokens: int) -> list[dict[str, Any]]:
    start = run.sim.items["start_cycle"].to_numpy()
    end = run.sim.items["end_cycle"].to_numpy()
    rows = []
    for e in run.plan.execs:
        if e.phase != "decode":
            continue
        for b in range(batch):
            token = -1 if run.carried is None else int(run.carried[e.exec_id - 1, b])
            rows.append({"strategy": name, "exec": e.exec_id, "sequence": b,
                         "position": e.position, "token_id": token, "status": e.status,
                         "start_cycle": int(start[e.first_item]),
                         "end_cycle": int(end[e.last_item]),
                         "next_token_id": _next_token(run, e, b, prompt_tokens)})
    return rows


def _next_token(run: StrategyRun, e, sequence: int, prompt_tokens: int) -> int:
    """The token a committed execution at ``e.position`` produced: generated token
    ``position - P + 1`` (the prefill produced token 0)."""
    if run.committed is None or e.status != "committed":
        return -1
    return int(run.committed[sequence, e.position - prompt_tokens + 1])


def acceptance_table(runs: dict[str, StrategyRun], prompt_tokens: int) -> pd.DataFrame:
    """The per-position acceptance profile (``acceptance.csv``): per speculative strategy
    and checked token i (1 .. committed − 1, as ``acceptance_rate`` counts them), the
    absolute position P + i of the token, the probability its draft was kept (``expected``,
    empty where not known) and whether it was (``realized``, 1 or 0)."""
    rows = []
    for name, run in runs.items():
        if run.accepted is None:
            continue
        for i in range(1, run.metrics["committed_tokens"] - 1):
            rows.append({"strategy": name, "position": prompt_tokens + i,
                         "expected": None if run.expected is None else float(run.expected[i]),
                         "realized": int(bool(run.accepted[i]))})
    return pd.DataFrame(rows, columns=ACCEPTANCE_COLUMNS)

"""Serving metrics of one strategy: the per-request table and its summary (docs/metrics.md).

Per request i (arrival a, admitted s, first token f, finish e, T tokens):
TTFT = f − a, queueing delay = s − a, TPOT = (e − f) / (T − 1) (none for T = 1),
end-to-end = e − a. Over the run, from the first arrival a₀ to the last finish
e_max (span D = e_max − a₀): throughput = Σ T / D; goodput = #{TTFT ≤ slo.ttft_s
and TPOT ≤ slo.tpot_s (T = 1: TTFT alone)} / D; mean batch = Σ decode-iteration
seconds × requests in it / Σ decode-iteration seconds; energy per token = (Σ
iteration dynamic energy + static power × D) / Σ T.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from speedsim.config.hw import Hardware
from speedsim.config.traffic import Slo
from speedsim.serve.requests import Request
from speedsim.serve.scheduler import Served

REQUEST_COLUMNS = ("strategy", "request", "arrival_s", "prompt_tokens", "output_tokens",
                   "admitted_s", "first_token_s", "finish_s", "queueing_s", "ttft_s", "tpot_s",
                   "e2e_s")
PERCENTILES = (50, 90, 99)


def request_table(served: Served, requests: list[Request]) -> pd.DataFrame:
    """One row per request (``REQUEST_COLUMNS``)."""
    t = served.times
    arrival = np.array([r.arrival_s for r in requests])
    tokens = np.array([r.output_tokens for r in requests])
    admitted, first, finish = (np.array([getattr(x, f) for x in t]) for f in
                               ("admitted_s", "first_token_s", "finish_s"))
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(tokens > 1, (finish - first) / np.maximum(tokens - 1, 1), np.nan)
    return pd.DataFrame({
        "strategy": served.strategy, "request": [r.id for r in requests], "arrival_s": arrival,
        "prompt_tokens": [r.prompt_tokens for r in requests], "output_tokens": tokens,
        "admitted_s": admitted, "first_token_s": first, "finish_s": finish,
        "queueing_s": admitted - arrival, "ttft_s": first - arrival, "tpot_s": tpot,
        "e2e_s": finish - arrival}, columns=list(REQUEST_COLUMNS))


def distribution(values: np.ndarray) -> dict[str, float]:
    """{p50, p90, p99, mean} of the finite values (NumPy's linear percentiles); NaN when
    there are none."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if not v.size:
        return {**{f"p{q}": float("nan") for q in PERCENTILES}, "mean": float("nan")}
    return {**{f"p{q}": float(np.percentile(v, q)) for q in PERCENTILES}, "mean": float(v.mean())}


def summary(served: Served, table: pd.DataFrame, hw: Hardware, slo: Slo,
            max_batch: int) -> dict[str, Any]:
    """The strategy's entry of ``summary.json`` (module docstring)."""
    span = float(table["finish_s"].max() - table["arrival_s"].min())
    tokens = int(table["output_tokens"].sum())
    return {
        "requests": len(table),
        "ttft_s": distribution(table["ttft_s"]),
        "tpot_s": distribution(table["tpot_s"]),
        "e2e_s": distribution(table["e2e_s"]),
        "queueing_s": distribution(table["queueing_s"]),
        "throughput_tokens_per_s": tokens / span if span > 0 else 0.0,
        "goodput_rps": int(meets_slo(table, slo).sum()) / span if span > 0 else 0.0,
        "slo_attainment": float(meets_slo(table, slo).mean()),
        "mean_batch": served.batch_s / served.decode_s if served.decode_s > 0 else 0.0,
        "batch_occupancy": (served.batch_s / served.decode_s / max_batch
                            if served.decode_s > 0 else 0.0),
        "energy_per_token_j": (served.dynamic_j + hw.energy.static_power_w * span) / tokens,
        "span_s": span,
        "busy_s": served.busy_s,
        "iterations": dict(served.iterations),
    }


def meets_slo(table: pd.DataFrame, slo: Slo) -> np.ndarray:
    """bool per request: TTFT and TPOT within the SLO (a one-token request: TTFT only)."""
    tpot = table["tpot_s"].to_numpy()
    ok_tpot = np.where(np.isnan(tpot), True, tpot <= slo.tpot_s)
    return (table["ttft_s"].to_numpy() <= slo.ttft_s) & ok_tpot

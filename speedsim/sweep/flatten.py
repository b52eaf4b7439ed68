"""One sweep point's result row: a run summary flattened to ``a.b.c`` columns, plus silicon.

``silicon.cost_proxy`` = PEs + on-chip SRAM in KiB: a crude area stand-in for
Pareto fronts (one PE ~ one KiB of SRAM), not a cost model.

``metric_problem`` checks a metric name against the columns a row can have
(``<strategy>.<STRATEGY_METRICS entry>``, ``speedup.<strategy>``,
``roofline.<strategy>``, ``tokens_match``, ``silicon.*``; in a serving sweep
``<strategy>.<SERVE_METRICS entry>``) before any point runs; ``tests/test_sweep_spec.py``
pins both catalogues against a real row of every strategy.
"""

from __future__ import annotations

import difflib
from typing import Any, Optional, Sequence

from speedsim.config.hw import UNITS, Hardware


def flatten_summary(summary: dict[str, Any], hw: Hardware) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, m in summary["strategies"].items():
        _walk(flat, name, m)
    _walk(flat, "speedup", summary["speedup"])
    _walk(flat, "roofline", summary["roofline"])
    flat["tokens_match"] = summary["tokens_match"]
    flat.update(silicon(hw))
    return flat


def _walk(flat: dict[str, Any], prefix: str, obj: Any) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(flat, f"{prefix}.{k}" if prefix else str(k), v)
    else:
        flat[prefix] = obj


def silicon(hw: Hardware) -> dict[str, Any]:
    b = hw.buffers
    pes = sum(hw.section(u.name).pes for u in hw.units if u.kind == "matrix")
    sram_kib = sum(x.size_kib for x in (b.weight, b.activation, b.accumulator, b.kv)
                   if x is not None)
    return {"silicon.pes": pes, "silicon.sram_kib": sram_kib,
            "silicon.cost_proxy": pes + sram_kib}


_BUFFER_STATS = ("peak_bytes", "mean_bytes", "capacity_bytes")
VS_SEQUENTIAL = ("throughput_vs_sequential", "tpot_speedup_p50")  # served beside sequential only
_UNIT_PARTS = tuple(dict.fromkeys(u.energy_part for u in UNITS))
STRATEGY_METRICS: frozenset[str] = frozenset([
    "ttft_s", "decode_time_s", "decode_tokens", "time_per_token_s", "inter_token_p50_s",
    "inter_token_p99_s", "tokens_per_s", "end_to_end_s", "cycles",
    *(f"{u.name}_utilization" for u in UNITS), "dram_bandwidth_utilization", "macs",
    "vector_ops", "dram_bytes",
    *(f"dram_bytes_by_kind.{k}_bytes" for k in ("weight", "kv_read", "kv_write", "act")),
    "wasted_macs", "wasted_dram_bytes",
    *(f"energy_j.{k}" for k in ("total", "dram", "sram", *_UNIT_PARTS, "static", "wasted")),
    "energy_per_token_j", "committed_tokens", "roofline_decode_s",
    *(f"bound_by.{k}" for k in ("dram", *(u.name for u in UNITS), "latency")),
    *(f"buffers.{b}.{s}" for b in ("weight", "activation", "accumulator", "kv") for s in _BUFFER_STATS),
    *(f"speculation.{k}" for k in (
        "launched", "committed", "flushed", "flushes", "acceptance_rate", "mean_tokens_in_flight",
        "stage_steps", "draft_tokens", "verify_steps", "drafted", "accepted_drafts",
        "mean_accepted_per_step", "expected_accepted_per_step", "tokens_per_step",
        "expected_acceptance_rate", "acceptance_stderr", "acceptance_positions",
        "second_restarts", "second_rescued")),
    *(f"quality.{k}" for k in ("exit_layers", "lossless", "differing_tokens",
                               "differing_fraction", "first_difference")),
])
SILICON = ("silicon.pes", "silicon.sram_kib", "silicon.cost_proxy")
# a serving sweep's (``traffic:``) columns per strategy: ``speedsim.serve``'s summary entry
_DISTRIBUTIONS = ("ttft_s", "tpot_s", "e2e_s", "queueing_s")
SERVE_METRICS: frozenset[str] = frozenset([
    "requests", *(f"{d}.{q}" for d in _DISTRIBUTIONS for q in ("p50", "p90", "p99", "mean")),
    "throughput_tokens_per_s", "goodput_rps", "slo_attainment", "mean_batch", "batch_occupancy",
    "energy_per_token_j", "span_s", "busy_s", "iterations.prefill", "iterations.decode",
    "memo.iterations", "memo.replays", "memo.exact", *VS_SEQUENTIAL,
])


def metric_problem(metric: str, strategies: Sequence[str], serving: bool = False) -> Optional[str]:
    """Why a sweep of ``strategies`` cannot have the column ``metric``, or None;
    ``serving``: the sweep serves traffic (its columns are ``SERVE_METRICS`` per strategy)."""
    if serving:
        return _serving_problem(metric, strategies)
    head, _, rest = metric.partition(".")
    if metric == "tokens_match" or metric in SILICON:
        return None
    if head in ("speedup", "roofline"):
        return None if rest in strategies else \
            f"{head}.<strategy> needs one of this sweep's strategies {list(strategies)}"
    if head not in strategies:
        return (f"{head!r} is not one of this sweep's strategies {list(strategies)} "
                "(nor speedup, roofline, silicon or tokens_match)")
    if rest not in STRATEGY_METRICS:
        if rest in SERVE_METRICS:
            return f"{rest!r} is a serving metric: the sweep needs a base traffic file (traffic: …)"
        return f"{rest!r} is not a metric of a strategy{_near(head, rest, STRATEGY_METRICS)}"
    return None


def _serving_problem(metric: str, strategies: Sequence[str]) -> Optional[str]:
    head, _, rest = metric.partition(".")
    if head not in strategies:
        return (f"{head!r} is not one of this sweep's strategies {list(strategies)} (a serving "
                "sweep's columns are <strategy>.<serving metric>)")
    if rest not in SERVE_METRICS:
        return (f"{rest!r} is not a serving metric of a strategy"
                f"{_near(head, rest, SERVE_METRICS)}")
    if rest in VS_SEQUENTIAL and "sequential" not in strategies:
        return f"{rest!r} needs sequential among the sweep's strategies"
    return None


def _near(head: str, rest: str, catalogue: frozenset[str]) -> str:
    near = difflib.get_close_matches(rest, sorted(catalogue), n=1)
    return f" (did you mean {head}.{near[0]}?)" if near else " (see speedsim list metrics)"

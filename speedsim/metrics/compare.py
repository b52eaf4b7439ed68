"""Metrics across the strategies of one run (docs/metrics.md, "Speedup and roofline").

Pure functions of the per-strategy metric dicts that ``speedsim.metrics.strategy``
builds: the decode speedup over the baseline (sequential decoding: same
hardware, workload and committed tokens) and the fraction of the roofline bound
each strategy achieved.
"""

from __future__ import annotations

from typing import Any, Optional


def speedups(strategies: dict[str, dict[str, Any]],
             baseline: Optional[dict[str, Any]]) -> dict[str, Optional[float]]:
    """``decode_time_s(baseline) / decode_time_s(s)`` per strategy; None without a baseline."""
    return {n: (baseline["decode_time_s"] / m["decode_time_s"]
                if baseline and m["decode_time_s"] > 0 else None) for n, m in strategies.items()}


def roofline_fractions(strategies: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``roofline_decode_s / decode_time_s`` per strategy (1 for an empty decode)."""
    return {n: (m["roofline_decode_s"] / m["decode_time_s"] if m["decode_time_s"] else 1.0)
            for n, m in strategies.items()}

"""What bounds decode: the share of decode time each resource was the critical one.

A pure function of the event log (``SimResult.log``) and the decode window
``[start, end)`` (TTFT to the last commit, in cycles):

1. every log row of unit ``r`` (``array``/``vector`` compute, ``dram``
   transfers) spreads its ``busy_cycles`` evenly over its span
   ``[start_cycle, end_cycle)``: a density ``busy_cycles / span`` (a merged row
   of a weight stream that moved data half the time has density 1/2);
2. at each cycle, the utilization ``u_r`` of a resource is the sum of the
   densities of its rows covering that cycle, at most 1;
3. the cycle is charged ``max_r u_r`` to the resource with the highest
   utilization and ``1 - max_r u_r`` to ``latency`` (waiting on dependencies,
   DRAM latency, issue gaps).

The four shares add up to 1 (``docs/metrics.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESOURCES = ("dram", "array", "vector")


def _utilization(log: pd.DataFrame, unit: str, edges: np.ndarray) -> np.ndarray:
    """Per elementary segment ``[edges[i], edges[i+1])``: the unit's utilization."""
    rows = log[log["unit"] == unit]
    s = rows["start_cycle"].to_numpy(dtype=np.int64)
    e = rows["end_cycle"].to_numpy(dtype=np.int64)
    keep = e > s
    s, e = s[keep], e[keep]
    density = rows["busy_cycles"].to_numpy(dtype=np.float64)[keep] / (e - s)
    delta = np.zeros(len(edges) + 1)
    np.add.at(delta, np.searchsorted(edges, s), density)
    np.add.at(delta, np.searchsorted(edges, e), -density)
    return np.minimum(np.cumsum(delta)[:len(edges) - 1], 1.0)


def bound_by(log: pd.DataFrame, start: int, end: int) -> dict[str, float]:
    """Shares of ``[start, end)`` with ``dram``/``array``/``vector``/``latency`` critical."""
    out = {r: 0.0 for r in (*RESOURCES, "latency")}
    if end <= start:
        return out
    s = np.clip(log["start_cycle"].to_numpy(dtype=np.int64), start, end)
    e = np.clip(log["end_cycle"].to_numpy(dtype=np.int64), start, end)
    clipped = log.assign(start_cycle=s, end_cycle=e,
                         busy_cycles=log["busy_cycles"] * _kept(log, s, e))
    edges = np.unique(np.concatenate([[start, end], s, e]))
    util = np.stack([_utilization(clipped, r, edges) for r in RESOURCES])
    lengths = np.diff(edges).astype(np.float64)
    best = util.argmax(axis=0)
    for i, r in enumerate(RESOURCES):
        out[r] = float((lengths * util[i] * (best == i)).sum()) / (end - start)
    out["latency"] = 1.0 - sum(out[r] for r in RESOURCES)
    return out


def _kept(log: pd.DataFrame, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The share of each row's span left inside the window."""
    span = (log["end_cycle"] - log["start_cycle"]).to_numpy(dtype=np.float64)
    return np.where(span > 0, (e - s) / np.maximum(span, 1), 0.0)

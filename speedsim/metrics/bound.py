"""What bounds decode: the share of decode time each resource was the critical one.

A pure function of the event log (``SimResult.log``) and the decode window
``[start, end)`` (TTFT to the last commit, in cycles):

1. every log row of resource ``r`` (a compute unit's compute, ``dram``
   transfers) spreads its ``busy_cycles`` evenly over its span
   ``[start_cycle, end_cycle)``: a density ``busy_cycles / span`` (a merged row
   of a weight stream that moved data half the time has density 1/2);
2. at each cycle, the utilization ``u_r`` of a resource is the sum of the
   densities of its rows covering that cycle, at most 1;
3. the cycle is charged ``max_r u_r`` to the resource with the highest
   utilization and ``1 - max_r u_r`` to ``latency`` (waiting on dependencies,
   DRAM latency, issue gaps).

The shares (``dram``, each compute unit's, ``latency``) add up to 1 (``docs/metrics.md``).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd


def _utilization(start: np.ndarray, end: np.ndarray, busy: np.ndarray,
                 edges: np.ndarray) -> np.ndarray:
    """Per elementary segment ``[edges[i], edges[i+1])``: the utilization of one unit
    whose rows span ``[start, end)`` with ``busy`` cycles each (rows of no span skipped)."""
    keep = end > start
    s, e = start[keep], end[keep]
    density = busy[keep] / (e - s)
    # the rows' starts add their density, then their ends take it away, in this order
    at = np.concatenate([np.searchsorted(edges, s), np.searchsorted(edges, e)])
    delta = np.bincount(at, np.concatenate([density, -density]), minlength=len(edges) + 1)
    return np.minimum(np.cumsum(delta)[:len(edges) - 1], 1.0)


def bound_by(log: pd.DataFrame, start: int, end: int, units: Sequence[str]) -> dict[str, float]:
    """Shares of ``[start, end)`` with ``dram``, each of the compute ``units`` or
    ``latency`` critical (a tie goes to the first of them)."""
    resources = ("dram", *units)
    out = {r: 0.0 for r in (*resources, "latency")}
    if end <= start:
        return out
    s0 = log["start_cycle"].to_numpy(dtype=np.int64)
    e0 = log["end_cycle"].to_numpy(dtype=np.int64)
    s, e = np.clip(s0, start, end), np.clip(e0, start, end)
    busy = log["busy_cycles"].to_numpy() * _kept(s0, e0, s, e)
    edges = _sorted_unique(np.concatenate([[start, end], s, e]))
    unit = log["unit"].to_numpy()
    util = np.stack([_utilization(s[m], e[m], busy[m], edges) for m in (unit == r for r in resources)])
    lengths = np.diff(edges).astype(np.float64)
    best = util.argmax(axis=0)
    for i, r in enumerate(resources):
        out[r] = float((lengths * util[i] * (best == i)).sum()) / (end - start)
    out["latency"] = 1.0 - sum(out[r] for r in resources)
    return out


def _kept(s0: np.ndarray, e0: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """The share of each row's span ``[s0, e0)`` left inside the window, ``[s, e)``."""
    span = (e0 - s0).astype(np.float64)
    return np.where(span > 0, (e - s) / np.maximum(span, 1), 0.0)


def _sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sorting (NumPy 2's hash-based unique is several times slower on
    the ~400k cycles of a 7B run's log)."""
    x = np.sort(values)
    return x[np.concatenate([[True], x[1:] != x[:-1]])] if len(x) else x

"""What bounds decode: the share of decode time each resource was the critical one.

A pure function of the event log (``SimResult.log``) and the decode window
``[start, end)`` (TTFT to the last commit, in cycles):

1. busy intervals per resource: ``array`` and ``vector`` compute rows, ``dram``
   transfer rows (their spans, as logged), each merged into a union and clipped
   to the window; ``busy_r`` is the length of that union;
2. resources ranked by ``busy_r`` (the most used first: in a pipeline that
   overlaps its units, the one busy longest is the one the others wait for);
3. every cycle of the window is charged to the highest-ranked resource busy
   in it, or to ``latency`` when none is (dependencies, DRAM latency, issue
   gaps).

The four shares add up to 1 (``docs/metrics.md``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

RESOURCES = ("dram", "array", "vector")


def _union(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The union of intervals ``[starts, ends)`` as sorted disjoint intervals."""
    keep = ends > starts
    starts, ends = starts[keep], ends[keep]
    if not len(starts):
        return starts, ends
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], np.maximum.accumulate(ends[order])
    new = np.concatenate([[True], starts[1:] > ends[:-1]])
    last = np.append(np.flatnonzero(new)[1:] - 1, len(ends) - 1)  # ends are running maxima
    return starts[new], ends[last]


def _busy(log: pd.DataFrame, unit: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    rows = log[log["unit"] == unit]
    s = np.clip(rows["start_cycle"].to_numpy(dtype=np.int64), start, end)
    e = np.clip(rows["end_cycle"].to_numpy(dtype=np.int64), start, end)
    return _union(s, e)


def _covered(union: tuple[np.ndarray, np.ndarray], points: np.ndarray) -> np.ndarray:
    """Whether each of ``points`` lies inside the union."""
    s, e = union
    if not len(s):
        return np.zeros(len(points), dtype=bool)
    i = np.searchsorted(s, points, side="right") - 1
    return (i >= 0) & (points < e[np.maximum(i, 0)])


def bound_by(log: pd.DataFrame, start: int, end: int) -> dict[str, float]:
    """Shares of ``[start, end)`` with ``dram``/``array``/``vector``/``latency`` critical."""
    out = {r: 0.0 for r in (*RESOURCES, "latency")}
    if end <= start:
        return out
    unions = {r: _busy(log, r, start, end) for r in RESOURCES}
    busy = {r: int((e - s).sum()) for r, (s, e) in unions.items()}
    ranked = sorted(RESOURCES, key=lambda r: -busy[r])  # stable: ties keep RESOURCES order
    edges = np.unique(np.concatenate([[start, end], *[np.concatenate(u) for u in unions.values()]]))
    points, lengths = edges[:-1], np.diff(edges)
    free = np.ones(len(points), dtype=bool)
    for r in ranked:
        mine = free & _covered(unions[r], points)
        out[r] = float(lengths[mine].sum()) / (end - start)
        free &= ~mine
    out["latency"] = float(lengths[free].sum()) / (end - start)
    return out

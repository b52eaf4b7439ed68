"""Pareto fronts of sweep results, and their plot.

A row *dominates* another when it is at least as good in every objective and
strictly better in one. The front is the set of rows no row dominates: equal
rows do not dominate each other, so duplicates on the front all stay on it,
and a row that ties on one objective but loses on another is off it. Rows with
a missing (NaN) objective — failed points — are neither on the front nor
dominate anything.

The silicon cost proxy is ``silicon.cost_proxy = silicon.pes + silicon.sram_kib``
(one PE weighed like one KiB of SRAM); the point function returns it, and
``with_derived`` adds it to results that lack it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal, Mapping

import numpy as np
import pandas as pd

from speedsim.config.errors import ConfigError

if TYPE_CHECKING:  # matplotlib loads only when a figure is drawn: the CLI starts fast
    from matplotlib.figure import Figure

Goal = Literal["min", "max"]

# Suffix of the last key segment -> unit, most specific first.
_UNITS = (("tokens_per_s", "tokens/s"), ("_per_token_j", "J/token"), ("_per_token_s", "s/token"),
          ("_gb_s", "GB/s"), ("_kib", "KiB"), ("_mib", "MiB"), ("_bytes", "B"), ("_pj", "pJ"),
          ("_hz", "Hz"), ("_ns", "ns"), ("_s", "s"), ("_j", "J"), ("_w", "W"), ("_cycles", "cycles"))
_CHUNK_ELEMENTS = 4_000_000  # bound on the (block × rows × objectives) comparison array


def with_derived(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` plus derived columns whose inputs it has (``silicon.cost_proxy``)."""
    if "silicon.cost_proxy" not in df.columns and {"silicon.pes", "silicon.sram_kib"} <= set(df.columns):
        df = df.assign(**{"silicon.cost_proxy": df["silicon.pes"] + df["silicon.sram_kib"]})
    return df


def default_goal(key: str) -> Goal:
    """Speedups, throughputs and utilizations are maximised; times, energies and costs minimised."""
    last = key.rsplit(".", 1)[-1]
    if key.startswith("speedup.") or last.endswith("_per_s") or last.endswith("utilization"):
        return "max"
    return "min"


def unit_of(key: str) -> str | None:
    if key.startswith("speedup."):
        return "×"
    if key == "silicon.cost_proxy":
        return "PEs + KiB"
    if key == "silicon.pes":
        return "PEs"
    last = key.rsplit(".", 1)[-1]
    for suffix, unit in _UNITS:
        if last.endswith(suffix):
            return unit
    return None


def axis_label(key: str) -> str:
    unit = unit_of(key)
    return f"{key} [{unit}]" if unit else key


def _objective_matrix(df: pd.DataFrame, objectives: Mapping[str, Goal]) -> np.ndarray:
    if not objectives:
        raise ValueError("pareto_front needs at least one objective")
    cols = []
    for key, goal in objectives.items():
        if goal not in ("min", "max"):
            raise ValueError(f"objective {key}: goal must be 'min' or 'max', not {goal!r}")
        if key not in df.columns:
            raise ConfigError(f"no column {key!r} (columns: {', '.join(map(str, df.columns))})")
        values = pd.to_numeric(df[key], errors="coerce").to_numpy(dtype=float)
        cols.append(values if goal == "min" else -values)
    return np.column_stack(cols)  # (rows, objectives), every objective to be minimised


def pareto_front(df: pd.DataFrame, objectives: Mapping[str, Goal]) -> np.ndarray:
    """Boolean mask of the rows of ``df`` on the Pareto front of ``objectives``."""
    X = _objective_matrix(df, objectives)
    valid = ~np.isnan(X).any(axis=1)
    V = X[valid]  # (n, k)
    n, k = V.shape
    dominated = np.zeros(n, dtype=bool)
    block = max(1, _CHUNK_ELEMENTS // max(1, n * k))
    for start in range(0, n, block):
        B = V[start:start + block]  # (b, k): the rows being tested
        no_worse = (V[None, :, :] <= B[:, None, :]).all(axis=2)  # (b, n): row j ≤ row i everywhere
        better = (V[None, :, :] < B[:, None, :]).any(axis=2)  # (b, n): row j < row i somewhere
        dominated[start:start + block] = (no_worse & better).any(axis=1)
    mask = np.zeros(len(X), dtype=bool)
    mask[np.flatnonzero(valid)] = ~dominated
    return mask


LABEL_GAP = 0.05  # labelled front points are this far apart (fraction of each axis' span)


def spaced(on: pd.DataFrame, x: str, y: str, ref: pd.DataFrame) -> list:
    """Index labels of the rows of ``on`` (in order) to annotate: each at least ``LABEL_GAP``
    of the axes' spans (those of ``ref``, the whole scatter) from every one before it, so
    that labels do not print over each other on a dense front."""
    span = [(float(ref[c].max()) - float(ref[c].min())) or 1.0 for c in (x, y)]
    kept, placed = [], []
    for idx, px, py in zip(on.index, on[x].astype(float), on[y].astype(float)):
        u, v = px / span[0], py / span[1]
        if all(abs(u - a) >= LABEL_GAP or abs(v - b) >= LABEL_GAP for a, b in placed):
            kept.append(idx)
            placed.append((u, v))
    return kept


def plot_pareto(df: pd.DataFrame, x: str, y: str, *, x_goal: Goal | None = None,
                y_goal: Goal | None = None, title: str | None = None,
                label_column: str | None = "index") -> Figure:
    """Scatter of ``y`` over ``x`` for the ok rows; the front highlighted and joined in x order."""
    df = with_derived(df)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    goals = {x: x_goal or default_goal(x), y: y_goal or default_goal(y)}
    front = pareto_front(df, goals)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter(df[x], df[y], s=18, color="0.7", label=f"{len(df)} points")
    on = df[front].sort_values([x, y])
    ax.plot(on[x], on[y], "-o", color="C3", markersize=6, label=f"Pareto front ({len(on)})")
    if label_column and label_column in on.columns:
        for _, row in on.loc[spaced(on, x, y, df)].iterrows():
            ax.annotate(str(row[label_column]), (row[x], row[y]), textcoords="offset points",
                        xytext=(4, 4), fontsize=7)
    ax.set_xlabel(f"{axis_label(x)} ({goals[x]})")
    ax.set_ylabel(f"{axis_label(y)} ({goals[y]})")
    ax.set_title(title or "Pareto front")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    return fig

"""``speedsim plot load``: latency against throughput under rising load, from a serving sweep.

The sweep (``speedsim sweep`` with ``traffic:`` and a ``traffic.*`` load axis, e.g.
``sweeps/serve_load.yaml``) has one row per offered load. Per strategy the figure draws
TPOT p50 (solid) and p99 (dashed) against achieved throughput, one marker per load; a
strategy's *crossover* is the offered load where its throughput over sequential
decoding's (``<s>.throughput_vs_sequential``) falls through 1.0, interpolated linearly
in the load between the two rows around it, and is marked on its p50 curve.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from speedsim.config.errors import ConfigError


def load_axis(df: pd.DataFrame) -> str:
    """The sweep's load column: its first ``traffic.`` axis."""
    axes = [c for c in df.columns if c.startswith("traffic.")]
    if not axes:
        raise ConfigError("a load plot needs a sweep with a traffic.* axis (e.g. "
                          "traffic.arrivals.rate_rps)", key="results")
    return axes[0]


def strategies_in(df: pd.DataFrame) -> list[str]:
    return [c.removesuffix(".throughput_tokens_per_s") for c in df.columns
            if c.endswith(".throughput_tokens_per_s")]


def crossovers(load: np.ndarray, advantage: np.ndarray) -> list[float]:
    """Loads where ``advantage`` (sorted by load) goes from >= 1 to < 1, interpolated."""
    out = []
    for (l0, a0), (l1, a1) in zip(zip(load, advantage), zip(load[1:], advantage[1:])):
        if a0 >= 1.0 > a1:
            out.append(float(l0 + (a0 - 1.0) / (a0 - a1) * (l1 - l0)))
    return out


def crossover_table(df: pd.DataFrame) -> dict[str, list[float]]:
    """Per strategy with a throughput advantage column: its crossover loads."""
    axis = load_axis(df)
    rows = df[df["status"] == "ok"].sort_values(axis) if "status" in df else df.sort_values(axis)
    out = {}
    for s in strategies_in(df):
        col = f"{s}.throughput_vs_sequential"
        if col in rows and s != "sequential":
            out[s] = crossovers(rows[axis].to_numpy(float), rows[col].to_numpy(float))
    return out


def plot_load(df: pd.DataFrame, title: Optional[str] = None):
    """The figure (module docstring)."""
    import matplotlib.pyplot as plt

    axis = load_axis(df)
    rows = df[df["status"] == "ok"].sort_values(axis) if "status" in df else df.sort_values(axis)
    fig, ax = plt.subplots(figsize=(7.0, 4.6))
    marks = crossover_table(df)
    for i, s in enumerate(strategies_in(df)):
        color = f"C{i}"
        x = rows[f"{s}.throughput_tokens_per_s"].to_numpy(float)
        p50 = rows[f"{s}.tpot_s.p50"].to_numpy(float) * 1e3
        ax.plot(x, p50, "o-", color=color, label=f"{s} p50")
        ax.plot(x, rows[f"{s}.tpot_s.p99"].to_numpy(float) * 1e3, "x--", color=color,
                label=f"{s} p99")
        load = rows[axis].to_numpy(float)
        for at in marks.get(s, []):
            xm, ym = np.interp(at, load, x), np.interp(at, load, p50)
            ax.plot([xm], [ym], "*", color=color, markersize=14, markeredgecolor="k")
            ax.annotate(f"{s} = sequential at {at:.3g}", (xm, ym), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, color=color)
    ax.set_xlabel("throughput (tokens/s)")
    ax.set_ylabel("TPOT (ms)")
    ax.set_yscale("log")
    ax.set_title(title or f"TPOT against throughput as {axis} rises")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig

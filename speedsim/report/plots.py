"""Figures of a run or a sweep: data in (DataFrames, dicts, configs), a matplotlib ``Figure`` out.

Every function here draws from tables a run already saved (``speedsim run
--out``: ``summary.json``, ``tokens.csv``, ``timeline.json``,
``items_<s>.csv``, ``occupancy_<s>.csv``) or from the
in-memory ``RunResult`` that produced them, so ``speedsim plot`` redraws a
figure without simulating again. Nothing here reads or writes a file, and
figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state),
so they draw the same under any backend, including Agg on a headless machine.

Conventions: every figure has a title, every axis a unit; colours come from
the Okabe–Ito palette (distinguishable with the common colour-vision
deficiencies), and wasted (flushed) work is hatched as well as coloured, so it
reads in greyscale too.

Nothing here simulates: the (stages × acceptance) grid of the speedup map
comes from a sweep file or ``speedsim.sweep.grid.speedup_grid``.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np
import pandas as pd
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from speedsim.config.hw import UNITS
from speedsim.config.errors import ConfigError
from speedsim.metrics.core import DRAM_BYTE_COLUMNS, item_dram_bytes
from speedsim.report.timeline import SUMMARY_DECODE_TOKENS
from speedsim.report.units import human
from speedsim.report.pareto import axis_label, plot_pareto  # noqa: F401  (the Pareto figure lives there)

# Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky_blue": "#56B4E9",
             "bluish_green": "#009E73", "yellow": "#F0E442", "blue": "#0072B2",
             "vermillion": "#D55E00", "reddish_purple": "#CC79A7"}
_CYCLE = ("blue", "vermillion", "bluish_green", "orange", "reddish_purple", "sky_blue", "black")
STRATEGY_COLOURS = {"sequential": OKABE_ITO["blue"], "speed": OKABE_ITO["vermillion"],
                    "early_exit_spec": OKABE_ITO["bluish_green"],
                    "draft_spec": OKABE_ITO["reddish_purple"], "shallow": OKABE_ITO["orange"]}
WASTED_HATCH = "///"

ENERGY_FIXED = ("dram", "sram", "static")  # every energy_j has them; the units' parts between
_ENERGY_COLOURS = {"dram": "blue", "sram": "sky_blue", "static": "reddish_purple"}
_UNIT_ENERGY_COLOURS = ("orange", "yellow", "bluish_green", "vermillion", "black")

# Op kinds of the array, and the groups the timeline colours unit intervals by.
ARRAY_OPS = ("qkv", "attn_score", "attn_value", "out_proj", "mlp_up", "mlp_down", "lm_head")
_OP_COLOURS = dict(zip(ARRAY_OPS, ("blue", "orange", "sky_blue", "bluish_green", "vermillion",
                                   "reddish_purple", "black")))
OP_GROUPS = {"qkv": "projections", "out_proj": "projections",
             "attn_score": "attention", "softmax": "attention", "attn_value": "attention",
             "mlp_up": "MLP", "act": "MLP", "mlp_down": "MLP",
             "lm_head": "LM head", "pick": "greedy pick", "embed": "norm / residual / embed",
             "norm": "norm / residual / embed", "residual": "norm / residual / embed"}
_GROUP_COLOURS = {"projections": "blue", "attention": "orange", "MLP": "bluish_green",
                  "LM head": "reddish_purple", "greedy pick": "yellow",
                  "norm / residual / embed": "sky_blue"}
_TOKEN_COLOURS = {"committed": "bluish_green", "flushed": "vermillion", "prefill": "yellow"}

# Column names of a sweep over SPEED's own knobs (sweeps/speed_space.yaml).
STAGES_KEY = "workload.strategies.speed.stages"
RATE_KEY = "workload.strategies.speed.acceptance.rate"
SPEEDUP_KEY = "speedup.speed"

TableOrTables = Union[pd.DataFrame, Mapping[str, pd.DataFrame]]


# -- small helpers ---------------------------------------------------------------------------

def strategy_colour(name: str, index: int = 0) -> str:
    """A fixed colour for the shipped strategies, the palette in order for others."""
    return STRATEGY_COLOURS.get(name, OKABE_ITO[_CYCLE[index % len(_CYCLE)]])


def time_scale(seconds: float) -> tuple[float, str]:
    """(factor, unit) that shows ``seconds`` as a number between 1 and 1000."""
    for factor, unit in ((1.0, "s"), (1e3, "ms"), (1e6, "µs")):
        if seconds >= 1.0 / factor:
            return factor, unit
    return 1e9, "ns"


def energy_scale(joules: float) -> tuple[float, str]:
    for factor, unit in ((1.0, "J"), (1e3, "mJ"), (1e6, "µJ")):
        if joules >= 1.0 / factor:
            return factor, unit
    return 1e9, "nJ"


def _tables(data: TableOrTables, what: str) -> dict[str, pd.DataFrame]:
    """A single table becomes ``{"run": table}``; a mapping is kept (strategy -> table)."""
    if isinstance(data, pd.DataFrame):
        return {"run": data}
    if not data:
        raise ValueError(f"{what}: no tables given")
    return dict(data)


def _require(df: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ConfigError(f"{what}: no column {missing[0]!r} "
                          f"(columns: {', '.join(map(str, df.columns))})")


def _new_figure(width: float = 7.0, height: float = 4.2) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


# -- 1. per-token latency ----------------------------------------------------------------------

def commit_gaps(tokens: pd.DataFrame, clock_hz: float, *, sequence: int = 0,
                ttft_s: Optional[Mapping[str, float]] = None) -> pd.DataFrame:
    """Inter-token latency of one sequence: the gaps between consecutive commits.

    ``tokens`` is ``tokens.csv`` (``RunResult.tokens``). Commit cycle ``c_k`` is
    the ``end_cycle`` of committed execution k; the gap of token k+1 is
    ``c_k − c_{k−1}`` (docs/metrics.md). With ``ttft_s`` (strategy -> seconds)
    the first decode token's gap ``c_0 − ttft`` is included as well.
    Columns: ``strategy, position, token, gap_s``.
    """
    _require(tokens, ("strategy", "sequence", "position", "status", "end_cycle"), "tokens")
    if clock_hz <= 0:
        raise ValueError(f"clock_hz must be > 0, got {clock_hz}")
    committed = tokens[(tokens["status"] == "committed") & (tokens["sequence"] == sequence)]
    frames = [pd.DataFrame(columns=["strategy", "position", "token", "gap_s"])]
    for name, df in committed.groupby("strategy", sort=False):
        df = df.sort_values("position")
        ends = df["end_cycle"].to_numpy(dtype=float)
        positions = df["position"].to_numpy()
        first = ttft_s.get(name) if ttft_s else None
        if first is not None:  # decode execution k produces generated token k + 1
            starts, token0 = np.concatenate([[first * clock_hz], ends[:-1]]), 1
        else:
            starts, ends, positions, token0 = ends[:-1], ends[1:], positions[1:], 2
        frames.append(pd.DataFrame({"strategy": name, "position": positions.astype(int),
                                    "token": np.arange(token0, token0 + len(ends)),
                                    "gap_s": (ends - starts) / clock_hz}))
    return pd.concat(frames[1:], ignore_index=True) if len(frames) > 1 else frames[0]


def plot_token_latency(tokens: pd.DataFrame, clock_hz: float, *, sequence: int = 0,
                       ttft_s: Optional[Mapping[str, float]] = None,
                       title: Optional[str] = None) -> Figure:
    """Per-token latency of each strategy: gap per generated token, and its distribution."""
    gaps = commit_gaps(tokens, clock_hz, sequence=sequence, ttft_s=ttft_s)
    if gaps.empty:
        raise ConfigError("tokens: no committed decode tokens to plot")
    factor, unit = time_scale(float(gaps["gap_s"].median()))
    fig = _new_figure(9.0, 4.0)
    ax_t, ax_c = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for i, (name, df) in enumerate(gaps.groupby("strategy", sort=False)):
        colour = strategy_colour(name, i)
        y = df["gap_s"].to_numpy() * factor
        mean = y.mean()
        ax_t.plot(df["token"], y, "-", lw=1.0, marker=".", ms=3, color=colour,
                  label=f"{name} (mean {human(mean / factor, 's')})")
        ys = np.sort(y)
        ax_c.step(ys, np.arange(1, len(ys) + 1) / len(ys), where="post", color=colour, label=name)
    ax_t.set_xlabel("generated token index [tokens]")
    ax_t.set_ylabel(f"inter-token latency [{unit}]")
    ax_t.set_title("latency of each token (commit gap)")
    ax_t.set_ylim(bottom=0)
    ax_t.grid(True, alpha=0.3)
    ax_t.legend(loc="best", fontsize=8)
    ax_c.set_xlabel(f"inter-token latency [{unit}]")
    ax_c.set_ylabel("fraction of tokens [–]")
    ax_c.set_title("distribution (CDF)")
    ax_c.set_ylim(0, 1.02)
    ax_c.grid(True, alpha=0.3)
    fig.suptitle(title or f"Per-token latency (sequence {sequence})")
    return fig


# -- 2. SPEED speedup over stages × acceptance --------------------------------------------------

def speedup_pivot(df: pd.DataFrame, *, x: str = RATE_KEY, y: str = STAGES_KEY,
                  value: str = SPEEDUP_KEY) -> pd.DataFrame:
    """``value`` as a (y rows × x columns) table; several rows for one cell are an error."""
    _require(df, (x, y, value), "speedup map")
    if x == y:
        raise ConfigError(f"--x and --y name the same column ({x}); a map needs two axes",
                          key="--y")
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    dup = df.duplicated([x, y], keep=False)
    if dup.any():
        varying = [c for c in df.columns if c.startswith(("hw.", "workload.")) and c not in (x, y)
                   and df.loc[dup, c].nunique(dropna=False) > 1]
        hint = f"; filter on {', '.join(varying)}" if varying else ""
        raise ConfigError(f"speedup map: several rows for one ({y}, {x}) cell{hint}")
    return df.pivot(index=y, columns=x, values=value).sort_index().sort_index(axis=1)


def plot_speedup_map(df: pd.DataFrame, *, x: str = RATE_KEY, y: str = STAGES_KEY,
                     value: str = SPEEDUP_KEY, title: Optional[str] = None) -> Figure:
    """Heatmap of ``value`` (default: SPEED's decode speedup) over stages × acceptance rate.

    A speedup (``speedup.*``) is drawn on a diverging map centred on 1×: the
    strategy wins where it is red, loses where it is blue. Any other metric is
    drawn on a sequential map, its cells in its own numbers. Each cell is
    annotated with its value; either axis may be text-valued (e.g.
    ``hw.array.weight_load``).
    """
    grid = speedup_pivot(df, x=x, y=y, value=value)
    z = grid.to_numpy(dtype=float)
    fig = _new_figure(6.4, 4.4)
    ax = fig.add_subplot()
    is_speedup = value.startswith("speedup.")
    norm, cmap = _map_norm(z, is_speedup)
    im = ax.imshow(z, cmap=cmap, norm=norm, origin="lower", aspect="auto")
    ax.set_xticks(range(z.shape[1]), [_tick(v) for v in grid.columns])
    ax.set_yticks(range(z.shape[0]), [_tick(v) for v in grid.index])
    for (r, c), v in np.ndenumerate(z):
        if np.isfinite(v):
            dark = abs(norm(v) - 0.5) > 0.35 if is_speedup else norm(v) < 0.5  # viridis: dark low
            ax.text(c, r, f"{v:.2f}×" if is_speedup else f"{v:.3g}", ha="center", va="center",
                    fontsize=8, color="white" if dark else "black")
    is_default = (x, y) == (RATE_KEY, STAGES_KEY)
    ax.set_xlabel("acceptance rate [fraction of early predictions accepted]" if is_default else x)
    ax.set_ylabel("pipeline stages G [stages]" if is_default else y)
    cbar = fig.colorbar(im, ax=ax)
    if is_speedup:
        lo, hi = norm.vmin, norm.vmax
        ticks = np.unique(np.round(np.concatenate([np.linspace(lo, 1.0, 3),
                                                   np.linspace(1.0, hi, 4)]), 2))
        cbar.set_ticks(ticks[(ticks >= lo) & (ticks <= hi)])
    cbar.set_label(_value_label(value))
    ax.set_title(title or map_title(value))
    return fig


def _map_norm(z: np.ndarray, is_speedup: bool):
    """(norm, colour map): diverging around 1× for a speedup, sequential otherwise."""
    from matplotlib.colors import Normalize

    finite = z[np.isfinite(z)]
    if not is_speedup:
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return Normalize(vmin=lo, vmax=hi if hi > lo else lo + 1.0), "viridis"
    lo = min(float(finite.min()), 0.95) if finite.size else 0.5
    hi = max(float(finite.max()), 1.05) if finite.size else 1.5
    return TwoSlopeNorm(vcenter=1.0, vmin=lo, vmax=hi), "RdBu_r"


def _value_label(value: str) -> str:
    if value == SPEEDUP_KEY:
        return "SPEED decode speedup over sequential [×]"
    if value.startswith("speedup."):
        return f"{value.partition('.')[2]} decode speedup over sequential [×]"
    return value


def map_title(value: str) -> str:
    """The speedup map's title for a cell metric: its label less the unit."""
    return _value_label(value).split(" [")[0]


def _tick(v: Any) -> str:
    """An axis value as a tick label: numbers compactly, anything else as text."""
    return f"{v:g}" if isinstance(v, (int, float, np.number)) and not isinstance(v, bool) else str(v)


# -- 2b. one metric over one swept axis, per strategy -------------------------------------------

MAX_SWEEP_LINES = 10
_LINESTYLES = ("-", "--", ":", "-.")  # one per combination of the other varying axes


def sweep_lines(df: pd.DataFrame, x: str, metric: str) -> dict[str, pd.DataFrame]:
    """The lines of ``plot_sweep``: label -> rows (``x`` and ``value`` columns, sorted by x).

    ``metric`` is a column (``speed.decode_time_s``: one line) or a per-strategy metric
    (``decode_time_s``: one line per strategy with a ``<strategy>.decode_time_s`` column).
    Other ``hw.``/``workload.`` columns that vary split each line by their values."""
    if x not in df.columns:
        axes = [c for c in df.columns if c.startswith(("hw.", "workload."))]
        raise ConfigError(f"no column {x!r} (swept columns: {', '.join(axes) or 'none'})",
                          key="--x")
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    columns = [metric] if metric in df.columns else \
        [c for c in df.columns if c.split(".", 1)[-1] == metric and "." in c
         and not c.startswith(("hw.", "workload.", "speedup.", "roofline.", "silicon."))]
    if not columns:
        raise ConfigError(f"no column {metric!r} and no <strategy>.{metric} columns "
                          "(speedsim list metrics names them)", key="--y")
    if x in columns:
        raise ConfigError(f"--x and --y name the same column ({x})", key="--y")
    others = [c for c in df.columns if c.startswith(("hw.", "workload.")) and c != x
              and df[c].nunique(dropna=False) > 1]
    lines: dict[str, pd.DataFrame] = {}
    for column in columns:
        groups = df.groupby(others, dropna=False, sort=True) if others else [((), df)]
        for values, rows in groups:
            values = values if isinstance(values, tuple) else (values,)
            label = ", ".join([column] + [f"{o.split('.')[-1]}={v}" for o, v in zip(others, values)])
            lines[label] = _line_rows(rows, x, column)
    if len(lines) > MAX_SWEEP_LINES:
        raise ConfigError(f"{len(lines)} lines: {', '.join(others)} also vary; fix them with "
                          "--where COLUMN=VALUE", key="--x")
    return lines


def _line_rows(rows: pd.DataFrame, x: str, column: str) -> pd.DataFrame:
    line = pd.DataFrame({"x": rows[x].to_numpy(), "value": pd.to_numeric(rows[column], errors="coerce")})
    if line["x"].duplicated().any():
        raise ConfigError(f"several rows share one {x} value for {column}; filter with --where",
                          key="--x")
    return line.sort_values("x", kind="stable")


def plot_sweep(df: pd.DataFrame, x: str, metric: str, *, title: Optional[str] = None) -> Figure:
    """``metric`` against the swept column ``x``: one line per strategy (and per value of any
    other varying axis). A text-valued ``x`` is drawn as categories in their sorted order."""
    lines = sweep_lines(df, x, metric)
    fig = _new_figure(7.0, 4.4)
    ax = fig.add_subplot()
    numeric = all(pd.api.types.is_numeric_dtype(line["x"]) for line in lines.values())
    categories = sorted({str(v) for line in lines.values() for v in line["x"]})
    groups = list(dict.fromkeys(label.partition(", ")[2] for label in lines))  # other axes
    columns = list(dict.fromkeys(label.partition(", ")[0] for label in lines))
    for label, line in lines.items():
        column, _, group = label.partition(", ")
        xs = line["x"] if numeric else [categories.index(str(v)) for v in line["x"]]
        ax.plot(xs, line["value"], marker="o", markersize=4, label=label,
                linestyle=_LINESTYLES[groups.index(group) % len(_LINESTYLES)],
                color=strategy_colour(column.split(".", 1)[0], columns.index(column)))
    if not numeric:
        ax.set_xticks(range(len(categories)), categories)
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(metric if metric in df.columns else f"s.{metric}").removeprefix("s."))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title or f"{metric} over {x}")
    return fig


# -- 3. roofline ---------------------------------------------------------------------------------

def roofline_table(items: pd.DataFrame, unit: Optional[str] = None) -> pd.DataFrame:
    """One row per work item with MACs on the matrix unit ``unit`` (``Hardware.placement.gemm``;
    by default the first declared, the array): its DRAM bytes and the array time it
    accounts for.

    ``items`` is ``SimResult.items`` (``items_<s>.csv``). The array runs one
    item at a time, so its timeline is cut at each item's compute end: an
    item accounts for the cycles from the previous array item's compute end
    to its own (its compute plus whatever stall — weights, dependencies —
    delayed it). These ``array_cycles`` add up to the array's whole busy
    span, so per-kind sums show where the time went. Columns: ``item, op,
    phase, macs, dram_bytes, array_cycles``.
    """
    _require(items, ("item", "op", "unit", "phase", "macs", "start_cycle", "compute_end_cycle",
                     *DRAM_BYTE_COLUMNS), "items")
    unit = unit or next(u.name for u in UNITS if u.kind == "matrix")
    a = items[items["unit"] == unit].sort_values(["compute_end_cycle", "item"], kind="stable")
    if a.empty:
        raise ConfigError(f"items: no {unit} work items")
    end = a["compute_end_cycle"].to_numpy(dtype=np.int64)
    prev = np.concatenate([[a["start_cycle"].iloc[0]], end[:-1]])
    out = pd.DataFrame({
        "item": a["item"].to_numpy(), "op": a["op"].to_numpy(), "phase": a["phase"].to_numpy(),
        "macs": a["macs"].to_numpy(dtype=np.int64),
        "dram_bytes": item_dram_bytes(a),
        "array_cycles": np.maximum(end - prev, 0),
    })
    return out[out["macs"] > 0].sort_values("item", ignore_index=True)


def roofline_points(table: pd.DataFrame, clock_hz: float) -> pd.DataFrame:
    """Per (phase, op): operational intensity [MAC / DRAM byte] and achieved [MAC/s].

    Σ MACs / Σ DRAM bytes and Σ MACs / Σ array time over the op's items; an
    op whose weights were all resident moved no bytes: infinite intensity.
    """
    _require(table, ("op", "phase", "macs", "dram_bytes", "array_cycles"), "roofline")
    agg = table.groupby(["phase", "op"], sort=False).agg(
        macs=("macs", "sum"), dram_bytes=("dram_bytes", "sum"), array_cycles=("array_cycles", "sum"),
        items=("macs", "size")).reset_index()
    with np.errstate(divide="ignore"):
        agg["intensity_macs_per_byte"] = agg["macs"] / agg["dram_bytes"].astype(float)
    agg["achieved_macs_per_s"] = agg["macs"] / agg["array_cycles"].clip(lower=1) * clock_hz
    return agg


ROOFLINE_COLUMNS = 3  # panels per row of the roofline figure


def plot_roofline(tables: TableOrTables, hw, *, title: Optional[str] = None) -> Figure:
    """Roofline of the array with the simulated ops on it, one panel per strategy.

    ``tables``: ``roofline_table`` output (strategy -> table, or one table).
    ``hw``: the ``Hardware`` config. The line is the *attainable* throughput
    of the roofline model, min(peak compute roof = PEs · ``clock_hz`` MAC/s,
    intensity · DRAM bandwidth) (peak bandwidth solid, × efficiency dashed) —
    a picture of the ops, not the summary's ``roofline`` decode bound
    (``speedsim.metrics.roofline``). Ops are aggregated per (phase, op kind): colour = op kind,
    marker = phase; ops that moved no DRAM bytes sit on the right edge (▷).
    Weights prefetched while an earlier item computed are not in an item's
    array time, so a point may sit above the bandwidth roof: prefetch hid it.
    """
    tables = _tables(tables, "roofline")
    array = hw.section(hw.placement.gemm)
    peak_macs = array.pes * hw.clock_hz  # MAC/s
    bw = hw.dram.bandwidth_gb_s * 1e9  # bytes/s
    points = {n: roofline_points(t, hw.clock_hz) for n, t in tables.items()}
    x_lo, x_hi = _roofline_x_range(points, peak_macs / bw)
    ncols = min(len(points), ROOFLINE_COLUMNS)  # five strategies: a 3 × 2 grid, not one strip
    nrows = -(-len(points) // ncols)
    fig = _new_figure(4.6 * ncols + 1.8, 3.8 * nrows + 0.6)
    grid = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    for spare in grid.flat[len(points):]:
        spare.remove()
    axes = grid.flat[:len(points)]
    for ax, (name, pts) in zip(axes, points.items()):
        _roofline_panel(ax, name, pts, hw, peak_macs, bw, (x_lo, x_hi))
    for row in grid:
        row[0].set_ylabel("achieved throughput [MAC/s]")
    roof_handles, _ = axes[0].get_legend_handles_labels()
    fig.legend(handles=roof_handles + _roofline_key(points), loc="outside right center", fontsize=7)
    fig.suptitle(title or f"Roofline of the {array.rows}×{array.cols}×{array.count} array "
                          f"({hw.name}), ops per phase and kind")
    return fig


_ROOFLINE_MARKERS = {"decode": "o", "prefill": "s"}


def _roofline_x_range(points: Mapping[str, pd.DataFrame], ridge: float) -> tuple[float, float]:
    """Intensity axis: every finite point and the ridge, with room on both sides."""
    finite = np.concatenate([p["intensity_macs_per_byte"].to_numpy() for p in points.values()])
    finite = finite[np.isfinite(finite) & (finite > 0)]
    x_lo = min(finite.min() if finite.size else ridge, ridge) / 4
    x_hi = max(finite.max() if finite.size else ridge, ridge) * 8
    return x_lo, x_hi


def _roofline_panel(ax, name: str, pts: pd.DataFrame, hw, peak_macs: float, bw: float,
                    x_range: tuple[float, float]) -> None:
    """One strategy's panel: the attainable roofs and its ops (``plot_roofline``)."""
    x_lo, x_hi = x_range
    xs = np.geomspace(x_lo, x_hi, 200)
    ax.plot(xs, np.minimum(peak_macs, xs * bw), color="black", lw=1.5,
            label=f"attainable: peak compute {peak_macs / 1e9:,.0f} GMAC/s, {bw / 1e9:g} GB/s")
    ax.plot(xs, np.minimum(peak_macs, xs * bw * hw.dram.efficiency), color="black", lw=1,
            ls="--", label=f"effective bandwidth (× {hw.dram.efficiency:g})")
    for _, p in pts.iterrows():
        x = p["intensity_macs_per_byte"]
        edge = not np.isfinite(x)
        ax.scatter(x_hi / 1.5 if edge else x, p["achieved_macs_per_s"], s=55,
                   marker=">" if edge else _ROOFLINE_MARKERS.get(p["phase"], "D"),
                   color=OKABE_ITO[_OP_COLOURS.get(p["op"], "yellow")], edgecolor="black",
                   linewidths=0.5, zorder=3)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(x_lo, x_hi)
    ax.set_xlabel("operational intensity [MAC / DRAM byte]")
    ax.set_title(name)
    ax.grid(True, which="both", alpha=0.25)


def _roofline_key(points: Mapping[str, pd.DataFrame]) -> list:
    """Legend entries for the op kinds (colour), phases (marker) and resident ops."""
    all_ops = list(dict.fromkeys(op for p in points.values() for op in p["op"]))
    handles = [Patch(color=OKABE_ITO[_OP_COLOURS.get(op, "yellow")], label=op) for op in all_ops]
    handles += [Line2D([], [], marker=m, ls="", color="grey", label=ph)
                for ph, m in _ROOFLINE_MARKERS.items()]
    return handles + [Line2D([], [], marker=">", ls="", color="grey",
                             label="no DRAM bytes (resident)")]


# -- 4. energy -----------------------------------------------------------------------------------

def energy_parts(summary: Mapping[str, Any]) -> tuple[str, ...]:
    """The stacked parts of ``plot_energy``: ``dram``, ``sram``, the compute units' parts
    (``energy_j``'s keys between ``sram`` and ``static`` in the first strategy: ``compute``,
    ``vector``), ``static``."""
    first = next(iter(summary["strategies"].values()), {}).get("energy_j")
    keys = list(first) if isinstance(first, Mapping) else []
    units = keys[keys.index("sram") + 1:keys.index("static")] \
        if "sram" in keys and "static" in keys else []
    return ("dram", "sram", *units, "static")

def plot_energy(summary: Mapping[str, Any], *, per_token: bool = False,
                title: Optional[str] = None) -> Figure:
    """Stacked energy per strategy (DRAM, SRAM, compute, vector, static), wasted share hatched.

    ``summary`` is ``summary.json``. The wasted energy (dynamic energy of
    flushed work, docs/metrics.md) is a share of the dynamic parts, drawn as a
    hatched band over the bottom of the dynamic stack and annotated in percent
    of the total.
    """
    strategies = summary.get("strategies") if isinstance(summary, Mapping) else None
    if not strategies:
        raise ConfigError("summary: no strategies")
    names = list(strategies)
    stacked = energy_parts(summary)
    parts = {}
    for n in names:
        e = strategies[n].get("energy_j")
        if not isinstance(e, Mapping) or any(k not in e for k in stacked):
            raise ConfigError(f"summary: strategies.{n}.energy_j lacks one of {', '.join(stacked)}")
        scale = 1.0 / (strategies[n]["committed_tokens"] * _batch(summary)) if per_token else 1.0
        parts[n] = {k: float(e[k]) * scale for k in (*stacked, "total", "wasted") if k in e}
    factor, unit = energy_scale(max(p["total"] for p in parts.values()))
    fig = _new_figure(1.6 * len(names) + 4.0, 4.4)
    ax = fig.add_subplot()
    x = np.arange(len(names))
    bottom = np.zeros(len(names))
    colours = {**dict(zip(stacked[2:-1], _UNIT_ENERGY_COLOURS)), **_ENERGY_COLOURS}
    for part in stacked:
        h = np.array([parts[n][part] for n in names]) * factor
        ax.bar(x, h, 0.6, bottom=bottom, color=OKABE_ITO[colours[part]], edgecolor="black",
               linewidth=0.4, label=part)
        bottom += h
    wasted = np.array([parts[n].get("wasted", 0.0) for n in names]) * factor
    ax.bar(x, wasted, 0.6, fill=False, hatch=WASTED_HATCH, edgecolor="black", linewidth=0.8,
           label="wasted (flushed work)")
    for i, n in enumerate(names):
        share = parts[n].get("wasted", 0.0) / parts[n]["total"] if parts[n]["total"] else 0.0
        ax.annotate(f"{bottom[i]:.3g} {unit}\n{share:.0%} wasted", (x[i], bottom[i]),
                    textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(x, names)
    ax.set_xlabel("strategy")
    ax.set_ylabel(f"energy per token [{unit}/token]" if per_token else f"energy [{unit}]")
    ax.set_ylim(0, bottom.max() * 1.2)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    where = f" ({summary['workload']} on {summary['hardware']})" \
        if summary.get("workload") and summary.get("hardware") else ""
    ax.set_title(title or f"Energy breakdown{' per token' if per_token else ''}{where}")
    return fig


def _batch(summary: Mapping[str, Any]) -> int:
    try:
        return int(summary["config"]["workload"]["generation"]["batch"])
    except (KeyError, TypeError):
        return 1


# -- 5. timeline (Gantt) ---------------------------------------------------------------------------

TIMELINE_COLUMNS = ("strategy", "track", "row", "op", "kind", "status", "position",
                    "start_cycle", "end_cycle", "wasted_fraction")


def timeline_frame(trace: Any) -> pd.DataFrame:
    """Intervals of a Chrome trace (``timeline.json``) as a table; also accepts a ``RunResult``.

    Columns ``TIMELINE_COLUMNS``: ``track`` is ``unit`` (rows array, dram,
    vector) or ``token`` (rows ``slot 0…``; ``status`` committed / flushed /
    prefill); instants (flushes) have ``kind == "flush"`` and equal start and
    end. ``attrs["clock_hz"]`` carries the trace's clock.
    """
    if hasattr(trace, "runs") and hasattr(trace, "hw"):
        from speedsim.report.timeline import chrome_trace
        trace = chrome_trace({n: (r.plan, r.sim) for n, r in trace.runs.items()}, trace.hw.clock_hz)
    if not isinstance(trace, Mapping) or "traceEvents" not in trace:
        raise ConfigError("timeline: not a Chrome trace (no traceEvents)")
    events = trace["traceEvents"]
    procs, threads = {}, {}
    for ev in events:
        if ev.get("ph") == "M" and ev.get("name") == "process_name":
            procs[ev["pid"]] = ev["args"]["name"]
        elif ev.get("ph") == "M" and ev.get("name") == "thread_name":
            threads[(ev["pid"], ev["tid"])] = ev["args"]["name"]
    rows = []
    for ev in events:
        ph = ev.get("ph")
        if ph not in ("X", "i") or ev["pid"] not in procs:
            continue
        strategy, _, track = procs[ev["pid"]].rpartition(": ")
        args = ev.get("args", {})
        row = threads.get((ev["pid"], ev["tid"]), str(ev["tid"]))
        if track == "units":
            row = args.get("unit", row)  # a unit's parallel tracks are one row
            op, _, kind = ev["name"].partition(" (")
            rows.append((strategy, "unit", row, op, kind.rstrip(")") or "compute", "",
                         -1, args["start_cycle"], args["end_cycle"],
                         float(args.get("wasted_fraction", 0.0))))
        elif ph == "X":
            status = "prefill" if ev["name"] == "prefill" else args.get("status", ev.get("cat", ""))
            rows.append((strategy, "token", row, ev["name"], "exec", status,
                         int(args.get("position", -1)), args["start_cycle"], args["end_cycle"],
                         1.0 if status == "flushed" else 0.0))
        else:
            cycle = int(args["cycle"]) if "cycle" in args else int(round(ev["ts"] * _clock(trace) / 1e6))
            rows.append((strategy, "token", row, "flush", "flush", "flushed",
                         int(args.get("position", -1)), cycle, cycle, 1.0))
    frame = pd.DataFrame.from_records(rows, columns=TIMELINE_COLUMNS)
    frame.attrs["clock_hz"] = _clock(trace)
    frame.attrs["detail"] = (trace.get("otherData") or {}).get("detail", "full")
    return frame


def _clock(trace: Mapping[str, Any]) -> float:
    try:
        return float(trace["otherData"]["clock_hz"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError("timeline: otherData.clock_hz missing") from None


def default_window(frame: pd.DataFrame, strategy: str, tokens: int = 4) -> tuple[int, int]:
    """From the first decode execution's start to the end of the ``tokens``-th committed one."""
    t = frame[(frame["strategy"] == strategy) & (frame["track"] == "token") & (frame["kind"] == "exec")]
    decode = t[t["status"] != "prefill"]
    if decode.empty:
        raise ConfigError(f"timeline: no decode executions for strategy {strategy!r}")
    start = int(decode["start_cycle"].min())
    ends = np.sort(decode.loc[decode["status"] == "committed", "end_cycle"].to_numpy())
    end = int(ends[min(tokens, len(ends)) - 1]) if len(ends) else int(decode["end_cycle"].max())
    return start, end


def plot_timeline(frame: pd.DataFrame, strategy: str, start_cycle: Optional[int] = None,
                  end_cycle: Optional[int] = None, *, clock_hz: Optional[float] = None,
                  title: Optional[str] = None) -> Figure:
    """Gantt chart of one strategy in a window: hardware units above, token slots below.

    Unit intervals are coloured by op group (hatched when they served flushed
    work); token executions are green when committed, vermillion and hatched
    when flushed, with × at each flush. Without a window, ``default_window``.
    """
    _require(frame, TIMELINE_COLUMNS, "timeline")
    clock_hz = clock_hz or frame.attrs.get("clock_hz")
    if not clock_hz:
        raise ValueError("plot_timeline needs clock_hz (or a frame from timeline_frame)")
    start_cycle, end_cycle = _timeline_window(frame, strategy, start_cycle, end_cycle)
    f = frame[(frame["strategy"] == strategy) & (frame["end_cycle"] >= start_cycle)
              & (frame["start_cycle"] <= end_cycle)]
    factor, unit = time_scale((end_cycle - start_cycle) / clock_hz)

    def to_t(cycles):  # cycles -> time since the window start, in ``unit``
        return (np.asarray(cycles, dtype=float) - start_cycle) / clock_hz * factor

    units, slots = _timeline_rows(frame, strategy)
    rows = units + slots
    y_of = {r: len(rows) - 1 - i for i, r in enumerate(rows)}
    fig = _new_figure(10.0, 0.45 * len(rows) + 2.0)
    ax = fig.add_subplot()
    legend: dict[str, Any] = {}
    _draw_unit_bars(ax, f, y_of, to_t, legend)
    _draw_token_bars(ax, f, y_of, to_t, to_t(end_cycle), legend)
    _draw_flushes(ax, f, y_of, to_t, legend)
    _draw_unrecorded(ax, frame, strategy, to_t, end_cycle, len(units))
    ax.set_yticks([y_of[r] for r in rows], [f"unit: {r}" if r in units else f"token {r}" for r in rows])
    ax.set_xlim(0, to_t(end_cycle))
    ax.set_ylim(-0.6, len(rows) - 0.4)
    if units and slots:
        ax.axhline(len(slots) - 0.5, color="grey", lw=0.8)
    ax.set_xlabel(f"time since cycle {start_cycle:,} [{unit}]")
    ax.set_ylabel("hardware unit / token slot")
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(handles=list(legend.values()), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7)
    ax.set_title(title or f"{strategy}: timeline, cycles {start_cycle:,}–{end_cycle:,}")
    return fig


def unit_record_end(frame: pd.DataFrame, strategy: str) -> Optional[int]:
    """The cycle after which a summary timeline holds no unit intervals of ``strategy``
    (``--timeline summary``: the prefill and the first decode tokens only); None when the
    trace is full."""
    if frame.attrs.get("detail") != "summary":
        return None
    units = frame[(frame["strategy"] == strategy) & (frame["track"] == "unit")]
    return int(units["end_cycle"].max()) if len(units) else 0


def _draw_unrecorded(ax, frame: pd.DataFrame, strategy: str, to_t: Callable, end_cycle: int,
                     n_units: int) -> None:
    """Grey out the unit rows past the summary trace's last unit interval, and say why: the
    hardware was not idle there, its activity was not recorded."""
    last = unit_record_end(frame, strategy)
    if last is None or last >= end_cycle or not n_units:
        return
    x0 = max(float(to_t(last)), 0.0)
    top = len(_timeline_rows(frame, strategy)[1]) - 0.5  # unit rows sit above the token slots
    ax.fill_betweenx([top, top + n_units], x0, float(to_t(end_cycle)), color="0.88", zorder=0)
    ax.text((x0 + float(to_t(end_cycle))) / 2, top + n_units / 2,
            f"unit activity not recorded after cycle {last:,}\n(--timeline summary keeps the "
            f"prefill and {SUMMARY_DECODE_TOKENS} decode tokens;\nrun with --timeline full)",
            ha="center", va="center", fontsize=7, color="0.25")


def _timeline_window(frame: pd.DataFrame, strategy: str, start_cycle: Optional[int],
                     end_cycle: Optional[int]) -> tuple[int, int]:
    """The window to draw: the given bounds, ``default_window`` for missing ones."""
    known = list(dict.fromkeys(frame["strategy"]))
    if strategy not in known:
        raise ConfigError(f"timeline: no strategy {strategy!r} (strategies: {', '.join(known)})")
    if start_cycle is None or end_cycle is None:
        d_start, d_end = default_window(frame, strategy)
        start_cycle = d_start if start_cycle is None else start_cycle
        end_cycle = d_end if end_cycle is None else end_cycle
    if end_cycle <= start_cycle:
        raise ConfigError(f"timeline: empty window [{start_cycle}, {end_cycle}] cycles")
    return start_cycle, end_cycle


def _timeline_rows(frame: pd.DataFrame, strategy: str) -> tuple[list[str], list[str]]:
    """The strategy's unit rows (sorted) and token-slot rows (by slot number)."""
    mine = frame[frame["strategy"] == strategy]
    units = sorted(mine.loc[mine["track"] == "unit", "row"].unique())
    slots = sorted(mine.loc[mine["track"] == "token", "row"].unique(),
                   key=lambda s: int(s.split()[-1]) if s.split()[-1].isdigit() else 0)
    return units, slots


def _draw_unit_bars(ax, f: pd.DataFrame, y_of: dict, to_t: Callable, legend: dict) -> None:
    u = f[f["track"] == "unit"].assign(group=lambda d: d["op"].map(OP_GROUPS).fillna("other"))
    for (row, group, wasted), df in u.groupby(["row", "group", u["wasted_fraction"] > 0]):
        colour = OKABE_ITO.get(_GROUP_COLOURS.get(group, "black"))
        x0, x1 = to_t(df["start_cycle"]), to_t(df["end_cycle"])
        ax.broken_barh(list(zip(x0, np.maximum(x1 - x0, 0))), (y_of[row] - 0.4, 0.8),
                       facecolors=colour, edgecolor="black" if wasted else colour,
                       linewidth=0.3, hatch=WASTED_HATCH if wasted else None)
        legend.setdefault(group, Patch(facecolor=colour, label=group))


def _draw_token_bars(ax, f: pd.DataFrame, y_of: dict, to_t: Callable, end_t: float,
                     legend: dict) -> None:
    tok = f[(f["track"] == "token") & (f["kind"] == "exec")]
    for status, df in tok.groupby("status"):
        colour = OKABE_ITO[_TOKEN_COLOURS.get(status, "black")]
        hatch = WASTED_HATCH if status == "flushed" else None
        for row, dr in df.groupby("row"):
            x0, x1 = to_t(dr["start_cycle"]), to_t(dr["end_cycle"])
            ax.broken_barh(list(zip(x0, x1 - x0)), (y_of[row] - 0.35, 0.7), facecolors=colour,
                           edgecolor="black", linewidth=0.5, hatch=hatch)
            for a, b, p in zip(x0, x1, dr["position"]):
                mid = (max(a, 0.0) + min(b, end_t)) / 2
                ax.text(mid, y_of[row], f"{p}" if p >= 0 else "", ha="center", va="center", fontsize=6,
                        clip_on=True)
        legend.setdefault(f"token {status}", Patch(facecolor=colour, edgecolor="black",
                                                   hatch=hatch, label=f"token {status}"))


def _draw_flushes(ax, f: pd.DataFrame, y_of: dict, to_t: Callable, legend: dict) -> None:
    fl = f[f["kind"] == "flush"]
    if len(fl):
        ax.scatter(to_t(fl["start_cycle"]), [y_of[r] for r in fl["row"]], marker="x", color="black",
                   s=30, zorder=4, label="flush")
        legend["flush"] = Line2D([], [], marker="x", ls="", color="black", label="flush")
    legend["wasted"] = Patch(facecolor="white", edgecolor="black", hatch=WASTED_HATCH,
                             label="served flushed work")


# -- 6. buffer occupancy -------------------------------------------------------------------------

def plot_occupancy(occupancy: TableOrTables, clock_hz: float, *, hw=None,
                   title: Optional[str] = None) -> Figure:
    """Bytes held in each on-chip buffer over time: one row of panels per buffer, one column
    per strategy.

    ``occupancy``: ``occupancy_<s>.csv`` tables (strategy -> table, or one);
    each row is the occupancy after a change, so it is drawn as a step. The
    time-weighted mean is dotted; with ``hw`` the capacity is dashed.
    """
    tables = _tables(occupancy, "occupancy")
    for n, t in tables.items():
        _require(t, ("buffer", "cycle", "bytes"), f"occupancy of {n}")
    buffers = sorted(set().union(*(t["buffer"].unique() for t in tables.values())))
    if not buffers:
        raise ConfigError("occupancy: no buffer changes recorded")
    last = max(int(t["cycle"].max()) for t in tables.values() if len(t))
    factor, unit = time_scale(last / clock_hz)
    fig = _new_figure(4.0 * len(tables) + 1.5, 2.0 * len(buffers) + 1.0)
    grid = fig.subplots(len(buffers), len(tables), sharex=True, sharey="row", squeeze=False)
    for r, buf in enumerate(buffers):
        cap = getattr(getattr(hw, "buffers", None), buf, None) if hw is not None else None
        for c, (name, t) in enumerate(tables.items()):
            ax = grid[r, c]
            b = t[t["buffer"] == buf]
            if len(b):
                cycles = np.append(b["cycle"].to_numpy(dtype=float), max(int(t["cycle"].max()), 1))
                kib = b["bytes"].to_numpy(dtype=float) / 1024
                ax.step(cycles / clock_hz * factor, np.append(kib, kib[-1]), where="post", lw=0.7,
                        color=strategy_colour(name, c), label="occupancy")
                dt = np.diff(cycles)
                if dt.sum() > 0:
                    ax.axhline(float((kib * dt).sum() / dt.sum()), color="black", ls=":", lw=1,
                               label="time-weighted mean")
            if cap is not None:
                ax.axhline(cap.size_kib, color="black", ls="--", lw=1, label="capacity")
            ax.set_ylim(bottom=0)
            ax.grid(True, alpha=0.3)
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(f"{buf} [KiB]")
            if r == len(buffers) - 1:
                ax.set_xlabel(f"time [{unit}]")
    handles, labels = grid[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, fontsize=8)
    fig.suptitle(title or "On-chip buffer occupancy")
    return fig


__all__ = ["OKABE_ITO", "STAGES_KEY", "RATE_KEY", "SPEEDUP_KEY", "commit_gaps", "plot_token_latency",
           "speedup_pivot", "plot_speedup_map", "roofline_table", "roofline_points",
           "plot_roofline", "energy_parts", "plot_energy", "timeline_frame", "default_window", "plot_timeline",
           "plot_occupancy", "plot_pareto", "strategy_colour", "time_scale", "energy_scale"]

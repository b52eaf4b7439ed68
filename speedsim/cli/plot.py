"""``speedsim plot``: figures drawn from saved results, without rerunning anything.

Each subcommand reads what ``speedsim run --out DIR`` wrote (or a sweep result
file), draws one figure with ``speedsim.report.plots`` and saves it as PNG or
SVG: ``--out fig.png|fig.svg``, or ``--format`` with the default name
``DIR/<kind>.<format>``. A missing directory or file, a malformed file or an
unknown column is bad input: one line and exit status 2.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from speedsim.config.errors import ConfigError
from speedsim.cli import io, sweep

FORMATS = ("png", "svg")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw figures from a run's --out directory or sweep results")
    kinds = p.add_subparsers(dest="plot_kind", required=True)

    k = _run_kind(kinds, "latency", "per-token latency (commit gaps) of each strategy", cmd_latency)
    k.add_argument("--sequence", type=int, default=0, help="sequence of the batch (default 0)")
    k = _run_kind(kinds, "energy", "stacked energy breakdown per strategy, wasted share hatched",
                  cmd_energy)
    k.add_argument("--per-token", action="store_true", help="energy per generated token")
    _run_kind(kinds, "roofline", "the array's roofline with the simulated ops on it", cmd_roofline)
    k = _run_kind(kinds, "timeline", "Gantt chart of a short window: units and token slots",
                  cmd_timeline, strategies=False)
    k.add_argument("--strategy", help="strategy to draw (default: speed if present, else the first)")
    k.add_argument("--start", type=int, metavar="CYCLE",
                   help="window start (default: the first decode execution)")
    k.add_argument("--end", type=int, metavar="CYCLE",
                   help="window end (default: the 4th committed decode token)")
    k.add_argument("--window-us", type=float, metavar="US", help="window length in µs (instead of --end)")
    _run_kind(kinds, "occupancy", "on-chip buffer occupancy over time", cmd_occupancy)

    k = kinds.add_parser("speedup-map", help="heatmap of SPEED's speedup over stages × acceptance "
                                             "rate, from a sweep result file")
    k.add_argument("results", help="sweep result file (.csv or .parquet) or a speedup_grid table")
    k.add_argument("--x", default=None, help="column across (default "
                   "workload.strategies.speed.acceptance.rate)")
    k.add_argument("--y", default=None, help="column up (default workload.strategies.speed.stages)")
    k.add_argument("--value", default=None, help="cell value (default speedup.speed)")
    k.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep rows where COLUMN equals VALUE (repeatable), e.g. to fix a third axis")
    _output_args(k)
    k.set_defaults(func=cmd_speedup_map)

    k = kinds.add_parser("sweep", help="one metric against one swept axis, a line per strategy, "
                                       "from a sweep result file")
    k.add_argument("results", help="sweep result file (.csv or .parquet)")
    k.add_argument("--x", required=True, help="swept column across, e.g. hw.dram.bandwidth_gb_s")
    k.add_argument("--y", required=True, help="a metric of every strategy (decode_time_s) or "
                                              "one column (speed.decode_time_s, speedup.speed)")
    k.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                   help="keep rows where COLUMN equals VALUE (repeatable): fix the other axes")
    _output_args(k)
    k.set_defaults(func=cmd_sweep_plot)

    k = kinds.add_parser("load", help="TPOT p50/p99 against throughput per strategy from a "
                                      "serving sweep, crossovers with sequential marked")
    k.add_argument("results", help="serving sweep result file (.csv or .parquet)")
    _output_args(k)
    k.set_defaults(func=cmd_load)

    sweep.add_pareto_plot_parser(kinds)


def _run_kind(kinds, name: str, help_: str, func, *, strategies: bool = True) -> argparse.ArgumentParser:
    k = kinds.add_parser(name, help=help_)
    k.add_argument("run_dir", metavar="DIR", help="a `speedsim run --out` directory")
    if strategies:
        k.add_argument("--strategies", help="comma-separated subset (default: all in the run)")
    _output_args(k)
    k.set_defaults(func=func)
    return k


MIN_DPI, MAX_DPI = 10, 1200  # a figure of 6.4 x 4.4 in at 1200 dpi is 40 megapixels


def dpi(text: str) -> int:
    """``--dpi``: an integer in [MIN_DPI, MAX_DPI] (0 crashes matplotlib, 100000 exhausts memory)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not MIN_DPI <= value <= MAX_DPI:
        raise argparse.ArgumentTypeError(f"must be {MIN_DPI} to {MAX_DPI}, got {value}")
    return value


def _output_args(k: argparse.ArgumentParser) -> None:
    k.add_argument("--out", help="image file, .png or .svg (default: DIR/<kind>.<format>)")
    k.add_argument("--format", choices=FORMATS, help="png or svg (default: from --out, else png)")
    k.add_argument("--dpi", type=dpi, default=150, help=f"PNG resolution, {MIN_DPI} to {MAX_DPI} "
                                                         "(default 150)")


# -- reading a run directory ---------------------------------------------------------------------

class RunDir:
    """The files of one ``speedsim run --out`` directory, read on demand."""

    def __init__(self, path: str):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ConfigError("run directory not found (write one with speedsim run --out DIR)",
                              file=str(self.path))

    def _file(self, name: str) -> Path:
        f = self.path / name
        if not f.is_file():
            raise ConfigError("file not found (is this a speedsim run --out directory?)", file=str(f))
        return f

    def json(self, name: str) -> dict[str, Any]:
        f = self._file(name)
        try:
            return json.loads(f.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid JSON: {exc}", file=str(f)) from None

    def csv(self, name: str):
        import pandas as pd

        f = self._file(name)
        try:
            return pd.read_csv(f)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not a readable CSV table: {str(exc).splitlines()[0]}", file=str(f)) from None

    def summary(self) -> dict[str, Any]:
        s = self.json("summary.json")
        if not isinstance(s.get("strategies"), dict) or not s["strategies"]:
            raise ConfigError("no strategies in the summary", file=str(self.path / "summary.json"))
        return s

    def hardware(self):
        import yaml

        from speedsim.config import hardware_from_dict

        f = self._file("resolved_config.yaml")
        try:
            cfg = yaml.safe_load(f.read_text())
        except yaml.YAMLError as exc:
            raise ConfigError(f"not valid YAML: {str(exc).splitlines()[0]}", file=str(f)) from None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("hw"), dict):
            raise ConfigError("no hw section", file=str(f))
        return hardware_from_dict(cfg["hw"], file=f"{f} (hw)")

    def strategies(self, wanted: str | None) -> list[str]:
        have = list(self.summary()["strategies"])
        if not wanted:
            return have
        names = [s.strip() for s in wanted.split(",") if s.strip()]
        for n in names:
            if n not in have:
                raise ConfigError(f"strategy {n!r} is not in this run (strategies: {', '.join(have)})",
                                  key="--strategies")
        return names


# -- writing the figure ----------------------------------------------------------------------------

def output_path(args: argparse.Namespace, default_stem: Path) -> tuple[Path, str]:
    """(file, format) from ``--out`` / ``--format``; a clash or an unknown suffix is bad input."""
    fmt = args.format
    if args.out:
        out = Path(args.out)
        suffix = out.suffix.lower().lstrip(".")
        if not suffix:
            fmt = fmt or "png"
            return out.with_name(f"{out.name}.{fmt}"), fmt
        if suffix not in FORMATS:
            raise ConfigError(f"must end with .png or .svg (got {out.name})", key="--out")
        if fmt and fmt != suffix:
            raise ConfigError(f"--format {fmt} contradicts --out {out.name}", key="--format")
        return out, suffix
    fmt = fmt or "png"
    return default_stem.with_name(f"{default_stem.name}.{fmt}"), fmt


def save_figure(fig, args: argparse.Namespace, default_stem: Path) -> Path:
    """Write ``fig`` where ``--out`` / ``--format`` say (default ``default_stem``)."""
    out, fmt = output_path(args, default_stem)
    io.save_figure(fig, out, fmt, args.dpi)
    print(f"wrote {out}")
    return out


# -- subcommands ---------------------------------------------------------------------------------

def cmd_latency(args: argparse.Namespace) -> int:
    from speedsim.report.plots import plot_token_latency

    run = RunDir(args.run_dir)
    summary = run.summary()
    names = run.strategies(args.strategies)
    tokens = run.csv("tokens.csv")
    if "strategy" in tokens.columns:
        tokens = tokens[tokens["strategy"].isin(names)]
    clock_hz = _clock_hz(summary, run)
    ttft = {n: summary["strategies"][n]["ttft_s"] for n in names if "ttft_s" in summary["strategies"][n]}
    fig = plot_token_latency(tokens, clock_hz, sequence=args.sequence, ttft_s=ttft,
                             title=f"Per-token latency: {_where(summary)}")
    save_figure(fig, args, run.path / "latency")
    return 0


def cmd_energy(args: argparse.Namespace) -> int:
    from speedsim.report.plots import plot_energy

    run = RunDir(args.run_dir)
    summary = run.summary()
    names = run.strategies(args.strategies)
    summary = {**summary, "strategies": {n: summary["strategies"][n] for n in names}}
    save_figure(plot_energy(summary, per_token=args.per_token), args, run.path / "energy")
    return 0


def cmd_roofline(args: argparse.Namespace) -> int:
    from speedsim.report.plots import plot_roofline, roofline_table

    run = RunDir(args.run_dir)
    names = run.strategies(args.strategies)
    hw = run.hardware()
    tables = {n: roofline_table(run.csv(f"items_{n}.csv"), hw.placement.gemm) for n in names}
    save_figure(plot_roofline(tables, hw), args, run.path / "roofline")
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from speedsim.report.plots import default_window, plot_timeline, timeline_frame

    run = RunDir(args.run_dir)
    frame = timeline_frame(run.json("timeline.json"))
    have = list(dict.fromkeys(frame["strategy"]))
    strategy = args.strategy or ("speed" if "speed" in have else have[0] if have else None)
    if strategy not in have:
        raise ConfigError(f"strategy {strategy!r} is not in the timeline (strategies: {', '.join(have)})",
                          key="--strategy")
    if args.window_us is not None and args.end is not None:
        raise ConfigError("give --end or --window-us, not both", key="--window-us")
    if args.window_us is not None and args.window_us <= 0:
        raise ConfigError(f"must be > 0, got {args.window_us}", key="--window-us")
    start, end = args.start, args.end
    if start is None or (end is None and args.window_us is None):
        d_start, d_end = default_window(frame, strategy)
        start = d_start if start is None else start
        end = d_end if end is None and args.window_us is None else end
    if args.window_us is not None:
        end = start + int(round(args.window_us * 1e-6 * frame.attrs["clock_hz"]))
    fig = plot_timeline(frame, strategy, start, end)
    save_figure(fig, args, run.path / f"timeline_{strategy}")
    return 0


def cmd_occupancy(args: argparse.Namespace) -> int:
    from speedsim.report.plots import plot_occupancy

    run = RunDir(args.run_dir)
    names = run.strategies(args.strategies)
    hw = run.hardware()
    tables = {n: run.csv(f"occupancy_{n}.csv") for n in names}
    save_figure(plot_occupancy(tables, hw.clock_hz, hw=hw), args, run.path / "occupancy")
    return 0


def cmd_speedup_map(args: argparse.Namespace) -> int:
    from speedsim.report import plots

    path = Path(args.results)
    df = _filtered(_read_results(path), args.where)
    value = args.value or plots.SPEEDUP_KEY
    fig = plots.plot_speedup_map(df, x=args.x or plots.RATE_KEY, y=args.y or plots.STAGES_KEY,
                                 value=value, title=f"{path.name}: {plots.map_title(value)}")
    save_figure(fig, args, path.with_name(f"{path.stem}.speedup"))
    return 0


def cmd_sweep_plot(args: argparse.Namespace) -> int:
    from speedsim.report import plots

    path = Path(args.results)
    df = _filtered(_read_results(path), args.where)
    fig = plots.plot_sweep(df, args.x, args.y, title=f"{path.name}: {args.y} over {args.x}")
    save_figure(fig, args, path.with_name(f"{path.stem}.{args.y}"))
    return 0


def cmd_load(args: argparse.Namespace) -> int:
    from speedsim.report.load_plot import crossover_table, plot_load

    path = Path(args.results)
    df = _read_results(path)
    for s, loads in crossover_table(df).items():
        print(f"{s}: throughput = sequential's at {', '.join(f'{x:.4g}' for x in loads) or 'no load swept'}")
    save_figure(plot_load(df, title=f"{path.name}: TPOT against throughput"), args,
                path.with_name(f"{path.stem}.load"))
    return 0


# -- helpers ---------------------------------------------------------------------------------

def _clock_hz(summary: dict[str, Any], run: RunDir) -> float:
    try:
        return float(summary["config"]["hw"]["clock_hz"])
    except (KeyError, TypeError, ValueError):
        return run.hardware().clock_hz


def _where(summary: dict[str, Any]) -> str:
    return f"{summary.get('workload', '?')} on {summary.get('hardware', '?')}"


def _read_results(path: Path):
    from speedsim.report.store import read_table

    if path.is_dir():
        raise ConfigError("is a directory; give a sweep result file (.csv or .parquet)",
                          file=str(path))
    if not path.is_file():
        raise ConfigError("results file not found", file=str(path))
    df = read_table(path)
    if "status" in df.columns:
        df = df[df["status"] == "ok"]
    if df.empty:
        raise ConfigError("no rows (with status ok)", file=str(path))
    return df


def _filtered(df, where: list[str]):
    import numpy as np

    import yaml

    for text in where:
        column, sep, raw = text.partition("=")
        column = column.strip()
        if not sep or not column:
            raise ConfigError(f"{text!r} must look like COLUMN=VALUE", key="--where")
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError:
            raise ConfigError(f"value of {column} is not valid YAML: {raw!r}", key="--where") from None
        if column not in df.columns:
            raise ConfigError(f"no column {column!r} (columns: {', '.join(map(str, df.columns))})",
                              key="--where")
        col = df[column]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and col.dtype.kind in "iuf":
            df = df[np.isclose(col.to_numpy(dtype=float), float(value))]
        else:
            df = df[col.astype(str) == str(value)]
        if df.empty:
            raise ConfigError(f"no rows with {column} = {value!r}", key="--where")
    return df

"""``speedsim sweep`` and ``speedsim plot pareto``: argument parsing and the files they write."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from speedsim.cli import io
from speedsim.config.errors import ConfigError


FAILED_POINTS = 3  # exit status of a sweep that finished with failed points

SCHEDULER = re.compile(r"^(local|[a-z][a-z0-9+]*://[^/\s]+:\d+)$")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "sweep", help="run a design-space sweep (resumable; local processes or Dask)",
        description="Run every point of a sweep spec and append one row per point to a CSV "
                    "(or Parquet) file as points finish.")
    p.add_argument("spec", help="sweep YAML (see sweeps/)")
    p.add_argument("--out", help="result file, .csv or .parquet (default: <spec name>.csv)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes (default 1: run in this process); with "
                        "--scheduler local, the Dask workers")
    p.add_argument("--scheduler", metavar="ADDRESS",
                   help="run on Dask: tcp://HOST:PORT, or 'local' for a LocalCluster")
    p.add_argument("--resume", action="store_true",
                   help="keep the points stored with status ok, run the rest (failed ones again)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing result file")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="add a fixed override for every point, e.g. workload.generation.new_tokens=32")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="reference decoder runs shared by points with the same weights, prompt "
                        "and generation settings (see speedsim run --cache-dir)")
    p.add_argument("--dry-run", action="store_true", help="list the points and exit")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no summary line")
    p.add_argument("--point-fn", help=argparse.SUPPRESS)  # "module:function", for tests and benchmarks
    p.set_defaults(func=cmd_sweep)
    return p


def cmd_sweep(args: argparse.Namespace) -> int:
    from speedsim.config.loader import parse_override
    from speedsim.sweep.points import expand
    from speedsim.sweep.runner import run_sweep
    from speedsim.sweep.spec import load_sweep

    sweep = load_sweep(args.spec, [parse_override(s) for s in args.set])
    if args.dry_run:
        _print_points(expand(sweep), sweep.workload_dir, args.workers)
        return 0
    out = Path(args.out) if args.out else Path(f"{Path(args.spec).stem}.csv")
    if out.suffix not in (".csv", ".parquet"):
        raise ConfigError(f"--out must end with .csv or .parquet (got {out.name})", key="--out")
    io.check_out_file(out)
    if args.cache_dir:
        io.reference_cache(args.cache_dir)
    if args.scheduler and not SCHEDULER.match(args.scheduler):
        raise ConfigError(f"{args.scheduler!r} is neither 'local' nor an address like "
                          "tcp://HOST:PORT", key="--scheduler")
    summary = run_sweep(sweep, out, workers=args.workers, scheduler=args.scheduler,
                        resume=args.resume, overwrite=args.overwrite, point_fn=args.point_fn,
                        progress=False if args.quiet else None, cache_dir=args.cache_dir)
    if not args.quiet:
        skipped = f", {summary.skipped} already stored" if summary.skipped else ""
        print(f"{sweep.name}: {summary.ok} ok, {summary.failed} failed{skipped} "
              f"of {summary.total} points -> {summary.out}")
    if summary.failed:
        print(f"speedsim: {summary.failed} of {summary.total} points failed (their rows have "
              f"status error and say why in the error column of {summary.out}; rerun them "
              "with --resume)", file=sys.stderr)
        return FAILED_POINTS
    return 0


def _print_points(points, workload_dir: str, workers: int) -> None:
    """One line per point; points the config schema rejects say why (they would be error
    rows); then the count and a rough time estimate."""
    from speedsim.config import hardware_from_dict, workload_from_dict
    from speedsim.sweep.runner import duration, estimate_s

    invalid = 0
    for p in points:
        values = " ".join(f"{k}={v}" for k, v in p.values.items())
        try:
            hardware_from_dict(p.hw, file="hw")
            workload_from_dict(p.workload, file="workload", base_dir=workload_dir)
            note = ""
        except ConfigError as exc:
            invalid += 1
            note = f"  INVALID {exc}"
        print(f"{p.index:5d} {p.config_hash[:12]} {values}{note}")
    guess = estimate_s([p.workload for p in points], len(points[0].strategies) if points else 0,
                       workers, workload_dir)
    print(f"{len(points)} points" + (f", {invalid} invalid" if invalid else "") +
          f"; roughly {duration(guess)} with {workers} worker{'s' if workers != 1 else ''}")


def add_pareto_plot_parser(plot_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``speedsim plot pareto RESULTS --x KEY --y KEY``; the plot command module calls this."""
    p = plot_subparsers.add_parser("pareto", help="Pareto front of two metrics of a sweep result")
    p.add_argument("results", help="sweep result file (.csv or .parquet)")
    p.add_argument("--x", required=True, help="column for the x axis, e.g. silicon.cost_proxy")
    p.add_argument("--y", required=True, help="column for the y axis, e.g. speed.decode_time_s")
    p.add_argument("--x-goal", choices=["min", "max"],
                   help="default: max for speedup.*, *_per_s and *utilization, else min")
    p.add_argument("--y-goal", choices=["min", "max"], help="as --x-goal")
    p.add_argument("--out", help="image file (default: RESULTS with suffix .pareto.png)")
    p.set_defaults(func=cmd_plot_pareto)
    return p


def figure_format(out: Path) -> str:
    """png or svg, from the file name."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ConfigError(f"must end with .png or .svg (got {out.name})", key="--out")
    return fmt


def cmd_plot_pareto(args: argparse.Namespace) -> int:
    from speedsim.report.pareto import default_goal, pareto_front, plot_pareto, with_derived
    from speedsim.report.store import load_results

    out = Path(args.out) if args.out else Path(args.results).with_suffix(".pareto.png")
    fmt = figure_format(io.check_out_file(out))
    df = with_derived(load_results(args.results))
    ok = df[df["status"] == "ok"]
    if ok.empty:
        raise ConfigError("no point finished with status ok", file=args.results)
    goals = {args.x: args.x_goal or default_goal(args.x), args.y: args.y_goal or default_goal(args.y)}
    front = ok[pareto_front(ok, goals)]
    fig = plot_pareto(ok, args.x, args.y, x_goal=goals[args.x], y_goal=goals[args.y],
                      title=f"{Path(args.results).name}: Pareto front")
    io.save_figure(fig, out, fmt, 150)
    axes = [c for c in ok.columns if c.startswith(("hw.", "workload."))]
    shown = list(dict.fromkeys(["index", *axes, args.x, args.y]))
    front.sort_values(args.x)[shown].to_string(sys.stdout, index=False)
    print(f"\n{len(front)} of {len(ok)} points on the front -> {out}")
    return 0

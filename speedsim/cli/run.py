"""``speedsim run``: simulate the strategies, print the table, write the result files.

Everything is computed before anything is written, and each file is written
atomically, so an error never leaves a half-written result directory.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from speedsim.api import simulate
from speedsim.cli import io
from speedsim.config.errors import ConfigError
from speedsim.config.hw import load_hardware
from speedsim.config.loader import parse_override
from speedsim.config.workload import load_workload
from speedsim.report.table import print_summary


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="compare decoding strategies on one accelerator")
    p.add_argument("hw", help="hardware YAML (e.g. hw_configs/edge.yaml)")
    p.add_argument("workload", help="workload YAML (e.g. workloads/gen.yaml)")
    p.add_argument("--out", help="directory for summary.json, tokens.csv, timeline.json, "
                                 "resolved_config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key: hw.<path>=value or workload.<path>=value (YAML-typed)")
    p.add_argument("--strategies", help="comma-separated subset, e.g. sequential,speed")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="keep the reference decoder's run here, keyed by a hash of weights, "
                        "prompt and generation settings, and reuse it when they match")
    p.set_defaults(func=cmd_run)


def split_overrides(items: list[str]) -> tuple[list, list]:
    """``hw.a.b=1`` / ``workload.c=2`` -> (hw overrides, workload overrides)."""
    hw, wl = [], []
    for text in items:
        key, value = parse_override(text)
        head, _, rest = key.partition(".")
        if head not in ("hw", "workload") or not rest:
            raise ConfigError(f"override {text!r} must start with hw. or workload.", file="--set")
        (hw if head == "hw" else wl).append((rest, value))
    return hw, wl


def cmd_run(args: argparse.Namespace) -> int:
    hw_over, wl_over = split_overrides(args.set)
    hw = load_hardware(args.hw, hw_over)
    wl = load_workload(args.workload, wl_over)
    names = [s.strip() for s in args.strategies.split(",")] if args.strategies else None
    cache = io.ReferenceCache(Path(args.cache_dir)) if args.cache_dir else None
    result = simulate(hw, wl, names, reference_cache=cache)
    if args.out:
        io.write_run(result, Path(args.out))
    if args.json:
        json.dump(result.summary, sys.stdout, indent=2, default=float)
        print()
    else:
        print_summary(result.summary)
        if args.out:
            print(f"results in {args.out}/")
    return 0

"""``speedsim trace``: the op trace of a workload as CSV (a file or standard output)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speedsim.cli import io
from speedsim.config.base import BYTES_PER_ELEMENT
from speedsim.config.errors import ConfigError
from speedsim.config.loader import parse_override
from speedsim.config.workload import load_workload


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("trace", help="write the op trace of a workload as CSV")
    p.add_argument("workload", help="workload YAML")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.add_argument("--precision", default="int8", choices=list(BYTES_PER_ELEMENT),
                   help="element size used for the byte columns (default int8)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a workload key, as run and sweep write it "
                        "(workload.generation.new_tokens=64; the workload. prefix may be left out)")
    p.set_defaults(func=cmd_trace)


def workload_override(text: str) -> tuple[str, object]:
    """``workload.a.b=v`` or ``a.b=v`` -> ``('a.b', v)``; a ``hw.`` key has no place here."""
    key, value = parse_override(text)
    head, _, rest = key.partition(".")
    if head == "hw":
        raise ConfigError(f"override {text!r}: trace reads no hardware; --precision sets the "
                          "element size", file="--set")
    return (rest, value) if head == "workload" and rest else (key, value)


def cmd_trace(args: argparse.Namespace) -> int:
    if args.out:
        io.check_out_file(args.out)
    overrides = [workload_override(s) for s in args.set]
    workload = load_workload(args.workload, overrides)
    from speedsim.trace import build_trace

    trace = build_trace(workload, bytes_per_element=BYTES_PER_ELEMENT[args.precision])
    if args.out:
        io.write_csv(trace, Path(args.out))
        print(f"wrote {len(trace)} rows to {args.out}")
    else:
        trace.to_csv(sys.stdout, index=False)
    return 0

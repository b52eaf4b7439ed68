"""Command line: ``speedsim run | trace | sweep | plot``.

Exit status: 0 success, 2 bad input (one line naming the file and key path),
1 a bug (the traceback is printed: it is ours to fix). Only this module and
``speedsim.report`` write files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Sequence

from speedsim.config.errors import ConfigError


def _cmd_trace(args: argparse.Namespace) -> int:
    from speedsim.config.hw import BYTES_PER_ELEMENT
    from speedsim.config.loader import parse_override
    from speedsim.config.workload import load_workload
    from speedsim.report.files import write_csv_atomic
    from speedsim.trace import build_trace

    overrides = [parse_override(s) for s in args.set]
    workload = load_workload(args.workload, overrides)
    trace = build_trace(workload, bytes_per_element=BYTES_PER_ELEMENT[args.precision])
    if args.out:
        write_csv_atomic(trace, Path(args.out))
        print(f"wrote {len(trace)} rows to {args.out}")
    else:
        trace.to_csv(sys.stdout, index=False)
    return 0


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speedsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    from speedsim.report import command as run_command
    run_command.add_run_parser(sub)

    p = sub.add_parser("trace", help="write the op trace of a workload as CSV")
    p.add_argument("workload", help="workload YAML")
    p.add_argument("--out", help="CSV file (default: standard output)")
    p.add_argument("--precision", default="int8", choices=["int8", "fp16", "bf16", "fp32"],
                   help="element size used for the byte columns (default int8)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a workload key path, e.g. generation.new_tokens=64")
    p.set_defaults(func=_cmd_trace)

    try:
        from speedsim.sweep import command as sweep_command
    except ImportError:  # the sweep package is optional at this stage of the build
        sweep_command = None
    if sweep_command is not None:
        sweep_command.add_sweep_parser(sub)

    from speedsim.report import plot_command
    plot_command.add_plot_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"speedsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speedsim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

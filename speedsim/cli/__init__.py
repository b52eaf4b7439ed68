"""Command line: ``speedsim run | trace | sweep | plot``, one module per command.

Exit status: 0 success, 2 bad input (one line naming the file and key path),
1 a bug (the traceback is printed: it is ours to fix). Files are written only
through ``speedsim.cli.io`` (result directories, figures) and
``speedsim.report.io`` (the atomic writers it and the sweep store use).
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from speedsim.cli import plot, run, sweep, trace
from speedsim.config.errors import ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speedsim", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run.add_parser(sub)
    trace.add_parser(sub)
    sweep.add_parser(sub)
    plot.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as exc:
        print(f"speedsim: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("speedsim: interrupted", file=sys.stderr)
        return 130

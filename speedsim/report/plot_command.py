"""``speedsim plot``: figures drawn from saved results, without rerunning anything."""

from __future__ import annotations

import argparse


def add_plot_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="draw figures from a run's --out directory or sweep results")
    kinds = p.add_subparsers(dest="plot_kind", required=True)
    try:
        from speedsim.report.pareto import add_pareto_plot_parser
    except ImportError:
        add_pareto_plot_parser = None
    if add_pareto_plot_parser is not None:
        add_pareto_plot_parser(kinds)

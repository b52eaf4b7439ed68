"""``speedsim list``: what ships and what can be asked for, one line each.

Sections: the shipped hardware, workloads, traffic and sweeps (each file's first comment
line; the folders beside the package, else in the current directory), the
strategies (their schema's one-line description), the plot kinds (their help)
and the sweep metrics (``speedsim.sweep.flatten``: the columns a sweep's
``metrics`` may name; a serving sweep's apart). ``speedsim list SECTION`` prints one section.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Callable, Iterator

import speedsim

FOLDERS = {"hardware": "hw_configs", "workloads": "workloads", "traffic": "traffic",
           "sweeps": "sweeps"}
WIDTH = 80


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("list", help="shipped hardware, workloads, traffic, sweeps; strategies, "
                                    "plot kinds, sweep metrics",
                       description=__doc__.splitlines()[0])
    p.add_argument("section", nargs="?", choices=list(SECTIONS),
                   help="only this section (default: all)")
    p.set_defaults(func=cmd_list)


def cmd_list(args: argparse.Namespace) -> int:
    names = [args.section] if args.section else list(SECTIONS)
    for i, name in enumerate(names):
        title, lines = SECTIONS[name]()
        print(("\n" if i else "") + title)
        for line in lines:
            print(line)
    return 0


def _row(name: str, text: str, width: int = 22) -> str:
    """``  name   text``, the text cut to fit the terminal width (80 off a terminal)."""
    room = max(shutil.get_terminal_size((WIDTH, 24)).columns, WIDTH) - max(width, len(name)) - 3
    text = text if len(text) <= room else text[:room - 1].rstrip() + "…"
    return f"  {name:<{width}} {text}".rstrip()


def shipped_folder(kind: str) -> Path:
    """The folder of shipped ``kind`` files: beside the package (a checkout or an editable
    install), else in the current directory."""
    beside = Path(speedsim.__file__).resolve().parent.parent / FOLDERS[kind]
    return beside if beside.is_dir() else Path(FOLDERS[kind])


def first_comment(path: Path) -> str:
    """The file's first comment line, without its ``#`` (empty if it has none)."""
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
        if line.strip():
            return ""
    return ""


def _files(kind: str) -> Callable[[], tuple[str, Iterator[str]]]:
    def section() -> tuple[str, Iterator[str]]:
        folder = shipped_folder(kind)
        files = sorted(folder.glob("*.yaml")) if folder.is_dir() else []
        return (f"{kind} ({folder}/)",
                (_row(p.stem, first_comment(p).removeprefix(f"{p.stem}:").strip())
                 for p in files) if files else iter(["  (none)"]))
    return section


def _strategies() -> tuple[str, Iterator[str]]:
    from speedsim.config.keys import models_in
    from speedsim.config.workload import Strategies

    def doc(name: str) -> str:
        model = models_in(Strategies.model_fields[name].annotation)
        return " ".join((model[0].__doc__ or "").split()) if model else ""
    return ("strategies (workload key strategies.<name>)",
            (_row(n, doc(n)) for n in Strategies.model_fields))


def _plots() -> tuple[str, Iterator[str]]:
    from speedsim.cli import plot

    sub = argparse.ArgumentParser().add_subparsers()
    plot.add_parser(sub)
    kinds = next(a for a in sub.choices["plot"]._actions
                 if isinstance(a, argparse._SubParsersAction))
    return ("plot kinds (speedsim plot KIND)",
            (_row(a.dest, a.help or "") for a in kinds._choices_actions))


def _metrics() -> tuple[str, Iterator[str]]:
    from speedsim.sweep.flatten import SERVE_METRICS, SILICON, STRATEGY_METRICS

    lines = [_row("<strategy>." + m, "") for m in sorted(STRATEGY_METRICS)
             if not m.startswith("buffers.")]
    lines += [_row("<strategy>.buffers.<b>.<s>", "b: weight, activation, accumulator, kv; "
                                                 "s: peak_bytes, mean_bytes, capacity_bytes", 34)]
    lines += [_row("speedup.<strategy>", "decode speedup over sequential", 34),
              _row("roofline.<strategy>", "roofline decode bound [s]", 34),
              _row("tokens_match", "the lossless strategies committed the same tokens", 34)]
    lines += [_row(m, "", 34) for m in SILICON]
    lines += ["  serving sweeps (traffic: …), per strategy:"]
    lines += [_row("<strategy>." + m, "", 34) for m in sorted(SERVE_METRICS)]
    return "sweep metrics (a sweep's metrics: list; see docs/metrics.md)", iter(lines)


SECTIONS: dict[str, Callable[[], tuple[str, Iterator[str]]]] = {
    "hardware": _files("hardware"), "workloads": _files("workloads"), "traffic": _files("traffic"),
    "sweeps": _files("sweeps"),
    "strategies": _strategies, "plots": _plots, "metrics": _metrics,
}

"""``speedsim run``: simulate the strategies, print the table, write the result files.

Each strategy's own files are written by the worker that ran it as soon as it is
done, the rest once all are; all wait in a staging folder until the last is
written (``speedsim.cli.io.RunFiles``), so an error never leaves a half-written
result directory.

The reference decode (NumPy on one core: about half a second for the shipped model,
memory-bound on its weights) does not wait for the simulator: it starts on a forked
process as soon as the configs are read (``reference_ahead``), while this one imports
the simulator (pandas, the engine, the strategies) and builds the trace; so this module
imports none of the simulator at its top. The record is the same either way.
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Iterator

from speedsim.config.budget import Limits, check_budget
from speedsim.cli import io
from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware, load_hardware
from speedsim.config.loader import parse_override
from speedsim.config.resolved import is_run_config, load_run_config
from speedsim.config.workload import Workload, load_workload
from speedsim.forking import Ahead, collector_paused, default_workers
from speedsim.model.reference_cache import cached_generate
from speedsim.report.io import json_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="compare decoding strategies on one accelerator",
                       description="Simulate the workload's strategies on the hardware. Give "
                                   "HW.yaml WORKLOAD.yaml, or one resolved_config.yaml (or the "
                                   "--out directory holding it) to run a recorded run again.")
    p.add_argument("hw", metavar="HW", help="hardware YAML (e.g. hw_configs/edge.yaml), or a "
                                            "run's resolved_config.yaml or --out directory")
    p.add_argument("workload", metavar="WORKLOAD", nargs="?",
                   help="workload YAML (e.g. workloads/gen.yaml)")
    p.add_argument("--out", help="directory for summary.json, tokens.csv, acceptance.csv, "
                                 "timeline.json, resolved_config.yaml, items_<strategy>.csv and "
                                 "occupancy_<strategy>.csv (an earlier run's files there are "
                                 "replaced)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key: hw.<path>=value or workload.<path>=value (YAML-typed)")
    p.add_argument("--strategies", help="comma-separated subset, e.g. sequential,speed")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.add_argument("--timeline", choices=("full", "summary", "none"), default="summary",
                   help="timeline.json: every unit interval (full), those of the prefill and "
                        "the first 8 decode tokens (summary, the default), or none")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that simulate the strategies at once (default: one per "
                        "strategy, at most one per CPU core); results do not depend on it")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="keep the reference decoder's run here, keyed by a hash of weights, "
                        "prompt and generation settings, and reuse it when they match")
    p.add_argument("--max-work-items", type=int, default=Limits.max_work_items, metavar="N",
                   help=f"refuse runs estimated above N work items (default {Limits.max_work_items:,})")
    p.add_argument("--max-memory-gib", type=float, default=Limits.max_memory_gib, metavar="GIB",
                   help=f"refuse runs estimated above GIB of memory (default {Limits.max_memory_gib:g})")
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


def simulate(*args, **kwargs):
    """``speedsim.api.simulate``, imported when a run needs it (module docstring)."""
    from speedsim.api import simulate as run_simulation

    return run_simulation(*args, **kwargs)


def cmd_run(args: argparse.Namespace) -> int:
    """The command, with Python's cyclic collector paused throughout (``collector_paused``):
    importing the simulator and building a run make objects by the hundred thousand, and
    none of them in cycles worth collecting before the process ends."""
    with collector_paused():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    # 1. everything the user typed, checked before any simulation; the reference decode
    # starts meanwhile
    if args.out:
        io.check_out_dir(args.out)
    hw, wl, files = load_configs(args.hw, args.workload, args.set)
    names = strategy_names(args.strategies)
    limits = run_limits(args.max_work_items, args.max_memory_gib)
    cache = io.reference_cache(args.cache_dir) if args.cache_dir else None
    reference = reference_ahead(wl, names, limits, cache, args.workers)
    try:
        from speedsim.api import strategy_list
        from speedsim.report.table import print_summary

        workers = worker_count(args.workers, len(strategy_list(wl, names)))
        # 2. simulate, each strategy's own files written by its worker; errors found on the
        # way name the file they belong to
        with out_files(args.out, args.timeline) as out:
            try:
                result = simulate(hw, wl, names, limits, reference_cache=cache, workers=workers,
                                  finish=out.strategy if out else _summary_only,
                                  reference=reference)
            except ConfigError as exc:
                raise attributed(exc, files) from None
            # 3. the rest of the files, then show
            replaced = out.finish(result) if out else []
    finally:
        if reference is not None:
            reference.close()
    if args.json:
        print(json_text(result.summary))
    else:
        print_summary(result.summary)
        if args.out:
            print(f"results in {args.out}/")
    if replaced:
        print(f"speedsim: {args.out} held an earlier run; removed its {', '.join(replaced)}",
              file=sys.stderr)
    args.result = result  # the executable exits without freeing it (``speedsim.cli.console``)
    return 0


def reference_ahead(wl: Workload, names: list[str] | None, limits: Limits, cache,
                    workers: int | None) -> Ahead | None:
    """The workload's reference decode (``cached_generate``), started now on a forked
    process, or None where the run computes it itself: shape-only weights (none to
    run), one worker asked for, one core, or a run the budget will refuse (``simulate``
    then says why, in its own order of checks)."""
    count = len(dict.fromkeys(names)) if names else len(wl.strategies.names())
    if wl.model.weights.source == "shape_only" or workers == 1 or default_workers(2) < 2:
        return None
    try:
        check_budget(wl, count, limits)
    except ConfigError:
        return None
    return Ahead(partial(cached_generate, wl, cache))


@contextmanager
def out_files(out: str | None, timeline: str) -> Iterator[io.RunFiles | None]:
    if out is None:
        yield None
        return
    with io.run_files(Path(out), timeline) as files:
        yield files


def _summary_only(name: str, position: int, run):
    """Without ``--out`` nothing needs more of a run than its summary."""
    return run.summary_only()


def load_configs(first: str, second: str | None, sets: list[str]):
    """(hardware, workload, {section: file}) from ``HW WORKLOAD`` or one recorded run."""
    hw_over, wl_over = split_overrides(sets)
    if second is not None:
        return (load_hardware(first, hw_over), load_workload(second, wl_over),
                {"hw": first, "workload": second})
    path = Path(first) / "resolved_config.yaml" if Path(first).is_dir() else Path(first)
    if not is_run_config(path):
        raise ConfigError("give HW.yaml WORKLOAD.yaml, or one resolved_config.yaml (or the "
                          "--out directory holding it)", file=first)
    hw, wl = load_run_config(path, hw_over, wl_over)
    return hw, wl, {"hw": str(path), "workload": str(path)}


def run_limits(max_work_items: int, max_memory_gib: float) -> Limits:
    """``--max-work-items`` and ``--max-memory-gib``: positive (a limit of 0 or below refuses
    every run, with a message that would blame the workload)."""
    if max_work_items < 1:
        raise ConfigError(f"must be at least 1 (got {max_work_items})", key="--max-work-items")
    if not max_memory_gib > 0:  # also NaN
        raise ConfigError(f"must be > 0 GiB (got {max_memory_gib:g})", key="--max-memory-gib")
    return Limits(max_work_items=max_work_items, max_memory_gib=max_memory_gib)


def worker_count(given: int | None, strategies: int) -> int:
    """``--workers``, or one per strategy to run, at most one per core."""
    if given is not None and given < 1:
        raise ConfigError(f"must be at least 1 (got {given})", key="--workers")
    return given if given is not None else default_workers(strategies)


def strategy_names(text: str | None) -> list[str] | None:
    if not text:
        return None
    names = [s.strip() for s in text.split(",")]
    if not all(names):
        raise ConfigError(f"empty strategy name in {text!r} (write e.g. sequential,speed)",
                          key="--strategies")
    return names


def attributed(exc: ConfigError, files: dict[str, str]) -> ConfigError:
    """An error found after loading, named by its file: keyed ``hw.…`` / ``workload.…``,
    or by a key only one of the two schemas has."""
    if exc.file or not exc.key:
        return exc
    section, _, rest = exc.key.partition(".")
    if section in files and rest:
        return ConfigError(exc.message, file=files[section], key=rest)
    owners = [name for name, root in (("hw", Hardware), ("workload", Workload))
              if section in root.model_fields]
    return ConfigError(exc.message, file=files[owners[0]], key=exc.key) if len(owners) == 1 else exc

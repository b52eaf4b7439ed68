"""``speedsim serve``: requests arriving over time, continuously batched, every strategy.

Same conventions as ``speedsim run``: every input checked before any simulation
(``--set hw.…``, ``workload.…``, ``traffic.…``), exit 2 with one line on bad
input, the result files written together at the end: ``requests.csv`` (one row
per request and strategy), ``summary.json`` and ``resolved_config.yaml`` (which
``speedsim serve DIR`` runs again).
"""

from __future__ import annotations

import argparse
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import yaml

from speedsim.cli import io
from speedsim.cli.run import attributed, strategy_names, worker_count
from speedsim.config.errors import ConfigError
from speedsim.config.hw import hardware_from_dict, load_hardware
from speedsim.config.loader import apply_overrides, load_mapping, parse_override
from speedsim.config.workload import Workload, load_workload, workload_from_dict
from speedsim.report.io import json_text

if TYPE_CHECKING:  # the serving packages load with the command (``speedsim run`` needs none)
    from speedsim.serve import ServeResult

SECTIONS = ("hw", "workload", "traffic")
PROGRESS_MIN_REQUESTS = 200  # a bar for runs of at least this many requests × strategies


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve requests arriving over time (continuous batching)",
                       description="Serve the traffic's requests with each of the workload's "
                                   "strategies on the hardware. Give HW.yaml WORKLOAD.yaml "
                                   "TRAFFIC.yaml, or one serve resolved_config.yaml (or the "
                                   "--out directory holding it).")
    p.add_argument("configs", nargs="+", metavar="CONFIG",
                   help="HW.yaml WORKLOAD.yaml TRAFFIC.yaml, or a serve run's resolved_config.yaml")
    p.add_argument("--out", help="directory for requests.csv, summary.json, resolved_config.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key: hw.<path>, workload.<path> or traffic.<path>=value")
    p.add_argument("--strategies", help="comma-separated subset, e.g. sequential,speed")
    p.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that serve the strategies at once (default: one per "
                        "strategy, at most one per CPU core); results do not depend on it")
    p.add_argument("--exact", action="store_true",
                   help="replay every iteration on the engine instead of the memo (slower)")
    p.add_argument("--audit-memo", action="store_true",
                   help="replay every iteration and report the memo's error on each "
                        "(summary: <strategy>.memo.audit)")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    from speedsim.api import strategy_list
    from speedsim.report.serve_table import print_serve_summary
    from speedsim.serve import serve

    # 1. everything the user typed, checked before any simulation
    if args.out:
        io.check_out_dir(args.out)
    hw, wl, traffic, files = load_serve_configs(args.configs, args.set)
    names = strategy_list(wl, strategy_names(args.strategies))
    workers = worker_count(args.workers, len(names))
    # 2. serve, with a progress bar on long runs (one bar, whichever worker serves)
    total = len(names) * (traffic.requests or len(traffic.trace_rows()))
    with progress_bar(total) as tick:
        try:
            result = serve(hw, wl, traffic, names, exact=args.exact, audit=args.audit_memo,
                           workers=workers, tick=tick)
        except ConfigError as exc:
            raise attributed_serve(exc, files) from None
    # 3. files, then show
    if args.out:
        write_serve(result, Path(args.out))
    if args.json:
        print(json_text(result.summary))
    else:
        print_serve_summary(result.summary)
        if args.out:
            print(f"results in {args.out}/")
    return 0


def split_serve_overrides(items: list[str]) -> dict[str, list[tuple[str, Any]]]:
    """``hw.a=1`` / ``workload.b=2`` / ``traffic.c=3`` -> overrides per section."""
    out: dict[str, list] = {s: [] for s in SECTIONS}
    for text in items:
        key, value = parse_override(text)
        head, _, rest = key.partition(".")
        if head not in SECTIONS or not rest:
            raise ConfigError(f"override {text!r} must start with hw., workload. or traffic.",
                              file="--set")
        out[head].append((rest, value))
    return out


def load_serve_configs(configs: list[str], sets: list[str]):
    """(hardware, workload, traffic, {section: file}) from three files or one recorded run."""
    from speedsim.config.traffic import load_traffic

    over = split_serve_overrides(sets)
    if len(configs) == 3:
        hw_file, wl_file, tr_file = configs
        return (load_hardware(hw_file, over["hw"]), load_workload(wl_file, over["workload"]),
                load_traffic(tr_file, over["traffic"]),
                {"hw": hw_file, "workload": wl_file, "traffic": tr_file})
    if len(configs) != 1:
        raise ConfigError("give HW.yaml WORKLOAD.yaml TRAFFIC.yaml, or one serve "
                          "resolved_config.yaml (or the --out directory holding it)",
                          key="CONFIG")
    path = Path(configs[0]) / "resolved_config.yaml" if Path(configs[0]).is_dir() else Path(configs[0])
    return (*load_resolved(path, over), {s: str(path) for s in SECTIONS})


def load_resolved(path: Path, over: dict[str, list]):
    """A serve run's ``resolved_config.yaml``: sections hw, workload and traffic."""
    from speedsim.config.traffic import traffic_from_dict

    data = load_mapping(path)
    if set(data) != set(SECTIONS):
        raise ConfigError(f"a serve run config holds exactly {', '.join(SECTIONS)}", file=str(path))
    builders = {"hw": lambda d: hardware_from_dict(d, file=str(path)),
                "workload": lambda d: workload_from_dict(d, file=str(path), base_dir=path.parent),
                "traffic": lambda d: traffic_from_dict(d, file=str(path), base_dir=path.parent)}
    out = []
    for s in SECTIONS:
        root = Workload if s == "workload" else None
        try:
            out.append(builders[s](apply_overrides(data[s], over[s], root=root)))
        except ConfigError as exc:
            raise ConfigError(exc.message, file=exc.file,
                              key=f"{s}.{exc.key}" if exc.key else s) from None
    return tuple(out)


def attributed_serve(exc: ConfigError, files: dict[str, str]) -> ConfigError:
    """An error found while serving, named by its file (``traffic.…`` keys included)."""
    section, _, rest = (exc.key or "").partition(".")
    if not exc.file and section == "traffic" and rest:
        return ConfigError(exc.message, file=files["traffic"], key=rest)
    return attributed(exc, {k: v for k, v in files.items() if k != "traffic"})


def write_serve(result: ServeResult, out: Path) -> None:
    """The result directory, each file written whole."""
    out.mkdir(parents=True, exist_ok=True)
    with io.writing(out):
        io.write_csv_atomic(result.requests, out / "requests.csv")
        io.write_json_atomic(result.summary, out / "summary.json")
        io.write_text_atomic(yaml.safe_dump(result.resolved_config(), sort_keys=False),
                             out / "resolved_config.yaml")


@contextmanager
def progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """``tick(n)`` advancing a bar on stderr for long runs on a terminal; else a no-op.
    Workers forked while it runs tick a counter in shared memory, which a thread of this
    process shows (one bar for all of them)."""
    if total < PROGRESS_MIN_REQUESTS or not sys.stderr.isatty():
        yield lambda n: None
        return
    import multiprocessing as mp
    import threading

    from rich.progress import Progress
    done, stop = mp.Value("q", 0), threading.Event()

    def tick(n: int) -> None:
        with done.get_lock():
            done.value += n

    with Progress(transient=True) as bar:
        task = bar.add_task("serving requests", total=total)
        follow = threading.Thread(target=_follow, args=(bar, task, done, stop), daemon=True)
        follow.start()
        try:
            yield tick
        finally:
            stop.set()
            follow.join()


def _follow(bar, task, done, stop, every_s: float = 0.2) -> None:
    """Show ``done``'s count on the bar until ``stop`` is set, and once more then."""
    while not stop.wait(every_s):
        bar.update(task, completed=done.value)
    bar.update(task, completed=done.value)

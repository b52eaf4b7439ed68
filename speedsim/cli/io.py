"""Every file the commands write goes through here (atomically: whole or absent).

- ``write_run``: the result directory of ``speedsim run --out`` (DESIGN §9);
- ``write_csv``: one table (``speedsim trace --out``);
- ``save_figure``: a figure as PNG or SVG (``speedsim plot``, ``plot pareto``);
- ``ReferenceCache`` (from ``speedsim.report.io``): the reference runs kept by
  ``run --cache-dir`` (one ``<key>.npz`` per key of
  ``speedsim.model.reference_cache.reference_key``).

``check_out_dir`` and ``check_out_file`` let a command refuse an output path
before it computes anything (a file where a directory is wanted, a parent that
is a file, a folder without write permission); a write that fails anyway (disk
full, permissions changed) is a ``ConfigError`` naming the path, like every
other failure a user can cause.

The atomic writers themselves are ``speedsim.report.io`` (the sweep's result
store appends through them too).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import pandas as pd
import yaml

from speedsim.config.errors import ConfigError
from speedsim.forking import run_forked
from speedsim.report.io import (ReferenceCache, write_atomic, write_csv_atomic,  # noqa: F401
                                write_json_atomic, write_text_atomic)
from speedsim.report.timeline import chrome_trace


def check_out_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a result directory: absent (then creatable) or a writable directory."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{p} exists and is not a directory", key=option)
    _check_creatable(p, option)
    return p


def check_out_file(path: str | Path, option: str = "--out") -> Path:
    """``path`` as an output file: not a directory, in a creatable or writable folder."""
    p = Path(path)
    if p.is_dir():
        raise ConfigError(f"{p} is a directory; name a file", key=option)
    _check_creatable(p.parent, option)
    return p


def _check_creatable(p: Path, option: str) -> None:
    """The nearest existing folder on ``p``'s path is a directory we may write in."""
    existing = next(a for a in (p, *p.parents) if a.exists())  # "." or "/" at the latest
    if not existing.is_dir():
        raise ConfigError(f"{existing} is not a directory, so {p} cannot be created", key=option)
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"no permission to write in {existing}", key=option)


@contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an operating-system failure while writing ``path`` into a ``ConfigError``."""
    try:
        yield
    except OSError as exc:
        raise ConfigError(f"cannot write ({exc.strerror or exc})", file=str(path)) from None


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    check_out_file(path)
    with writing(path):
        write_csv_atomic(frame, path)


def write_run(result, out: Path, timeline_detail: str = "summary", workers: int = 1) -> None:
    """The four result files of DESIGN §9 (plus the plans' per-item tables for plots).
    ``timeline_detail``: ``full``, ``summary`` (bounded, see ``chrome_trace``) or ``none``
    (no ``timeline.json``). ``workers``: processes writing files at once
    (``speedsim.forking``); the files are the same for any number."""
    check_out_dir(out)
    with writing(out):
        out.mkdir(parents=True, exist_ok=True)
    files = _run_files(result, timeline_detail)
    jobs = [partial(_write_file, out / name, write) for name, write in files]
    run_forked(jobs, workers)


def _run_files(result, timeline_detail: str) -> list[tuple[str, Callable[[Path], None]]]:
    """(file name, writer) of every file of ``write_run``, the largest first, so that
    workers dealt files in turn get similar shares: the items tables, then the timeline
    (about as costly as one of them) after the first occupancy table."""
    tables = sorted(result.saved_tables().items(), key=lambda kv: not kv[0].startswith("items_"))
    files = [(name, partial(write_csv_atomic, frame)) for name, frame in tables]
    if timeline_detail != "none":
        runs = {n: (r.plan, r.sim) for n, r in result.runs.items()}
        timeline = partial(_write_timeline, runs, result.hw.clock_hz, timeline_detail)
        files.insert(min(len(result.runs) + 1, len(files)), ("timeline.json", timeline))
    config_text = yaml.safe_dump(result.resolved_config(), sort_keys=False)
    return files + [("tokens.csv", partial(write_csv_atomic, result.tokens)),
                    ("summary.json", partial(write_json_atomic, result.summary)),
                    ("resolved_config.yaml", partial(write_text_atomic, config_text))]


def _write_timeline(runs: dict, clock_hz: float, detail: str, path: Path) -> None:
    write_json_atomic(chrome_trace(runs, clock_hz, detail), path, indent=None)  # large: compact


def _write_file(path: Path, write: Callable[[Path], None]) -> None:
    with writing(path):
        write(path)


def save_figure(fig, out: Path, fmt: str, dpi: int) -> Path:
    """Write ``fig`` as ``fmt`` (png | svg) to ``out``."""
    check_out_file(out)
    with writing(out):
        write_atomic(out, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi), binary=True)
    return out


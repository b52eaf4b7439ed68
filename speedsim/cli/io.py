"""Every file the commands write goes through here (atomically: whole or absent).

- ``RunFiles`` / ``write_run``: the result directory of ``speedsim run --out`` (DESIGN §9),
  each strategy's own files written by the worker that ran it;
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
import shutil
import tempfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import yaml

from speedsim.config.errors import ConfigError
from speedsim.report.io import (ReferenceCache, json_text, write_atomic,  # noqa: F401
                                write_csv_atomic, write_json_atomic, write_text_atomic)

if TYPE_CHECKING:  # the simulator's modules load with the first command that needs them
    import pandas as pd


def check_out_dir(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a result directory: absent (then creatable) or a writable directory."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"{p} exists and is not a directory", key=option)
    _check_creatable(p, option)
    return p


def reference_cache(path: str | Path, option: str = "--cache-dir") -> ReferenceCache:
    """The reference cache in directory ``path``, made now if absent: a path that cannot be
    one (a file, below a file, unwritable) is refused before anything runs."""
    p = check_out_dir(path, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {p} ({exc.strerror or exc})", key=option) from None
    if not os.access(p, os.W_OK | os.X_OK):
        raise ConfigError(f"no permission to write in {p}", key=option)
    return ReferenceCache(p)


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


# What ``speedsim run --out`` writes (the README's `run --out DIR` paragraph lists them;
# tests/test_readme.py checks that list against this one and against a run).
RESULT_FILES = ("summary.json", "tokens.csv", "acceptance.csv", "timeline.json", "resolved_config.yaml",
                "items_*.csv", "occupancy_*.csv")


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


def write_run(result, out: Path, timeline_detail: str = "summary") -> None:
    """The result files of DESIGN §9 (plus the plans' per-item tables for plots) of a whole
    ``RunResult``: what ``speedsim run --out`` writes as its strategies finish (``RunFiles``).
    ``timeline_detail``: ``full``, ``summary`` (bounded, see ``chrome_trace``) or ``none``
    (no ``timeline.json``)."""
    with run_files(out, timeline_detail) as files:
        for i, (name, run) in enumerate(result.runs.items()):
            files.strategy(name, i, run)
        files.finish(result)


@contextmanager
def run_files(out: Path, timeline_detail: str) -> Iterator["RunFiles"]:
    """A ``RunFiles`` for ``out``, abandoned if anything fails meanwhile."""
    files = RunFiles(out, timeline_detail)
    try:
        yield files
    except BaseException:
        files.abandon()
        raise


class RunFiles:
    """The result directory ``out`` of one run, written in two parts. ``strategy`` writes
    one strategy's own files (its items and occupancy tables, its share of the timeline):
    ``speedsim run`` calls it in the worker that ran the strategy, as soon as it is done
    (``speedsim.api.simulate``'s ``finish``), while the others still run. ``finish``
    writes the rest from the whole result. Until then every file waits in a staging folder
    inside ``out``; ``finish`` renames each into place, ``abandon`` removes them all: an
    error on the way leaves ``out`` as it was."""

    def __init__(self, out: Path, timeline_detail: str):
        self.out, self.detail = check_out_dir(out), timeline_detail
        self.made = [a for a in (self.out, *self.out.parents) if not a.exists()]  # ours to remove
        with writing(self.out):
            self.out.mkdir(parents=True, exist_ok=True)
            self.staging = Path(tempfile.mkdtemp(prefix=".speedsim-run-", dir=self.out))

    def strategy(self, name: str, position: int, run):
        """Write ``run``'s own files; returns what the caller still needs of the run
        (``StrategyRun.summary_only``)."""
        from speedsim.api import strategy_tables
        from speedsim.report.timeline import strategy_events

        for file, table in strategy_tables(name, run).items():
            _write_file(self.staging / file, partial(write_csv_atomic, table))
        if self.detail != "none":
            events = strategy_events(position, name, run.plan, run.sim, run.sim.hw.clock_hz,
                                     self.detail)
            _write_file(self._part(position), partial(write_text_atomic, json_text(events, None)))
        return run.summary_only()

    def finish(self, result) -> list[str]:
        """Write the files of the whole run, then move every file into ``out``; returns the
        names of an earlier run's result files this run does not write, removed from ``out``
        (its ``items_<s>.csv`` of a strategy not run now would otherwise pass for this run's)."""
        from speedsim.report.timeline import trace_document

        if self.detail != "none":
            parts = [self._part(i) for i in range(len(result.runs))]
            document = trace_document([], result.hw.clock_hz, self.detail)
            _write_file(self.staging / "timeline.json", partial(write_text_atomic, joined_events(
                json_text(document, None), [p.read_text() for p in parts]) + "\n"))
            for p in parts:
                p.unlink()
        config_text = yaml.safe_dump(result.resolved_config(), sort_keys=False)
        if result.acceptance is not None and len(result.acceptance):
            _write_file(self.staging / "acceptance.csv",
                        partial(write_csv_atomic, result.acceptance))
        for name, write in (("tokens.csv", partial(write_csv_atomic, result.tokens)),
                            ("summary.json", partial(write_json_atomic, result.summary)),
                            ("resolved_config.yaml", partial(write_text_atomic, config_text))):
            _write_file(self.staging / name, write)
        return self._publish()

    def abandon(self) -> None:
        """Remove the staged files, and the folders made for them if nothing else came in."""
        shutil.rmtree(self.staging, ignore_errors=True)
        for folder in self.made:
            try:
                folder.rmdir()
            except OSError:  # not empty (or gone): leave it
                return

    def _part(self, position: int) -> Path:
        return self.staging / f"timeline.{position}.part"

    def _publish(self) -> list[str]:
        """Each staged file renamed into ``out`` (none if one cannot be), the staging gone,
        the result files of an earlier run that are not this run's removed (their names)."""
        staged = sorted(self.staging.iterdir())
        stale = [p for pattern in RESULT_FILES for p in sorted(self.out.glob(pattern))
                 if p.is_file() and not (self.staging / p.name).exists()]
        for p in staged:
            if (self.out / p.name).is_dir():
                raise ConfigError("is a directory, so the result cannot be written there",
                                  file=str(self.out / p.name))
        for p in staged:
            with writing(self.out / p.name):
                os.replace(p, self.out / p.name)
        self.staging.rmdir()
        for p in stale:
            with writing(p):
                p.unlink()
        return [p.name for p in stale]


def joined_events(document: str, parts: list[str]) -> str:
    """``document`` (a trace's compact JSON text with no events) with the events of
    ``parts`` (each the compact JSON text of one strategy's event list): the same text as
    the whole trace's compact JSON."""
    head = '{"traceEvents":[]'
    assert document.startswith(head), document[:40]
    events = ",".join(p[1:-1] for p in parts if p != "[]")
    return '{"traceEvents":[' + events + "]" + document[len(head):]


def _write_file(path: Path, write: Callable[[Path], None]) -> None:
    with writing(path):
        write(path)


def save_figure(fig, out: Path, fmt: str, dpi: int) -> Path:
    """Write ``fig`` as ``fmt`` (png | svg) to ``out``."""
    check_out_file(out)
    with writing(out):
        write_atomic(out, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi), binary=True)
    return out


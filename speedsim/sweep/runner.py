"""Driving a sweep: expand, skip what is stored, run the rest, append each row as it lands."""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from speedsim.sweep.executor import PointFn, Task, point_fn_ref, resolve_paths, resolve_point_fn, run_tasks
from speedsim.sweep.points import expand
from speedsim.sweep.spec import Sweep
from speedsim.report.store import ResultStore, row_columns


@dataclass(frozen=True)
class SweepSummary:
    total: int  # points in the sweep
    skipped: int  # already stored with status ok (--resume)
    ok: int
    failed: int
    out: Path


class _Progress:
    """Points done / total, failures and ETA on stderr: a live bar on a terminal, plain
    lines elsewhere (a log, CI, a pipe: one line at most every ``every_s`` seconds and
    one at the end), nothing when off."""

    def __init__(self, total: int, done: int, mode: str, every_s: float = 10.0):
        self.failed, self.total, self.done, self.every_s = 0, total, done, every_s
        self.mode, self._bar, self._first_done = mode, None, done
        self._start = self._last = time.monotonic()
        if mode != "bar":
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        self._bar = Progress(TextColumn("sweep"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("[red]{task.fields[failed]} failed"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                             console=Console(stderr=True))
        self._task = self._bar.add_task("sweep", total=total, completed=done, failed=0)

    @contextmanager
    def shown(self) -> Iterator["_Progress"]:
        if self._bar is None:
            yield self
            return
        with self._bar:
            yield self

    def advance(self, ok: bool) -> None:
        self.failed += not ok
        self.done += 1
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed)
        elif self.mode == "lines":
            self._line()

    def _line(self) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s and self.done < self.total:
            return
        self._last = now
        ran, left = self.done - self._first_done, self.total - self.done
        eta = f", ETA {duration(left * (now - self._start) / ran)}" if ran and left else ""
        print(f"sweep: {self.done}/{self.total} points, {self.failed} failed, "
              f"{duration(now - self._start)} elapsed{eta}", file=sys.stderr, flush=True)


# Work items a process simulates per second, for the estimate printed before a sweep: on the
# 2-core development machine (December 2026) ~6 k (numeric weights: a reference decode per
# point) to ~14 k (shape-only) on sweeps/*.yaml. A rough figure: the progress shows a
# measured ETA once points finish.
ITEMS_PER_S = 8_000


def estimate_s(workloads: list[dict], strategies: int, workers: int, base_dir: str) -> float:
    """Rough seconds to simulate ``workloads`` (point configs) with ``workers`` processes:
    their estimated work items (``speedsim.config.budget``) at ``ITEMS_PER_S``. A point
    whose config is invalid costs nothing (it becomes an error row at once)."""
    from speedsim.config.budget import work_items
    from speedsim.config.errors import ConfigError
    from speedsim.config.workload import workload_from_dict

    items = 0
    for wl in workloads:
        try:
            items += work_items(workload_from_dict(wl, base_dir=base_dir), strategies)
        except ConfigError:
            continue
    return items / ITEMS_PER_S / max(1, min(workers, len(workloads)))


def duration(seconds: float) -> str:
    """``42 s``, ``3.5 min``, ``2.1 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def progress_mode(progress: bool | None) -> str:
    """``bar`` on a terminal, ``lines`` elsewhere, ``off`` when asked (``--quiet``)."""
    if progress is False:
        return "off"
    return "bar" if sys.stderr.isatty() or progress is True else "lines"


def run_sweep(sweep: Sweep, out: str | Path, *, workers: int = 1, scheduler: str | None = None,
              resume: bool = False, overwrite: bool = False, point_fn: PointFn | str | None = None,
              progress: bool | None = None, cache_dir: str | Path | None = None) -> SweepSummary:
    """Run every point of ``sweep`` not yet stored in ``out``; returns the counts.

    ``cache_dir``: points that share weights, prompts and generation settings (e.g.
    hardware-only axes) reuse one reference decoder run stored there.
    ``point_fn`` is a top-level function or its ``"module:attr"`` name; None means
    ``$SPEEDSIM_SWEEP_POINT_FN`` or ``speedsim.sweep.point:simulate_point``.
    ``progress=None`` shows a bar when stderr is a terminal and progress lines otherwise;
    ``True`` forces the bar, ``False`` silences both.
    """
    # 1. the points and the function that evaluates one (checked here, imported again by workers)
    point_fn = point_fn_ref(point_fn)
    resolve_point_fn(point_fn)
    points = expand(sweep)
    metrics = sweep.spec.kept_metrics()
    # 2. the store: what is already done
    store = ResultStore(Path(out), row_columns(list(sweep.spec.axes), metrics))
    done = store.open(resume=resume, overwrite=overwrite,
                      expected={p.index: p.config_hash for p in points})
    # 3. run the rest, appending rows in completion order
    tasks = [Task(index=p.index, config_hash=p.config_hash, values=p.values, hw=p.hw,
                  workload=resolve_paths(p.workload, sweep.workload_dir), strategies=p.strategies,
                  metrics=tuple(metrics), point_fn=point_fn,
                  cache_dir=str(cache_dir) if cache_dir else None,
                  traffic=resolve_paths(p.traffic, sweep.traffic_dir) if p.traffic else None)
             for p in points if p.index not in done]
    mode = progress_mode(progress)
    if mode != "off" and tasks:
        guess = estimate_s([t.workload for t in tasks], len(sweep.spec.strategies), workers,
                           sweep.workload_dir)
        print(f"sweep: {len(tasks)} points to run, roughly {duration(guess)} with {workers} "
              f"worker{'s' if workers != 1 else ''} (estimated from their work items)",
              file=sys.stderr, flush=True)
    bar = _Progress(len(points), len(done), mode)
    finished = False
    try:
        with bar.shown():
            for row in run_tasks(tasks, workers=workers, scheduler=scheduler):
                store.append(row)
                bar.advance(row["status"] == "ok")
        finished = True
    finally:
        store.close(finished=finished)
    return SweepSummary(total=len(points), skipped=len(done), ok=len(tasks) - bar.failed,
                        failed=bar.failed, out=Path(out))

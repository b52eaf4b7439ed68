"""Running points: in-process, on a local process pool, or on a Dask cluster.

Workers receive a ``Task`` (plain configs and the import path of the point
function) and return a row; they never touch the result file. The point
function is named by a ``"module:attr"`` string and imported in the worker,
so a task pickles to a spawned process or a remote Dask worker unchanged.

A point that raises — ``ConfigError`` for an invalid combination, or anything
else — becomes a row with ``status="error"`` and a one-line ``error``; a worker
process that dies does the same for the points it held. The sweep goes on.
All executors yield rows in completion order.
"""

from __future__ import annotations

import concurrent.futures as cf
import copy
import functools
import importlib
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from speedsim.config.errors import ConfigError

DEFAULT_POINT_FN = "speedsim.sweep.point:simulate_point"
POINT_FN_ENV = "SPEEDSIM_SWEEP_POINT_FN"

PointFn = Callable[[dict[str, Any], dict[str, Any], list[str]], dict[str, Any]]

# Workload keys holding file paths; relative ones resolve against the workload's folder.
_PATH_KEYS = (("model", "weights"), ("arrivals",), ("strategies", "speed", "acceptance"),
              ("strategies", "early_exit_spec", "acceptance"),
              ("strategies", "draft_spec", "acceptance"),
              ("strategies", "draft_spec", "draft_model", "weights"))


@dataclass(frozen=True)
class Task:
    index: int
    config_hash: str
    values: dict[str, Any]  # axis key path -> value
    hw: dict[str, Any]
    workload: dict[str, Any]
    strategies: tuple[str, ...]
    metrics: tuple[str, ...]
    point_fn: str  # "module:attr"
    cache_dir: str | None = None  # reference-run cache, passed to the point function when set
    traffic: dict[str, Any] | None = None  # a served point's traffic config (passed when set)


def point_fn_ref(fn: PointFn | str | None) -> str:
    """The ``"module:attr"`` reference of a point function.

    ``None`` means ``$SPEEDSIM_SWEEP_POINT_FN`` or ``speedsim.sweep.point:simulate_point``.
    A function must be importable by its name (top level of a module), so that
    workers can import it too.
    """
    if fn is None:
        return os.environ.get(POINT_FN_ENV) or DEFAULT_POINT_FN
    if isinstance(fn, str):
        return fn
    ref = f"{fn.__module__}:{fn.__qualname__}"
    if "<" in ref or "." in fn.__qualname__:
        raise ConfigError(f"point function {ref} is not a top-level function; workers cannot import it")
    return ref


@functools.lru_cache(maxsize=8)
def resolve_point_fn(ref: str) -> PointFn:
    """``"pkg.module:func"`` -> the function; ``ConfigError`` when it cannot be imported."""
    module, sep, attr = ref.partition(":")
    if not sep:
        module, _, attr = ref.rpartition(".")
    if not module or not attr:
        raise ConfigError(f"point function {ref!r} must look like package.module:function")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"point function {ref!r} cannot be loaded ({exc})") from None
    if not callable(fn):
        raise ConfigError(f"point function {ref!r} is not callable")
    return fn


def resolve_paths(workload: dict[str, Any], base_dir: str) -> dict[str, Any]:
    """A copy of ``workload`` (or a traffic config: its trace) whose relative file paths are
    made absolute against ``base_dir``."""
    out = copy.deepcopy(workload)
    for keys in _PATH_KEYS:
        node: Any = out
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get("path"), str) \
                and not Path(node["path"]).is_absolute():
            node["path"] = str(Path(base_dir) / node["path"])
    return out


def _plain(value: Any) -> Any:
    """NumPy scalars -> Python scalars, so rows format the same everywhere."""
    return value.item() if hasattr(value, "item") and not isinstance(value, (str, bytes)) else value


def one_line(exc: BaseException) -> str:
    text = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


def error_row(task: Task, message: str) -> dict[str, Any]:
    return {"index": task.index, "config_hash": task.config_hash, "status": "error",
            "error": message, **task.values, **{m: None for m in task.metrics}}


def evaluate(task: Task) -> dict[str, Any]:
    """Run one point; always returns a row (never raises for a bad point)."""
    try:
        fn = resolve_point_fn(task.point_fn)
        extra = {"reference_cache_dir": task.cache_dir} if task.cache_dir else {}
        if task.traffic is not None:
            extra["traffic"] = task.traffic
        result = fn(task.hw, task.workload, list(task.strategies), **extra)
        missing = [m for m in task.metrics if m not in result]
        if missing:
            return error_row(task, f"point function returned no metric {', '.join(missing)} "
                                   f"(it returned: {', '.join(sorted(result))})")
        return {"index": task.index, "config_hash": task.config_hash, "status": "ok", "error": "",
                **task.values, **{m: _plain(result[m]) for m in task.metrics}}
    except Exception as exc:  # a failing point is data, not a crash of the sweep
        return error_row(task, one_line(exc))


def run_inline(tasks: Iterable[Task]) -> Iterator[dict[str, Any]]:
    for task in tasks:
        yield evaluate(task)


def _exit_with_parent(parent_pid: int) -> None:
    """Pool-worker initializer: leave when the driver dies (a killed driver orphans its workers)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="speedsim-parent-watch").start()


def run_pool(tasks: list[Task], workers: int) -> Iterator[dict[str, Any]]:
    """A spawn-context process pool: workers import speedsim afresh, no forked state."""
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx,
                                  initializer=_exit_with_parent, initargs=(os.getpid(),))
    try:
        futures = {pool.submit(evaluate, t): t for t in tasks}
        for fut in cf.as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # the worker process died (BrokenProcessPool, pickling)
                yield error_row(futures[fut], one_line(exc))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_dask(tasks: list[Task], scheduler: str, workers: int) -> Iterator[dict[str, Any]]:
    """``scheduler`` is ``tcp://host:port`` or ``local`` (a LocalCluster of ``workers`` processes)."""
    try:
        import logging

        from distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise ConfigError("--scheduler needs dask: pip install 'speedsim[dask]'") from None
    cluster = None
    if scheduler == "local":
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
    else:
        try:
            client = Client(scheduler, timeout="10s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(f"cannot reach Dask scheduler {scheduler}: {exc}", key="--scheduler") from None
    try:
        futures = {client.submit(evaluate, t, key=f"speedsim-point-{t.index}-{t.config_hash[:12]}",
                                 pure=False): t for t in tasks}
        for fut in as_completed(futures):
            try:
                yield fut.result()
            except Exception as exc:  # KilledWorker, lost connection
                yield error_row(futures[fut], one_line(exc))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_tasks(tasks: list[Task], *, workers: int = 1,
              scheduler: str | None = None) -> Iterator[dict[str, Any]]:
    """Rows of ``tasks`` in completion order, on the executor the arguments choose."""
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1 (got {workers})", key="--workers")
    if scheduler:
        return run_dask(tasks, scheduler, workers)
    if workers == 1 or len(tasks) <= 1:
        return run_inline(tasks)
    return run_pool(tasks, min(workers, len(tasks)))  # never more processes than points

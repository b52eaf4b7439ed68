"""Independent jobs on forked worker processes, results in job order.

``speedsim run`` compares strategies whose simulations share nothing but their
inputs: each is a pure function of (hardware, workload, strategy), so they can
run at once on the cores of the machine. ``run_forked`` deals the jobs to
``workers`` shares (``deal``: job i to share i mod workers, or, given each job's
expected weight, the heaviest first to the lightest share), runs the first share
in the calling process and each other one in a child forked from it: a child
inherits the inputs (trace, configured strategies) instead of having them
pickled to it, and sends back only its result. Results are those of running the
jobs one after another — the same objects in the same order, whatever the number
of workers — because no job reads anything another one writes.

Forking needs the ``fork`` start method (Linux, macOS); elsewhere, and for one
worker, the jobs run one after another in the calling process. A child's
exception is re-raised in the caller.

Also here, for the command line below ``api``: ``Ahead`` (one job started early, its
result taken later) and ``collector_paused`` (the cyclic collector off while a run builds
its objects; ``speedsim run`` pauses it for the whole command).
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import pickle
from contextlib import contextmanager
from typing import Any, BinaryIO, Callable, Sequence

Job = Callable[[], Any]
_PIPE_BUFFER = 1 << 20  # bytes buffered on each end of a worker's result pipe


def default_workers(jobs: int) -> int:
    """As many workers as jobs, at most one per CPU core this process may use."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(jobs, cores or 1))


def run_forked(jobs: Sequence[Job], workers: int,
               weights: Sequence[float] | None = None) -> list[Any]:
    """``[job() for job in jobs]``, run on up to ``workers`` processes at once, dealt by
    ``deal`` (``weights``: each job's expected run time, any unit); worker 0 is this
    process."""
    if workers < 1:
        raise ValueError(f"workers must be at least 1 (got {workers})")
    workers = min(workers, len(jobs))
    if workers <= 1 or "fork" not in mp.get_all_start_methods():
        return [job() for job in jobs]
    dealt = deal(len(jobs), workers, weights)
    shares = [[jobs[i] for i in share] for share in dealt]
    children = [_start(share) for share in shares[1:]]  # 1. fork the others
    try:
        mine = _run_all(shares[0])  # 2. this process runs its share meanwhile
        theirs = [_collect(*child) for child in children]  # 3. then gathers theirs
    finally:
        for child, receive in children:  # a failure anywhere stops the workers still running
            receive.close()
            if child.is_alive():
                child.terminate()
                child.join()
    results: list[Any] = [None] * len(jobs)
    for share, share_results in zip(dealt, [mine, *theirs]):
        for i, result in zip(share, share_results):
            results[i] = result
    return results


def deal(jobs: int, workers: int, weights: Sequence[float] | None = None) -> list[list[int]]:
    """The job indices of each worker's share, each in job order: job i to worker i mod
    ``workers``; with ``weights``, each job, heaviest first (ties: the earlier job), to the
    share of least weight so far (ties: the earlier worker), which bounds the longest share
    by 4/3 of the best dealing (Graham's LPT rule)."""
    if weights is None:
        return [list(range(w, jobs, workers)) for w in range(workers)]
    if len(weights) != jobs:
        raise ValueError(f"{len(weights)} weights for {jobs} jobs")
    shares: list[list[int]] = [[] for _ in range(workers)]
    loads = [0.0] * workers
    for i in sorted(range(jobs), key=lambda j: (-weights[j], j)):
        w = loads.index(min(loads))
        shares[w].append(i)
        loads[w] += weights[i]
    return [sorted(share) for share in shares]


def _run_all(share: Sequence[Job]) -> list[Any]:
    return [job() for job in share]


def _start(share: Sequence[Job]) -> tuple[mp.process.BaseProcess, BinaryIO]:
    """Fork a child that runs ``share`` and sends back ``("ok", results)`` or ``("error", exc)``
    through a pipe of its own."""
    ctx = mp.get_context("fork")
    read_fd, write_fd = os.pipe()
    child = ctx.Process(target=_child, args=(share, write_fd), daemon=True)
    child.start()
    os.close(write_fd)
    return child, os.fdopen(read_fd, "rb", buffering=_PIPE_BUFFER)


def _child(share: Sequence[Job], write_fd: int) -> None:
    try:
        outcome = ("ok", _run_all(share))
    except BaseException as exc:  # noqa: BLE001 - handed to the parent, which re-raises it
        outcome = ("error", exc)
    # pickled straight into the pipe, frame by frame, so the parent unpickles while this
    # pickles (a 7B strategy's result is ~40 MB: one after the other took ~0.8 s)
    with os.fdopen(write_fd, "wb", buffering=_PIPE_BUFFER) as out:
        pickle.dump(outcome, out, protocol=pickle.HIGHEST_PROTOCOL)



def _collect(child: mp.process.BaseProcess, receive: BinaryIO) -> Any:
    """The child's result (read before joining, so a large one cannot block its pipe)."""
    try:
        with receive:
            status, value = pickle.load(receive)
    except (EOFError, pickle.UnpicklingError):
        child.join()
        raise RuntimeError(f"a worker process died (exit code {child.exitcode})") from None
    child.join()
    if status == "error":
        raise value
    return value


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off meanwhile, as it was afterwards. A strategy run
    allocates a few million long-lived objects (work items, tiles, log rows) and leaves
    no reference cycles but SimPy's environment (a few objects; the replay breaks its own,
    ``speedsim.sim.engine``), and every full collection walks all of them again: a quarter
    of a 7B run's time, for no memory freed (building a 7B trace index: 190 → 62 ms).
    Objects without cycles are freed as usual. Nested pauses resume once, at the outer end."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            _resume_collector()


def _resume_collector() -> None:
    """Turn the collector back on with what the pause made counted as old objects: moved
    into the oldest generation (``gc.freeze``, then ``gc.unfreeze``) instead of all being
    young, which the first collection after the pause would walk (~0.1 s after a 7B run)."""
    gc.freeze()
    gc.enable()
    gc.unfreeze()


class Ahead:
    """One job started now on a forked process, its result taken later: calling the object
    waits for it (the job's exception re-raised), ``close`` stops it if it is no longer
    wanted. Without ``fork`` the job runs when called. ``speedsim run`` starts the
    reference decode this way while it imports and builds the rest."""

    def __init__(self, job: Job):
        self._job = job
        self._child = _start([job]) if "fork" in mp.get_all_start_methods() else None

    def __call__(self) -> Any:
        if self._child is None:
            return self._job()
        try:
            return _collect(*self._child)[0]
        finally:
            self.close()

    def close(self) -> None:
        """Stop the job if it still runs (its result is not wanted); idempotent."""
        if self._child is not None:
            child, receive = self._child
            receive.close()
            if child.is_alive():
                child.terminate()
                child.join()

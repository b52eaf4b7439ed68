"""Benchmark: the NumPy reference decoder — greedy generation and the SPEED executor.

The default workload (``workloads/gen.yaml``). Prints wall times; asserts nothing.

    .venv/bin/python benchmarks/bench_model.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # tiny matmuls: threads only add overhead

import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from speedsim.config.workload import load_workload  # noqa: E402
from speedsim.model import derive_schedule, generate, load_params  # noqa: E402
from speedsim.model.speed_exec import run_speed_workload  # noqa: E402

WORKLOAD = Path(__file__).resolve().parents[1] / "workloads" / "gen.yaml"


def main() -> None:
    w = load_workload(WORKLOAD)
    params = load_params(w)
    t0 = time.perf_counter()
    rec = generate(w, params=params)
    t1 = time.perf_counter()
    run = run_speed_workload(w, params)
    t2 = time.perf_counter()
    sched = derive_schedule(rec.accepted, w.stages)
    t3 = time.perf_counter()
    assert np.array_equal(run.tokens, rec.tokens) and run.schedule == sched
    print(f"generate {t1 - t0:.3f} s, SPEED executor {t2 - t1:.3f} s, "
          f"derive_schedule {1e3 * (t3 - t2):.2f} ms; acceptance {rec.accepted[1:-1].mean():.2f}, "
          f"{sched.launched} launched, {sched.flushes} flushes, {sched.n_steps} stage steps")


if __name__ == "__main__":
    main()

"""Which kernels a SPEED stage step runs, and how long each takes, as the rows in flight grow.

A diagnostic for the small shapes' misses (docs/calibration.md §7): one case of
``cases.py`` (default s01b_l2, batch 4, context 128), every distinct ring step
(``e2e.Model.ring_step``) run eagerly under ``torch.profiler`` (CUDA activity), after
warm-ups; per step pattern, each kernel's name, its position in the step and its GPU time
(median over the repetitions). The steps' graph-replayed times are ``e2e.py``'s
``steps.csv``; this splits them into kernels (the launch gaps are not in it).

Usage on the GPU machine: ``python3 kernels.py OUT.csv CASES_JSON [SHAPE BATCH CTX]``.
"""

from __future__ import annotations

import json
import statistics
import sys

import torch
from torch.profiler import ProfilerActivity, profile

from e2e import Model
from measure import Sink

REPS = 5
GPU = torch.cuda.is_available()  # else a dry run of the logic on the CPU (E2E_DRY=1)
SYNC = torch.cuda.synchronize if GPU else (lambda: None)
ACTIVITY = ProfilerActivity.CUDA if GPU else ProfilerActivity.CPU


def step_kernels(m: Model, pattern: tuple[int, ...]) -> list[tuple[str, float]]:
    """(kernel name, µs) in launch order, the median of REPS runs of one ring step."""
    for _ in range(3):
        m.ring_step(pattern, 0)
    SYNC()
    runs = []
    for _ in range(REPS):
        with profile(activities=[ACTIVITY]) as prof:
            m.ring_step(pattern, 0)
            SYNC()
        evs = sorted((e for e in prof.events() if e.device_type.name == ACTIVITY.name),
                     key=lambda e: e.time_range.start)
        runs.append([(e.name, e.time_range.end - e.time_range.start) for e in evs])
    n = min(len(r) for r in runs)
    return [(runs[0][i][0], statistics.median(r[i][1] for r in runs)) for i in range(n)]


def main() -> int:
    out, cases = sys.argv[1], json.loads(open(sys.argv[2]).read())
    shape, batch, ctx = (sys.argv[3], int(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 \
        else ("s01b_l2", 4, 128)
    c = next(c for c in cases if (c["shape"], c["batch"], c["ctx"]) == (shape, batch, ctx))
    m = Model(c, batch, ctx + c["new_tokens"] // 2)
    sink = Sink(out, ["shape", "batch", "ctx", "stages", "index", "kernel", "us"])
    for p in sorted({tuple(s) for s in c["speed_steps"]}):
        for i, (name, us) in enumerate(step_kernels(m, p)):
            sink.add(shape=shape, batch=batch, ctx=ctx, stages="-".join(map(str, p)), index=i,
                     kernel=name[:120], us=us)
    return 0


if __name__ == "__main__":
    sys.exit(main())

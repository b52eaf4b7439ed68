"""Why a whole SPEED run exceeds the sum of its stage steps (issue #29 diagnosis).

Per case: the whole run's graphs replayed back to back (as e2e.py), the same with a long
sleep kernel queued first so the CPU enqueues every graph before the GPU starts (GPU time
alone), the same multiset of graphs grouped by pattern (fewer graph switches), each
pattern's step time (as steps.csv), and the CPU time per graph launch; the sequential
token graph with and without the sleep, as a control (its whole runs match its steps).
If ``whole_ahead`` falls to ``sum_of_steps``, the gap is the host launching graphs; if
``grouped`` does, it is switching between different graphs; if neither, it is on the GPU.
Prepared in session 14 and run in session 15 on one H100 (``results/h100/gap/``; read in
docs/calibration.md §7, "Where the gap lies").

Usage on the GPU machine: ``python3 gap.py OUT.csv CASES_JSON SHAPE,BATCH,CTX ...``.
"""

from __future__ import annotations

import json
import sys
import time

import torch

from e2e import Model, capture
from measure import Sink, median

REPS = 7
SLEEP_CYCLES = int(2e7)  # about 10 ms queued ahead: the CPU enqueues every graph meanwhile


def timed(graphs: list, ahead: bool) -> tuple[float, float]:
    """(median GPU µs of replaying ``graphs`` back to back, median CPU µs per launch)."""
    for g in graphs:
        g.replay()
    torch.cuda.synchronize()
    ts, cpu = [], []
    for _ in range(REPS):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        if ahead:
            torch.cuda._sleep(SLEEP_CYCLES)
        a.record()
        t = time.perf_counter()
        for g in graphs:
            g.replay()
        cpu.append((time.perf_counter() - t) / len(graphs) * 1e6)
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) * 1e3)
    return median(ts), median(cpu)


def case(sink: Sink, c: dict) -> None:
    """Every row of one case (module docstring)."""
    m = Model(c, c["batch"], c["ctx"] + c["new_tokens"] // 2)
    pats = sorted({tuple(s) for s in c["speed_steps"]})
    ring = {(p, q): capture(lambda p=p, q=q: m.ring_step(p, q)) for p in pats for q in (0, 1)}
    run = [(tuple(s), i % 2) for i, s in enumerate(c["speed_steps"])]
    key = dict(shape=c["shape"], batch=c["batch"], ctx=c["ctx"])
    step = {p: timed([ring[p, 0], ring[p, 1]] * 10, True)[0] / 20 for p in pats}
    sink.add(**key, what="sum_of_steps", us=sum(step[p] for p, _ in run), cpu_us=0)
    for ahead in (False, True):
        us, cpu = timed([ring[k] for k in run], ahead)
        sink.add(**key, what=f"whole{'_ahead' if ahead else ''}", us=us, cpu_us=cpu)
        grouped = sorted(run)
        us, cpu = timed([ring[k] for k in grouped], ahead)
        sink.add(**key, what=f"grouped{'_ahead' if ahead else ''}", us=us, cpu_us=cpu)
    g = capture(m.sequential_step)
    n = c["new_tokens"] - 1
    for ahead in (False, True):
        us, cpu = timed([g] * n, ahead)
        sink.add(**key, what=f"seq{'_ahead' if ahead else ''}", us=us, cpu_us=cpu)
    del ring, g, m
    torch.cuda.empty_cache()


def main() -> int:
    out, cases = sys.argv[1], json.loads(open(sys.argv[2]).read())
    sink = Sink(out, ["shape", "batch", "ctx", "what", "us", "cpu_us"])
    for spec in sys.argv[3:]:
        s, b, x = spec.split(",")
        c = next(c for c in cases if (c["shape"], c["batch"], c["ctx"]) == (s, int(b), int(x)))
        case(sink, c)
        print(spec, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The result side of a run, outside the simulation loop: metrics, writing, pickling, import.

Simulates one (hardware, workload) pair once (default: the 7B shape on ``edge``, both
strategies, in this process), then reports the best of ``--repeat`` CPU times of:

* ``metrics``: ``strategy_metrics`` per strategy (latency, energy, roofline, bound_by);
* ``roofline``: ``cost.roofline`` per strategy (the replay's own lower bound);
* ``write_run``: the whole ``--out`` directory (summary timeline), and within it the
  CSV tables (``speedsim.report.csvtext``) beside pandas' ``to_csv`` of the same frames,
  the timeline dict and its JSON text;
* ``pickle``: dump + load of each strategy's plan and ``SimResult`` (worker processes
  send them back);
* ``import``: ``import speedsim.cli`` in a fresh interpreter (wall, best of ``--repeat``).

Not a test: numbers depend on the machine; closing notes quote them.

    .venv/bin/python benchmarks/bench_results.py [--repeat 3] [--hw H.yaml --workload W.yaml]
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speedsim.api import simulate
from speedsim.cli import io
from speedsim.config import load_hardware, load_workload
from speedsim.hw import cost
from speedsim.metrics.strategy import strategy_metrics
from speedsim.report.csvtext import csv_text
from speedsim.report.io import json_text
from speedsim.report.timeline import chrome_trace


def best_cpu_s(f, repeat: int) -> float:
    """The least CPU seconds ``f()`` took in ``repeat`` calls."""
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        f()
        times.append(time.process_time() - t0)
    return min(times)


def import_s(repeat: int) -> float:
    code = "import time; t = time.perf_counter(); import speedsim.cli; print(time.perf_counter() - t)"
    return min(float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                    check=True).stdout) for _ in range(repeat))


def phases(result, repeat: int) -> dict[str, float]:
    """1. metrics and roofline per strategy; 2. writing; 3. pickling."""
    runs, hw, wl = result.runs, result.hw, result.workload
    accepted = {n: r.metrics.get("speculation") is not None for n, r in runs.items()}
    out = {"metrics": sum(best_cpu_s(lambda r=r: strategy_metrics(
        r.plan, r.sim, hw, wl, _accepted(r) if accepted[n] else None), repeat)
        for n, r in runs.items())}
    out["roofline"] = sum(best_cpu_s(lambda r=r: cost.roofline(r.plan.items, hw, r.sim.costed), repeat)
                          for r in runs.values())
    with tempfile.TemporaryDirectory() as tmp:
        out["write_run"] = best_cpu_s(lambda: io.write_run(result, Path(tmp) / "out"), repeat)
    tables = [*result.saved_tables().values(), result.tokens]
    out["  csv tables"] = best_cpu_s(lambda: [csv_text(t) for t in tables], repeat)
    out["  (pandas to_csv)"] = best_cpu_s(lambda: [t.to_csv(index=False) for t in tables], repeat)
    trace_runs = {n: (r.plan, r.sim) for n, r in runs.items()}
    out["  timeline"] = best_cpu_s(lambda: chrome_trace(trace_runs, hw.clock_hz, "summary"), repeat)
    timeline = chrome_trace(trace_runs, hw.clock_hz, "summary")
    out["  timeline json"] = best_cpu_s(lambda: json_text(timeline, None), repeat)
    for part in ("plan", "sim"):
        out[f"pickle {part}"] = sum(best_cpu_s(lambda r=r: pickle.loads(pickle.dumps(
            getattr(r, part), protocol=pickle.HIGHEST_PROTOCOL)), repeat) for r in runs.values())
    return out


def _accepted(run):
    """The acceptance outcomes a speculative strategy's metrics were computed with: not
    kept on the run, so the speculation block is re-derived from a stand-in of ones (the
    timing, not the numbers, is what this measures)."""
    return np.ones(run.metrics["speculation"]["launched"] + 1, dtype=bool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hw", default="hw_configs/edge.yaml")
    ap.add_argument("--workload", default="workloads/llama7b_cycle_u8.yaml")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    hw, wl = load_hardware(args.hw), load_workload(args.workload)
    t0 = time.perf_counter()
    result = simulate(hw, wl)
    print(f"{wl.name} on {hw.name}: simulated in {time.perf_counter() - t0:.1f} s wall")
    for name, seconds in phases(result, args.repeat).items():
        print(f"  {name:20s} {seconds:6.3f} s CPU")
    print(f"  {'import speedsim.cli':20s} {import_s(args.repeat):6.3f} s wall")


if __name__ == "__main__":
    main()

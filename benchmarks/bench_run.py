"""Wall time of whole runs: the default comparison, every strategy, and the 7B-shape workload.

Reports, per run: wall seconds (whole ``simulate``, split into its stages),
simulated tokens per wall second (decode executions of all strategies, batch
included) and SimPy events per wall second. Not a test: numbers depend on the
machine; closing notes quote them.

    .venv/bin/python benchmarks/bench_run.py [--repeat 3] [--only gen|7b]
"""

from __future__ import annotations

import argparse
import time

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload

RUNS = {
    "gen": ("hw_configs/edge.yaml", "workloads/gen.yaml"),
    "strategies": ("hw_configs/edge.yaml", "workloads/strategies.yaml"),
    "7b": ("hw_configs/edge.yaml", "workloads/llama7b_shape.yaml"),
}


def bench(hw_path: str, wl_path: str) -> dict:
    hw, wl = load_hardware(hw_path), load_workload(wl_path)
    t0 = time.perf_counter()
    result = simulate(hw, wl)
    wall = time.perf_counter() - t0
    launched = sum(len([e for e in r.plan.execs if e.phase == "decode"]) for r in result.runs.values())
    events = sum(r.sim.events for r in result.runs.values())
    items = sum(len(r.plan.items) for r in result.runs.values())
    return {"wall_s": wall, "items": items, "events": events,
            "sim_tokens_per_s": launched * wl.generation.batch / wall,
            "items_per_s": items / wall, "events_per_s": events / wall,
            "speedup": result.summary["speedup"].get("speed")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", choices=sorted(RUNS))
    args = ap.parse_args()
    for name, (hw, wl) in RUNS.items():
        if args.only and name != args.only:
            continue
        best = min((bench(hw, wl) for _ in range(args.repeat)), key=lambda r: r["wall_s"])
        print(f"{name:4s} {hw} {wl}: wall {best['wall_s']:.2f} s, {best['items']:,} items "
              f"({best['items_per_s']:,.0f}/s), {best['events']:,} SimPy events "
              f"({best['events_per_s']:,.0f}/s), {best['sim_tokens_per_s']:,.1f} simulated "
              f"tokens/s, SPEED speedup {best['speedup']:.2f}x")


if __name__ == "__main__":
    main()

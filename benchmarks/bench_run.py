"""Wall time of whole runs: the default comparison, every strategy, and the 7B-shape workload.

Reports, per run: wall seconds of ``simulate``, peak resident memory of the
process so far, simulated tokens per wall second (decode executions of all
strategies, batch included), work items and SimPy events per wall second.
``--scaling`` fits the exponent of wall time in new tokens (32 → 128) and in
layers (8 → 32) on the 7B shape. Not a test: numbers depend on the machine;
closing notes quote them.

    .venv/bin/python benchmarks/bench_run.py [--repeat 3] [--only gen|7b|7b_h100|7b_dc]
    .venv/bin/python benchmarks/bench_run.py --scaling
"""

from __future__ import annotations

import argparse
import math
import resource
import time

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload

RUNS = {
    "gen": ("hw_configs/edge.yaml", "workloads/gen.yaml"),
    "strategies": ("hw_configs/edge.yaml", "workloads/strategies.yaml"),
    "7b": ("hw_configs/edge.yaml", "workloads/llama7b_shape.yaml"),
    "7b_h100": ("hw_configs/h100.yaml", "workloads/llama7b_shape.yaml"),
    "7b_dc": ("hw_configs/datacenter.yaml", "workloads/llama7b_shape.yaml"),
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(hw_path: str, wl_path: str, overrides=()) -> dict:
    hw, wl = load_hardware(hw_path), load_workload(wl_path, list(overrides))
    t0 = time.perf_counter()
    result = simulate(hw, wl)
    wall = time.perf_counter() - t0
    launched = sum(len([e for e in r.plan.execs if e.phase == "decode"]) for r in result.runs.values())
    events = sum(r.sim.events for r in result.runs.values())
    items = sum(len(r.plan.items) for r in result.runs.values())
    return {"wall_s": wall, "items": items, "events": events,
            "sim_tokens_per_s": launched * wl.generation.batch / wall,
            "items_per_s": items / wall, "events_per_s": events / wall, "rss_mib": peak_rss_mib(),
            "speedup": result.summary["speedup"].get("speed")}


def exponent(xs: list[int], walls: list[float]) -> float:
    """Least-squares slope of log(wall) over log(x)."""
    lx, ly = [math.log(x) for x in xs], [math.log(w) for w in walls]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def scaling() -> None:
    hw, wl = RUNS["7b"]
    layers = lambda v: [("model.n_layers", v), ("model.sharing.unique_layers", v // 4),
                        ("generation.new_tokens", 32)]  # G = N / U = 4 stages throughout
    for key, values, over in (("new_tokens", [32, 64, 128],
                               lambda v: [("generation.new_tokens", v)]),
                              ("n_layers", [8, 16, 32], layers)):
        walls = [bench(hw, wl, over(v))["wall_s"] for v in values]
        print(f"{key}: {dict(zip(values, [round(w, 2) for w in walls]))} s, "
              f"exponent {exponent(values, walls):.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--only", choices=sorted(RUNS))
    ap.add_argument("--scaling", action="store_true")
    args = ap.parse_args()
    if args.scaling:
        scaling()
        return
    for name, (hw, wl) in RUNS.items():
        if (args.only and name != args.only) or (not args.only and name.startswith("7b_")):
            continue
        best = min((bench(hw, wl) for _ in range(args.repeat)), key=lambda r: r["wall_s"])
        print(f"{name:4s} {hw} {wl}: wall {best['wall_s']:.2f} s, {best['items']:,} items "
              f"({best['items_per_s']:,.0f}/s), {best['events']:,} SimPy events "
              f"({best['events_per_s']:,.0f}/s), {best['sim_tokens_per_s']:,.1f} simulated "
              f"tokens/s, SPEED speedup {best['speedup']:.2f}x, peak RSS {best['rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()

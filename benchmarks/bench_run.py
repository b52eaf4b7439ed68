"""Wall time of whole runs: the default comparison, every strategy, and the 7B-shape workload.

Reports, per run: wall seconds of ``simulate``, peak resident memory of the
process so far, simulated tokens per wall second (decode executions of all
strategies, batch included), work items and SimPy events per wall second.
``--scaling`` fits, on the 7B shape, the exponent of CPU time in new tokens
(32 → 512) and in layers (8 → 32), and the line ``a + b·x`` (fixed cost: prefill,
set-up; marginal cost per token or layer). Not a test: numbers depend on the machine;
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
    "7b": ("hw_configs/edge.yaml", "workloads/llama7b_cycle_u8.yaml"),
    "7b_h100": ("hw_configs/h100.yaml", "workloads/llama7b_cycle_u8.yaml"),
    "7b_dc": ("hw_configs/datacenter.yaml", "workloads/llama7b_cycle_u8.yaml"),
}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def bench(hw_path: str, wl_path: str, overrides=()) -> dict:
    hw, wl = load_hardware(hw_path), load_workload(wl_path, list(overrides))
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate(hw, wl)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    launched = sum(len([e for e in r.plan.execs if e.phase == "decode"]) for r in result.runs.values())
    events = sum(r.sim.events for r in result.runs.values())
    items = sum(len(r.plan.items) for r in result.runs.values())
    return {"wall_s": wall, "cpu_s": cpu, "items": items, "events": events,
            "sim_tokens_per_s": launched * wl.generation.batch / wall,
            "items_per_s": items / wall, "events_per_s": events / wall, "rss_mib": peak_rss_mib(),
            "speedup": result.summary["speedup"].get("speed")}


def exponent(xs: list[int], ts: list[float]) -> float:
    """Least-squares slope of log(t) over log(x)."""
    return line([math.log(x) for x in xs], [math.log(t) for t in ts])[1]


def line(xs: list[float], ts: list[float]) -> tuple[float, float]:
    """Least-squares (intercept, slope) of t over x."""
    mx, mt = sum(xs) / len(xs), sum(ts) / len(ts)
    slope = sum((a - mx) * (b - mt) for a, b in zip(xs, ts)) / sum((a - mx) ** 2 for a in xs)
    return mt - slope * mx, slope


def scaling() -> None:
    hw, wl = RUNS["7b"]
    layers = lambda v: [("model.n_layers", v), ("model.sharing.unique_layers", v // 4),
                        ("generation.new_tokens", 32)]  # G = N / U = 4 stages throughout
    for key, values, over in (("new_tokens", [32, 64, 128, 256, 512],
                               lambda v: [("generation.new_tokens", v)]),
                              ("n_layers", [8, 16, 32], layers)):
        runs = [bench(hw, wl, over(v)) for v in values]
        cpu = [r["cpu_s"] for r in runs]
        a, b = line(values, cpu)
        print(f"{key}: CPU {dict(zip(values, [round(t, 2) for t in cpu]))} s, wall "
              f"{dict(zip(values, [round(r['wall_s'], 2) for r in runs]))} s; exponent "
              f"{exponent(values, cpu):.2f}; fit {a:.2f} s + {b * 1e3:.1f} ms per {key[:-1]}; "
              f"peak RSS {runs[-1]['rss_mib']:,.0f} MiB", flush=True)


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
        print(f"{name:4s} {hw} {wl}: wall {best['wall_s']:.2f} s (CPU {best['cpu_s']:.2f} s), "
              f"{best['items']:,} items "
              f"({best['items_per_s']:,.0f}/s), {best['events']:,} SimPy events "
              f"({best['events_per_s']:,.0f}/s), {best['sim_tokens_per_s']:,.1f} simulated "
              f"tokens/s, SPEED speedup {best['speedup']:.2f}x, peak RSS {best['rss_mib']:,.0f} MiB")


if __name__ == "__main__":
    main()

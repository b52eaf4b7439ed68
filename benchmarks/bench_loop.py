"""Wall time of the looped workloads: every strategy of ouro_1p4b and huginn_3p5b on h100 and on
the RTX PRO 6000 workstation config (issue #28: at most 10 s each). ``--workers 2`` runs the
strategies in two processes, as ``speedsim run --workers 2`` does.

Reports per run: wall and CPU seconds of ``simulate``, work items, peak resident memory of the
process (each run in a fresh process, so the peak is its own), and the SPEED speedup.
``--grid`` instead prints the predicted speedups of issue #28's note: Raven at
d1 ∈ {1, 2, 4} x γ ∈ {3, 8, 14}, Ouro at d1 = 1 x γ ∈ {2, 3, 4}, with and without the second
proposal, on the workstation config (``--hw`` for another), at ``--new-tokens`` (default 128).
Not a test: numbers depend on the machine; closing notes quote them.

    .venv/bin/python benchmarks/bench_loop.py [--workers 2]
    .venv/bin/python benchmarks/bench_loop.py --grid [--hw hw_configs/h100.yaml]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload

HWS = ("hw_configs/h100.yaml", "hw_configs/rtx_pro_6000.yaml")
WORKLOADS = ("workloads/ouro_1p4b.yaml", "workloads/huginn_3p5b.yaml")
RAVEN, OURO = WORKLOADS[1], WORKLOADS[0]


def one_run(hw_path: str, wl_path: str, workers: int) -> dict:
    hw, wl = load_hardware(hw_path), load_workload(wl_path)
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate(hw, wl, workers=workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"hw": hw.name, "workload": wl.name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "strategies": len(result.runs),
            "items": sum(len(r.plan.items) for r in result.runs.values()),
            "rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "speedup": {k: round(v, 3) for k, v in result.summary["speedup"].items()}}


def speed_run(hw, wl_path: str, overrides: list) -> tuple[float, dict]:
    """SPEED's decode speedup over sequential for one workload variant, and its speculation."""
    wl = load_workload(wl_path, overrides + [("strategies.early_exit_spec", None),
                                             ("strategies.draft_spec", None),
                                             ("strategies.shallow", None)])
    summary = simulate(hw, wl).summary
    return summary["speedup"]["speed"], summary["strategies"]["speed"]["speculation"]


def grid(hw_path: str, new_tokens: int) -> None:
    """The issue's table: speedup per (shape, d1, γ), without / with the second proposal."""
    hw = load_hardware(hw_path)
    cases = [(RAVEN, d1, g) for d1 in (1, 2, 4) for g in (3, 8, 14)] + \
        [(OURO, 1, g) for g in (2, 3, 4)]
    print(f"hw {hw.name}, new_tokens {new_tokens}; second proposal at d2 = 2·d1 (Raven), "
          "d2 = 2 (Ouro), right for half of the first's misses (bernoulli 0.5)")
    for wl_path, d1, g in cases:
        base = [("generation.new_tokens", new_tokens), ("strategies.speed.exit_depth", d1),
                ("strategies.speed.acceptance", {"source": "accepted_length", "mean": g})]
        second = base + [("strategies.speed.second_depth", 2 * d1),
                         ("strategies.speed.second_acceptance",
                          {"source": "bernoulli", "rate": 0.5, "seed": 0})]
        (plain, spec), (with2, spec2) = speed_run(hw, wl_path, base), speed_run(hw, wl_path, second)
        print(json.dumps({"workload": wl_path.split("/")[1][:-5], "d1": d1, "gamma": g,
                          "speedup": round(plain, 2), "speedup_second": round(with2, 2),
                          "misses": spec["flushes"], "restarts": spec2["second_restarts"],
                          "rescued": spec2["second_rescued"]}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--hw", default="hw_configs/rtx_pro_6000.yaml")
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--one", nargs=2, metavar=("HW", "WORKLOAD"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.grid:
        return grid(args.hw, args.new_tokens)
    if args.one:
        return print(json.dumps(one_run(*args.one, args.workers)))
    for hw in HWS:
        for wl in WORKLOADS:  # a fresh process each: its own peak memory, no warm caches
            subprocess.run([sys.executable, __file__, "--workers", str(args.workers),
                            "--one", hw, wl], check=True)


if __name__ == "__main__":
    main()

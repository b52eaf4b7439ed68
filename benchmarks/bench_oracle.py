"""Production replay vs the tile-level reference engine on the shipped configs (DESIGN §5).

For every hardware config in ``hw_configs/`` × workload × strategy, runs
``speedsim.api.simulate`` once, replaying every strategy's work items on both
``speedsim.sim.engine.replay`` and ``speedsim.sim.reference.reference_replay``,
and prints their total cycles, the relative difference, the number of items
whose end cycle differs, and the wall seconds of each engine; then the worst
case. Issue 25 asks for agreement to the cycle everywhere (the suite checks every
shipped configuration but edge × llama7b_shape, minutes on the reference, and 500
random DAGs with both units contending; this covers the rest).

    .venv/bin/python benchmarks/bench_oracle.py [--workloads gen,llama7b_cycle_u8,strategies]
                                                [--hw edge,tiny] [--new-tokens 8]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import speedsim.api as api
from speedsim.config import load_hardware, load_workload
from speedsim.sim.engine import replay
from speedsim.sim.reference import reference_replay

ROOT = Path(__file__).resolve().parent.parent


def compare_runs(hw_file: Path, wl_file: Path, new_tokens: int) -> list[dict]:
    """One row per strategy: production and reference cycles, end cycles that differ, seconds."""
    hw = load_hardware(hw_file)
    wl = load_workload(wl_file, [("generation.new_tokens", new_tokens)])
    pairs = []

    def both(items, hw_, **kw):
        t0 = time.perf_counter()
        prod = replay(items, hw_, **kw)
        t1 = time.perf_counter()
        ref = reference_replay(items, hw_)
        pairs.append((prod, ref, t1 - t0, time.perf_counter() - t1))
        return prod

    saved, api.replay = api.replay, both
    try:
        result = api.simulate(hw, wl)
    finally:
        api.replay = saved
    return [_row(hw_file.stem, wl_file.stem, name, *pair) for name, pair in zip(result.runs, pairs)]


def _row(hw: str, wl: str, strategy: str, prod, ref, prod_s: float, ref_s: float) -> dict:
    ends = prod.items.end_cycle.to_numpy() != ref.items.end_cycle.to_numpy()
    return {"hw": hw, "workload": wl, "strategy": strategy, "production": prod.total_cycles,
            "reference": ref.total_cycles,
            "diff_pct": 100 * (prod.total_cycles - ref.total_cycles) / ref.total_cycles,
            "items": len(prod.items), "ends_differ": int(ends.sum()),
            "production_s": prod_s, "reference_s": ref_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="gen,llama7b_cycle_u8,strategies")
    ap.add_argument("--hw", default=",".join(sorted(p.stem for p in (ROOT / "hw_configs").glob("*.yaml"))))
    ap.add_argument("--new-tokens", type=int, default=8)
    args = ap.parse_args()
    print(f"{'hw':<11} {'workload':<14} {'strategy':<16} {'production':>12} {'reference':>12} "
          f"{'diff %':>8} {'items':>6} {'ends≠':>6} {'prod s':>7} {'ref s':>7}", flush=True)
    rows = []
    for wl in args.workloads.split(","):
        for hw in args.hw.split(","):
            for r in compare_runs(ROOT / "hw_configs" / f"{hw}.yaml",
                                  ROOT / "workloads" / f"{wl}.yaml", args.new_tokens):
                rows.append(r)
                print(f"{r['hw']:<11} {r['workload']:<14} {r['strategy']:<16} {r['production']:>12} "
                      f"{r['reference']:>12} {r['diff_pct']:>8.4f} {r['items']:>6} "
                      f"{r['ends_differ']:>6} {r['production_s']:>7.2f} {r['reference_s']:>7.2f}",
                      flush=True)
    worst = max(rows, key=lambda r: abs(r["diff_pct"]))
    print(f"worst: {worst['diff_pct']:+.4f}% ({worst['hw']} × {worst['workload']} × "
          f"{worst['strategy']}); items with a different end cycle: "
          f"{sum(r['ends_differ'] for r in rows)} of {sum(r['items'] for r in rows)}")


if __name__ == "__main__":
    main()

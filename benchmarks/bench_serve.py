"""``speedsim serve``: the iteration-cost memo's error against replaying every iteration, the
speed-up it buys, and the wall time of the 7B serving run the issue sets a target for.

1. Memo error: each shipped traffic example (``EXAMPLES``: traffic file, hardware and
   workload it is written for; the 7B one cut to its first ``--exact-requests``
   requests, as replaying all 1,000 requests' iterations takes tens of minutes) is
   served with every iteration replayed and the memo's cost of each iteration recorded
   beside it (``serve(..., audit=True)``): per strategy the largest and mean |relative
   error| of one iteration's cycles and the error of their sum (the issue bounds the
   memo's error at 1 %). Served again through the memo alone, the summary metrics
   (TTFT, TPOT, end-to-end p50/p99, throughput, energy per token) are compared too:
   their difference also holds the schedule's sensitivity (an iteration a little
   shorter admits a request one boundary earlier), large on a trace of a dozen requests.
   ``memo_speedup``: the audited run's wall time over the memo's (the audit also pays
   the memo's own replays, so this understates it a little).
2. Speed: ``traffic/llama7b_poisson.yaml`` (1,000 requests, the 7B cycle-shared shape on
   h100, near sequential decoding's saturation) with every strategy of
   ``workloads/llama7b_cycle_u8_strategies.yaml``, through the memo (target ≤ 60 s on the
   2-core machine, aim 20 s), with iterations and replays (of iteration parts at the
   memo's grid corners, ``speedsim.serve.memo``) per strategy; the memo is shared across
   strategies, so a later strategy replays less.

Not a test: wall times depend on the machine. ``host_loop_s`` (``bench_cli``) brackets them.

    .venv/bin/python benchmarks/bench_serve.py [--only error|speed] [--exact-requests N]
                                               [--speed-requests N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_cli import host_loop_s  # noqa: E402

from speedsim.config.hw import load_hardware  # noqa: E402
from speedsim.config.traffic import load_traffic  # noqa: E402
from speedsim.config.workload import load_workload  # noqa: E402
from speedsim.serve import serve  # noqa: E402

EXAMPLES = [("traffic/poisson.yaml", "hw_configs/edge.yaml", "workloads/strategies.yaml"),
            ("traffic/trace.yaml", "hw_configs/edge.yaml", "workloads/strategies.yaml"),
            ("traffic/llama7b_poisson.yaml", "hw_configs/h100.yaml",
             "workloads/llama7b_cycle_u8_strategies.yaml")]
METRICS = [("ttft_s", "p50"), ("ttft_s", "p99"), ("tpot_s", "p50"), ("tpot_s", "p99"),
           ("e2e_s", "p50"), ("e2e_s", "p99"), ("throughput_tokens_per_s", None),
           ("energy_per_token_j", None)]


def value(entry: dict, key: str, q: str | None) -> float:
    return entry[key][q] if q else entry[key]


def memo_error(traffic: str, hw: str, wl: str, requests: int | None) -> dict:
    """The memo against replaying every iteration: per iteration (``audit``: the same
    iterations costed both ways) and on the summary metrics (two runs, whose schedules
    may part: an iteration a little shorter admits a request one boundary earlier)."""
    over = [("requests", requests)] if requests else []
    args = load_hardware(ROOT / hw), load_workload(ROOT / wl), load_traffic(ROOT / traffic, over)
    t0 = time.perf_counter()
    memo = serve(*args).summary["strategies"]
    t1 = time.perf_counter()
    audited = serve(*args, audit=True).summary["strategies"]
    t2 = time.perf_counter()
    metrics = {n: max(abs(value(memo[n], k, q) / value(audited[n], k, q) - 1) for k, q in METRICS)
               for n in memo}
    pct = lambda x: f"{x * 100:.3f} %"
    return {"traffic": traffic, "requests": requests or "all", "memo_s": round(t1 - t0, 2),
            "every_iteration_replayed_s": round(t2 - t1, 2),
            "memo_speedup": round((t2 - t1) / (t1 - t0), 1),
            "per_iteration": {n: {"iterations": a["memo"]["audit"]["iterations"],
                                  "corner_replays": a["memo"]["audit"]["corner_replays"],
                                  "max": pct(a["memo"]["audit"]["max_abs_rel_error"]),
                                  "mean": pct(a["memo"]["audit"]["mean_abs_rel_error"]),
                                  "total": pct(a["memo"]["audit"]["total_rel_error"])}
                              for n, a in audited.items()},
            "summary_metrics_max_rel_difference": {n: pct(e) for n, e in metrics.items()}}


def speed(requests: int | None) -> dict:
    traffic, hw, wl = EXAMPLES[2]
    over = [("requests", requests)] if requests else []
    args = load_hardware(ROOT / hw), load_workload(ROOT / wl), load_traffic(ROOT / traffic, over)
    t0, c0 = time.perf_counter(), time.process_time()
    result = serve(*args)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = result.summary["strategies"]
    return {"run": f"{traffic} on {hw}, {wl}", "requests": requests or "all",
            "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
            "per_strategy": {n: {"iterations": e["memo"]["iterations"],
                                 "replays": e["memo"]["replays"],
                                 "throughput_vs_sequential": round(e.get("throughput_vs_sequential", 1.0), 3)}
                             for n, e in s.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=("error", "speed"))
    p.add_argument("--speed-requests", type=int, default=None,
                   help="requests of the 7B example served for the speed (default all 1,000)")
    p.add_argument("--exact-requests", type=int, default=60,
                   help="requests of the 7B example served for the error (default 60)")
    args = p.parse_args()
    report = {"host_loop_s": round(host_loop_s(), 3)}
    if args.only in (None, "error"):
        report["memo_error"] = [memo_error(t, h, w, args.exact_requests if "7b" in t else None)
                                for t, h, w in EXAMPLES]
    if args.only in (None, "speed"):
        report["speed"] = speed(args.speed_requests)
    report["host_loop_s_after"] = round(host_loop_s(), 3)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

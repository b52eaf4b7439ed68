"""``speedsim serve``: the iteration-cost memo's error against replaying every iteration, the
speed-up it buys, and the wall time of the 7B serving run the issue sets a target for.

1. Memo error: each shipped traffic example (``EXAMPLES``: traffic file, hardware and
   workload it is written for; the 7B one cut to its first ``--exact-requests``
   requests, as replaying all 1,000 requests' iterations takes tens of minutes), two ways:
   ``same_schedule``, the memo's own error: its run with every iteration also replayed
   (``serve(..., audit=True)``) and the same iteration sequence (same admissions, same
   batches) retimed from the replayed costs: per strategy the summed cycles' error, the
   largest and mean |error| of one iteration, and the worst of the summary metrics
   (``speedsim.serve.AUDITED_METRICS``: TTFT, TPOT, end-to-end p50/p90/p99/mean,
   throughput, goodput, mean batch, energy per token); ``two_runs``, the memo's run
   against a separate run with every iteration replayed: the memo's error plus the
   schedule's sensitivity to it (an iteration a little shorter admits a request one
   boundary earlier; large where TTFT is mostly the wait for the running iteration).
   The issue bounds the memo's error at 1 %. ``memo_speedup``: the replayed run's wall
   time over the memo's.
2. Speed: ``traffic/llama7b_poisson.yaml`` (1,000 requests, the 7B cycle-shared shape on
   h100, near sequential decoding's saturation) with every strategy of
   ``workloads/llama7b_cycle_u8_strategies.yaml``, through the memo (target ≤ 60 s on the
   2-core machine, aim 20 s), on the default workers (``speedsim serve``'s: one per
   strategy, at most one per core, dealt by ``speedsim.serve.WORK``) and on one, the two
   results checked equal, with iterations and replays (of iteration parts at the memo's
   grid corners, ``speedsim.serve.memo``) per strategy, each strategy with its own memo.
   2026-12-07, 2-core shared host (host loop 0.47 s before, 0.28 s after): 28.0 s on two
   workers (53 CPU seconds), 46.8 s on one; ``speedsim serve`` timed whole by
   ``farm-bench``, median of 3 runs each paired with the code before (57.3 s): 24.3 s on
   two workers (24.1 to 24.9 s, 0.42 times the code before), 43.4 s on one (0.83 times).
   docs/serving.md has the breakdown.

Not a test: wall times depend on the machine. ``host_loop_s`` (``bench_cli``) brackets them.

    .venv/bin/python benchmarks/bench_serve.py [--only error|speed] [--exact-requests N]
                                               [--speed-requests N]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_cli import host_loop_s  # noqa: E402

from speedsim.config.hw import load_hardware  # noqa: E402
from speedsim.config.traffic import load_traffic  # noqa: E402
from speedsim.config.workload import load_workload  # noqa: E402
from speedsim.api import strategy_list  # noqa: E402
from speedsim.forking import default_workers  # noqa: E402
from speedsim.serve import AUDITED_METRICS, metric, serve  # noqa: E402

EXAMPLES = [("traffic/poisson.yaml", "hw_configs/edge.yaml", "workloads/strategies.yaml"),
            ("traffic/trace.yaml", "hw_configs/edge.yaml", "workloads/strategies.yaml"),
            ("traffic/llama7b_poisson.yaml", "hw_configs/h100.yaml",
             "workloads/llama7b_cycle_u8_strategies.yaml")]


def memo_error(traffic: str, hw: str, wl: str, requests: int | None) -> dict:
    """The memo against replaying every iteration, two ways: ``same_schedule`` (the memo's
    error: ``serve(..., audit=True)``, the memo's run with every iteration also replayed
    and the same iteration sequence retimed from the replayed costs) and ``two_runs`` (the
    memo's run against a run with every iteration replayed, ``exact``, whose schedule may
    part: an iteration a little shorter admits a request one boundary earlier, so this
    also holds the schedule's sensitivity)."""
    over = [("requests", requests)] if requests else []
    args = load_hardware(ROOT / hw), load_workload(ROOT / wl), load_traffic(ROOT / traffic, over)
    t0 = time.perf_counter()
    memo = serve(*args).summary["strategies"]
    t1 = time.perf_counter()
    exact = serve(*args, exact=True).summary["strategies"]
    t2 = time.perf_counter()
    audited = serve(*args, audit=True).summary["strategies"]
    pct = lambda x: f"{x * 100:+.3f} %"
    return {"traffic": traffic, "requests": requests or "all", "memo_s": round(t1 - t0, 2),
            "every_iteration_replayed_s": round(t2 - t1, 2),
            "memo_speedup": round((t2 - t1) / (t1 - t0), 1),
            "same_schedule": {n: same_schedule(a["memo"]["audit"], pct)
                              for n, a in audited.items()},
            "two_runs": {n: two_runs(memo[n], exact[n], pct) for n in memo}}


def same_schedule(audit: dict, pct) -> dict:
    """Per strategy: iterations, the summed cycles' error, the largest and mean |error| of
    one iteration, its mean signed error (a bias), and the worst summary metric's error
    (``AUDITED_METRICS``)."""
    name, worst = max(audit["summary_rel_error"].items(), key=lambda kv: abs(kv[1]))
    return {"iterations": audit["iterations"], "total": pct(audit["total_rel_error"]),
            "iteration_max_abs": f"{audit['max_abs_rel_error'] * 100:.3f} %",
            "iteration_mean_abs": f"{audit['mean_abs_rel_error'] * 100:.3f} %",
            "iteration_mean_signed": f"{audit['mean_rel_error'] * 100:+.5f} %",
            "summary_worst": f"{name} {pct(worst)}"}


def two_runs(memo: dict, exact: dict, pct) -> dict:
    """The worst summary metric's relative difference, memo run / exact run − 1."""
    diffs = {n: metric(memo, n) / metric(exact, n) - 1 for n in AUDITED_METRICS}
    name, worst = max(diffs.items(), key=lambda kv: abs(kv[1]))
    return {"summary_worst": f"{name} {pct(worst)}"}


def speed(requests: int | None) -> dict:
    """The 7B run served with the default workers (``speedsim serve``'s: one per strategy, at
    most one per core, ``serve.WORK`` dealing them) and on one worker; the same result."""
    traffic, hw, wl = EXAMPLES[2]
    over = [("requests", requests)] if requests else []
    args = load_hardware(ROOT / hw), load_workload(ROOT / wl), load_traffic(ROOT / traffic, over)
    workers = default_workers(len(strategy_list(args[1], None)))
    report: dict = {"run": f"{traffic} on {hw}, {wl}", "requests": requests or "all"}
    summaries = []
    for n in (workers, 1):
        t0, c0 = time.perf_counter(), cpu_s()
        result = serve(*args, workers=n)
        wall, cpu = time.perf_counter() - t0, cpu_s() - c0
        report[f"workers_{n}"] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}
        summaries.append(result.summary)
    assert summaries[0] == summaries[-1], "the workers changed the result"
    s = result.summary["strategies"]
    report["per_strategy"] = {n: {"iterations": e["memo"]["iterations"],
                                  "replays": e["memo"]["replays"],
                                  "throughput_vs_sequential": round(e.get("throughput_vs_sequential", 1.0), 3)}
                              for n, e in s.items()}
    return report


def cpu_s() -> float:
    """CPU seconds of this process and of its finished children (the forked workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


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

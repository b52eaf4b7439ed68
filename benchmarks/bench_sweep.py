"""Sweep throughput: the same sweep with 1 and 2 worker processes, and the speedup.

Uses the real point function (``speedsim.sweep.point.simulate_point`` on
hw_configs/edge.yaml + workloads/gen.yaml, shortened to a few new tokens)
when it imports and the base configs exist; otherwise the test fake with a
fixed 0.5 s sleep per point (a short simulation), which measures the executor
alone. Wall times include starting the worker processes (about a second on a
loaded 2-core machine: each spawned worker imports speedsim afresh).
Target: 2 workers at least 1.7x faster than 1.

    python benchmarks/bench_sweep.py [--points 64] [--fake] [--check]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.sweep_fakes, inherited by spawned workers
# speedsim is imported inside main(): spawned workers re-import this module, and
# should not pay for pandas and the runner they never use.

REAL = "speedsim.sweep.point:simulate_point"
FAKE = "tests.sweep_fakes:slow_point"
FAKE_SLEEP_S = "0.5"
TARGET = 1.7


def _axes(points: int) -> dict:
    bandwidths = [round(6.4 * (k + 1), 1) for k in range(max(1, -(-points // 8)))]  # 8 points each
    return {"hw.dram.bandwidth_gb_s": bandwidths,
            "hw.buffers.weight.size_kib": [64, 128, 256, 512],
            "workload.generation.prompt_tokens": [16, 32]}


def _write_spec(folder: Path, points: int, fake: bool) -> Path:
    if fake:
        from tests.sweep_fakes import BASE_HW, BASE_WORKLOAD
        (folder / "hw.yaml").write_text(yaml.safe_dump(BASE_HW))
        (folder / "wl.yaml").write_text(yaml.safe_dump(BASE_WORKLOAD))
        spec = {"hw": "hw.yaml", "workload": "wl.yaml"}
    else:
        spec = {"hw": str(ROOT / "hw_configs/edge.yaml"), "workload": str(ROOT / "workloads/gen.yaml"),
                "fixed": {"workload.generation.new_tokens": 16,
                          "workload.generation.prompt": None}}  # prompt_tokens is an axis
    spec.update(mode="grid", strategies=["sequential", "speed"], axes=_axes(points))
    path = folder / "bench.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _real_available() -> bool:
    from speedsim.config.errors import ConfigError
    from speedsim.sweep.executor import resolve_point_fn

    if not (ROOT / "hw_configs/edge.yaml").exists() or not (ROOT / "workloads/gen.yaml").exists():
        return False
    try:
        resolve_point_fn(REAL)
    except ConfigError:
        return False
    return True


def main() -> int:
    from speedsim.sweep.runner import run_sweep
    from speedsim.sweep.spec import load_sweep
    from speedsim.report.store import load_results

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=64, help="at least this many points (default 64)")
    ap.add_argument("--fake", action="store_true", help="use the sleeping fake even if the real one imports")
    ap.add_argument("--check", action="store_true", help=f"exit 1 when the speedup is below {TARGET}x")
    args = ap.parse_args()
    fake = args.fake or not _real_available()
    os.environ.setdefault("SPEEDSIM_FAKE_SLEEP_S", FAKE_SLEEP_S)
    with tempfile.TemporaryDirectory() as tmp:
        sweep = load_sweep(_write_spec(Path(tmp), args.points, fake))
        walls, frames = {}, {}
        for workers in (1, 2):
            out = Path(tmp) / f"w{workers}.csv"
            start = time.perf_counter()
            summary = run_sweep(sweep, out, workers=workers, point_fn=FAKE if fake else REAL,
                                progress=False)
            walls[workers] = time.perf_counter() - start
            frames[workers] = load_results(out)
            print(f"{'fake' if fake else 'real'} point fn, {summary.total} points, {workers} worker(s): "
                  f"{walls[workers]:.2f} s, {summary.total / walls[workers]:.2f} points/s, "
                  f"{summary.failed} failed")
        same = frames[1].equals(frames[2])
    speedup = walls[1] / walls[2]
    met = "met" if speedup >= TARGET else "NOT met"
    print(f"speedup 2 vs 1 workers: {speedup:.2f}x (target {TARGET}x {met}); identical rows: {same}")
    return 1 if args.check and (speedup < TARGET or not same) else 0


if __name__ == "__main__":
    sys.exit(main())

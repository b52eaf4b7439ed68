"""The runs as a user types them: ``speedsim run HW WL --out DIR``, each in a fresh process.

Reports per run: wall seconds, CPU seconds and peak resident memory of the
process (``os.wait4``), and the bytes it wrote (everything under DIR), with the
default timeline and with ``--timeline none``. Not a test: numbers depend on the
machine; closing notes quote them.

    .venv/bin/python benchmarks/bench_cli.py [--only gen|strategies|7b|7b_h100|7b_dc]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_run import RUNS  # the same runs as bench_run.py, typed at the command line

ROOT = Path(__file__).resolve().parent.parent


def written_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def run(hw: str, wl: str, extra: list[str], cache: Path) -> dict:
    """One ``speedsim run`` in a child process: wall, CPU, peak RSS, bytes written."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "speedsim", "run", hw, wl, "--out", str(out),
               "--cache-dir", str(cache), *extra]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(cmd)} failed")
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                "rss_mib": usage.ru_maxrss / 1024, "written_mib": written_bytes(out) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted(RUNS))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        for name, (hw, wl) in RUNS.items():
            if args.only and name != args.only:
                continue
            for extra in ([], ["--timeline", "none"]):
                r = run(hw, wl, extra, Path(cache))
                print(f"{name:10s} {' '.join(extra) or '(default)':16s} wall {r['wall_s']:6.2f} s, "
                      f"CPU {r['cpu_s']:6.2f} s, peak RSS {r['rss_mib']:6.0f} MiB, "
                      f"written {r['written_mib']:6.1f} MiB", flush=True)


if __name__ == "__main__":
    main()

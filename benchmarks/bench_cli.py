"""The runs as a user types them: ``speedsim run HW WL --out DIR``, each in a fresh process.

Reports per run: wall seconds, CPU seconds (the process and its workers,
``os.wait4``), peak resident memory of the process tree (the process and its
worker processes, summed, sampled every 25 ms from ``/proc`` by a thread while the
wait for the exit blocks; and the largest
single process), and the bytes it wrote (everything under DIR), with the
default timeline and with ``--timeline none``. ``--workers N`` is passed on. Not a test:
numbers depend on the machine, and on a shared one vary from run to run: each is run ``--repeat`` times
(after one untimed run that fills the reference cache) and the minimum and median
wall times are reported. Closing notes quote them. Each batch is bracketed by the
seconds of a fixed pure-Python loop (``host_loop_s``), so that numbers from a busy
host can be told from a slower build: on the 2-core development machine, quiet, it
takes about 0.25 s.

``newcomer`` is the default run exactly as a newcomer types it, ``speedsim run
hw_configs/edge.yaml workloads/gen.yaml`` (as ``python -m speedsim``, which runs the same
``console`` as the executable, from this checkout; ``--vs CHECKOUT`` pairs it with another
checkout's, run for run): no ``--out``, no reference cache (the NumPy reference decode runs every time), the table printed. It
reports, besides the wall and CPU seconds, the seconds the interpreter takes to import
``speedsim.cli`` alone (``-X importtime``'s total, the run's fixed cost). Issue 25's bar:
at most 1.0 s wall on the quiet 2-core machine.

    .venv/bin/python benchmarks/bench_cli.py [--only newcomer|gen|strategies|7b|7b_h100|7b_dc]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_run import RUNS  # the same runs as bench_run.py, typed at the command line

ROOT = Path(__file__).resolve().parent.parent


def host_loop_s() -> float:
    """Seconds of a fixed CPU-bound loop (ten million additions) in this interpreter: the
    host's speed at the moment, for reading the wall times beside it."""
    t0 = time.perf_counter()
    total = 0
    for i in range(10_000_000):
        total += i
    return time.perf_counter() - t0


def written_bytes(out: Path) -> int:
    return sum(p.stat().st_size for p in out.rglob("*") if p.is_file())


def tree_rss_kib(pid: int) -> int:
    """Resident KiB of ``pid`` and its descendants now (0 for a process already gone)."""
    try:
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").open()
                   if line.startswith("VmRSS:"))
        children = [int(c) for task in Path(f"/proc/{pid}/task").iterdir()
                    for c in (task / "children").read_text().split()]
    except (OSError, StopIteration):
        return 0
    return rss + sum(tree_rss_kib(c) for c in children)


def wait_sampling(proc: subprocess.Popen) -> tuple[int, object, int, float]:
    """``os.wait4`` on ``proc``, its tree's memory sampled meanwhile by a thread: (status,
    rusage, peak KiB, the ``perf_counter`` at its exit). The wait blocks, so the exit is
    seen at once, not at the next 25 ms sample."""
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.wait(0.025):
            peak[0] = max(peak[0], tree_rss_kib(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    ended = time.perf_counter()
    done.set()
    sampler.join()
    return status, usage, peak[0], ended


def run(hw: str, wl: str, extra: list[str], cache: Path) -> dict:
    """One ``speedsim run`` in a child process: wall, CPU, peak RSS, bytes written."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cmd = [sys.executable, "-m", "speedsim", "run", hw, wl, "--out", str(out),
               "--cache-dir", str(cache), *extra]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL)
        status, usage, tree_kib, ended = wait_sampling(proc)
        wall = ended - t0
        if os.waitstatus_to_exitcode(status):
            raise SystemExit(f"{' '.join(cmd)} failed")
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime,
                "tree_rss_mib": tree_kib / 1024, "rss_mib": usage.ru_maxrss / 1024,
                "written_mib": written_bytes(out) / 2**20}


NEWCOMER = ("run", "hw_configs/edge.yaml", "workloads/gen.yaml")


def newcomer_run(checkout: Path = ROOT) -> dict:
    """One ``speedsim run hw_configs/edge.yaml workloads/gen.yaml`` as typed, from
    ``checkout`` (its ``speedsim`` first on the path): wall, CPU."""
    cmd = [sys.executable, "-m", "speedsim", *NEWCOMER]
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=checkout, stdout=subprocess.DEVNULL, env=env)
    status, usage, tree_kib, ended = wait_sampling(proc)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{' '.join(cmd)} failed")
    return {"wall_s": ended - t0, "cpu_s": usage.ru_utime + usage.ru_stime,
            "tree_rss_mib": tree_kib / 1024}


def import_s() -> float:
    """Seconds to import ``speedsim.cli`` in a fresh interpreter (``-X importtime``, summed)."""
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import speedsim.cli"],
                         cwd=ROOT, capture_output=True, text=True, check=True).stderr
    return sum(int(line.split("|")[0].split(":")[1]) for line in err.splitlines()
               if line.startswith("import time:") and line.split("|")[0].split(":")[1].strip().isdigit()) / 1e6


def newcomer(repeat: int) -> None:
    newcomer_run()  # untimed: the byte-compiled files and the OS caches warm
    before = host_loop_s()
    rs = [newcomer_run() for _ in range(repeat)]
    imports = sorted(import_s() for _ in range(repeat))
    after = host_loop_s()
    walls = sorted(r["wall_s"] for r in rs)
    print(f"{'newcomer':10s} {'(as typed)':16s} wall min {walls[0]:6.2f} s, "
          f"median {statistics.median(walls):6.2f} s, CPU {statistics.median(r['cpu_s'] for r in rs):6.2f} s, "
          f"peak RSS {max(r['tree_rss_mib'] for r in rs):6.0f} MiB (all processes); "
          f"import speedsim.cli median {statistics.median(imports):.2f} s; "
          f"host loop {before:.2f} → {after:.2f} s", flush=True)


def newcomer_vs(other: Path, repeat: int) -> None:
    """The newcomer's run from this checkout (A) and from ``other`` (B, e.g. main's), in
    turn A B A B …, and the ratios A/B pair by pair: on a shared host whose speed drifts,
    the median ratio says more than either median time."""
    newcomer_run(), newcomer_run(other)  # untimed: byte-compiled files, OS caches
    pairs = [(newcomer_run(), newcomer_run(other)) for _ in range(repeat)]
    for key in ("wall_s", "cpu_s"):
        a, b = [p[0][key] for p in pairs], [p[1][key] for p in pairs]
        ratios = sorted(x / y for x, y in zip(a, b))
        print(f"newcomer {key[:-2]:4s} A median {statistics.median(a):5.2f} s, B median "
              f"{statistics.median(b):5.2f} s, A/B pair by pair: median "
              f"{statistics.median(ratios):.3f} (min {ratios[0]:.3f}, max {ratios[-1]:.3f}; "
              f"{repeat} pairs)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", choices=sorted([*RUNS, "newcomer"]))
    ap.add_argument("--workers", type=int)
    ap.add_argument("--repeat", type=int, default=3, help="timed runs of each (default 3)")
    ap.add_argument("--vs", type=Path, metavar="CHECKOUT",
                    help="newcomer only: pair this checkout's run with CHECKOUT's (A/B ratios)")
    args = ap.parse_args()
    if args.vs:
        newcomer_vs(args.vs.resolve(), args.repeat)
        return
    workers = ["--workers", str(args.workers)] if args.workers else []
    subprocess.run([sys.executable, "-m", "compileall", "-q", "speedsim"], cwd=ROOT, check=True)
    if args.only in (None, "newcomer"):
        newcomer(args.repeat)
    with tempfile.TemporaryDirectory() as cache:
        for name, (hw, wl) in RUNS.items():
            if args.only and name != args.only:
                continue
            run(hw, wl, ["--timeline", "none"], Path(cache))  # untimed: fills the reference cache
            for extra in ([], ["--timeline", "none"]):
                before = host_loop_s()
                rs = [run(hw, wl, [*extra, *workers], Path(cache)) for _ in range(args.repeat)]
                after = host_loop_s()
                walls = sorted(r["wall_s"] for r in rs)
                cpu = statistics.median(r["cpu_s"] for r in rs)
                print(f"{name:10s} {' '.join(extra) or '(default)':16s} wall min {walls[0]:6.2f} s, "
                      f"median {statistics.median(walls):6.2f} s, CPU {cpu:6.2f} s, "
                      f"peak RSS {max(r['tree_rss_mib'] for r in rs):6.0f} MiB (all processes; "
                      f"largest {max(r['rss_mib'] for r in rs):.0f}), "
                      f"written {rs[0]['written_mib']:6.1f} MiB; host loop {before:.2f} → "
                      f"{after:.2f} s", flush=True)


if __name__ == "__main__":
    main()

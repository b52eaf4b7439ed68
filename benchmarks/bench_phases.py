"""CPU seconds of each phase of the default run, ``speedsim run hw_configs/edge.yaml
workloads/gen.yaml``, taken one after another in one process (``--workers 1``).

The command overlaps some phases on several processes (the reference decode runs
ahead on its own while the simulator is imported and the trace built; the strategies
run on workers at once), so its wall time is not their sum: these are the costs to
cut, not the timeline. Each phase is the CPU time (``time.process_time``) spent inside
one function of the run's own code path, found by wrapping it for the run; a phase
nested in another is counted in both (``replay`` inside ``strategy job``, ``weights``
inside ``reference decode``). ``import`` is that of a fresh interpreter running
``import speedsim.cli, speedsim.api, speedsim.report.table`` (what the command imports
before its first strategy). Not a test: numbers depend on
the machine; on a shared one compare medians taken in the same minutes.

    .venv/bin/python benchmarks/bench_phases.py [--repeat 5] [WORKLOAD]
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORTS = "import speedsim.cli, speedsim.api, speedsim.report.table"

# (module, attribute, phase): the functions whose CPU time is a phase of the run
PHASES = [
    ("speedsim.cli.run", "load_configs", "configs"),
    ("speedsim.api", "cached_generate", "reference decode"),
    ("speedsim.api", "load_params", "  weights"),
    ("speedsim.api", "strategy_input", "trace"),
    ("speedsim.api", "_measured_run", "strategy job"),
    ("speedsim.api", "replay", "  replay"),
    ("speedsim.api", "strategy_metrics", "  metrics"),
    ("speedsim.api", "build_summary", "summary"),
    ("speedsim.report.table", "print_summary", "table"),
]


def import_cpu_s() -> float:
    out = subprocess.run([sys.executable, "-c", f"import time; {IMPORTS}; "
                          "print(time.process_time())"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return float(out.stdout)


def timed(spent: dict[str, float], phase: str, func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        t0 = time.process_time()
        try:
            return func(*args, **kwargs)
        finally:
            spent[phase] += time.process_time() - t0
    return wrapper


def run_once(workload: str) -> dict[str, float]:
    """One run in this process: each phase's CPU seconds."""
    import importlib

    from speedsim.cli import main
    spent: dict[str, float] = defaultdict(float)
    originals = []
    for module, name, phase in PHASES:
        mod = importlib.import_module(module)
        originals.append((mod, name, getattr(mod, name)))
        setattr(mod, name, timed(spent, phase, getattr(mod, name)))
    t0 = time.process_time()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            main(["run", "hw_configs/edge.yaml", workload, "--workers", "1"])
    finally:
        for mod, name, func in originals:
            setattr(mod, name, func)
    spent["whole command"] = time.process_time() - t0
    return spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workload", nargs="?", default="workloads/gen.yaml")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    runs = [run_once(args.workload) for _ in range(args.repeat + 1)][1:]  # first: warm-up
    imports = [import_cpu_s() for _ in range(args.repeat)]
    print(f"{'phase':20s} CPU s (median of {args.repeat}; min)")
    print(f"{'import':20s} {statistics.median(imports):6.3f}  {min(imports):6.3f}")
    for phase in [*dict.fromkeys(p for _, _, p in PHASES), "whole command"]:
        values = [r.get(phase, 0.0) for r in runs]
        print(f"{phase:20s} {statistics.median(values):6.3f}  {min(values):6.3f}")


if __name__ == "__main__":
    main()

"""Writes the pinned results: tests/data/golden_edge_gen.json (the golden end-to-end run,
tests/test_golden.py) and tests/data/shipped_results.json (every shipped workload and
hardware at 8 new tokens: cycles and energy per strategy, tests/test_shipped_results.py).

The run is ``speedsim run hw_configs/edge.yaml workloads/gen.yaml`` as shipped.
When the engine or the model changes a result on purpose, regenerate with one
command from the repository root and commit the new file with the change:

    .venv/bin/python tests/make_golden.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden_edge_gen.json"
SHIPPED = ROOT / "tests" / "data" / "shipped_results.json"
HW, WORKLOAD = "hw_configs/edge.yaml", "workloads/gen.yaml"
BIG_WORKLOAD_HW = {"llama7b_cycle_u8": "hw_configs/datacenter.yaml",  # edge takes too long
                   "llama7b_cycle_u8_strategies": "hw_configs/datacenter.yaml",
                   "llama2_7b": "hw_configs/datacenter.yaml",
                   "ouro_1p4b": "hw_configs/rtx_pro_6000.yaml",  # the looped models: on the
                   "huginn_3p5b": "hw_configs/rtx_pro_6000.yaml"}  # GPU LoopSpec measured


def shipped_cases() -> list[tuple[str, str]]:
    """(hw, workload) paths: every shipped workload (on edge), gen on every shipped hw."""
    wls = sorted(p.stem for p in (ROOT / "workloads").glob("*.yaml"))
    hws = sorted(p.stem for p in (ROOT / "hw_configs").glob("*.yaml"))
    cases = {(BIG_WORKLOAD_HW.get(w, HW), f"workloads/{w}.yaml") for w in wls}
    cases |= {(f"hw_configs/{h}.yaml", WORKLOAD) for h in hws}
    return sorted(cases)


def measured(hw: str, workload: str, overrides: tuple = ()) -> dict[str, tuple[int, float]]:
    """(cycles, energy J to nine significant digits) per strategy, at 8 new tokens
    (``overrides``: more ``(key path, value)`` pairs for the workload)."""
    from speedsim.api import simulate
    from speedsim.config import load_hardware, load_workload

    result = simulate(load_hardware(ROOT / hw),
                      load_workload(ROOT / workload,
                                    [("generation.new_tokens", 8), *overrides]))
    return {n: (m["cycles"], float(f"{m['energy_j']['total']:.9g}"))
            for n, m in result.summary["strategies"].items()}


def strategy_record(run: Any) -> dict[str, Any]:
    """What is pinned for one strategy: cycles, token counts, bytes, MACs, energy parts."""
    from speedsim.metrics.core import commit_cycles

    end = run.sim.items["end_cycle"].to_numpy()
    ttft = int(end[run.plan.prefill_last_item])
    commits = commit_cycles(run.plan, run.sim.items)
    m = run.metrics
    return {
        "total_cycles": int(run.sim.total_cycles),
        "ttft_cycles": ttft,
        "decode_cycles": int(commits[-1]) - ttft,
        "commit_cycles": [int(c) for c in commits],
        "committed_tokens": None if run.committed is None else run.committed.tolist(),
        "launched": run.plan.launched or len(commits),
        "dram_bytes_by_kind": m["dram_bytes_by_kind"],
        "macs": m["macs"],
        "vector_ops": m["vector_ops"],
        "energy_j": m["energy_j"],
    }


def golden() -> dict[str, Any]:
    """Simulate the golden run (from the repository root) and return what is pinned."""
    from speedsim.api import simulate
    from speedsim.config import load_hardware, load_workload

    result = simulate(load_hardware(ROOT / HW), load_workload(ROOT / WORKLOAD))
    return {"hw": HW, "workload": WORKLOAD,
            "strategies": {n: strategy_record(r) for n, r in result.runs.items()}}


def main() -> int:
    GOLDEN.write_text(json.dumps(golden(), indent=1) + "\n")
    shipped = {f"{hw}|{wl}": measured(hw, wl) for hw, wl in shipped_cases()}
    SHIPPED.write_text(json.dumps(shipped, indent=1) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)} and {SHIPPED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

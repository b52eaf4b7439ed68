"""Writes tests/data/golden_edge_gen.json: the golden end-to-end run pinned by tests/test_golden.py.

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
HW, WORKLOAD = "hw_configs/edge.yaml", "workloads/gen.yaml"


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
    print(f"wrote {GOLDEN.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""speedsim against the end-to-end decode runs measured by ``e2e.py`` (no GPU needed).

For every case of ``cases.py`` measured on a GPU (``results/<gpu>/e2e.csv``), simulate the
same workload on ``hw_configs/<gpu>.yaml`` and compare the decode time of the 31 tokens
after the first, sequentially and by SPEED, and SPEED's speedup. Beside the whole
run, SPEED is compared with the sum of its stage steps each replayed alone (``steps.csv``:
``speed_steps``, ``err_speed_steps``), which the whole run exceeds by a few µs per step
(docs/calibration.md §7). Run
``python benchmarks/gpu/validate.py [GPU ...]`` for the table (docs/calibration.md §7);
``tests/test_gpu_e2e.py`` asserts the bounds on the same rows.
"""

from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def _cases():
    spec = importlib.util.spec_from_file_location("gpu_cases", HERE / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def measured(gpu: str) -> pd.DataFrame:
    """One row per case: measured sequential and SPEED decode ms (median of the runs)."""
    runs = sorted((HERE / "results" / gpu).glob("**/e2e.csv"))
    df = pd.concat([pd.read_csv(p) for p in runs])
    df = df.groupby(["shape", "batch", "ctx", "strategy"], as_index=False).ms.median()
    return df.pivot_table(index=["shape", "batch", "ctx"], columns="strategy",
                          values="ms").reset_index()


def simulated(gpu: str, shape: str, batch: int, ctx: int) -> tuple[float, float, list]:
    """speedsim's (sequential, SPEED) decode ms of one case on ``hw_configs/<gpu>.yaml``, and
    the stages occupied at each SPEED stage step (``cases.speed_steps``)."""
    from speedsim.api import simulate
    from speedsim.config.hw import load_hardware
    from speedsim.config.workload import workload_from_dict

    hw = load_hardware(ROOT / "hw_configs" / f"{gpu}.yaml")
    run = simulate(hw, workload_from_dict(_cases().workload_dict(shape, batch, ctx)))
    seq, speed = (run.runs[s].metrics["decode_time_s"] * 1e3 for s in ("sequential", "speed"))
    return seq, speed, _cases().speed_steps(run.runs["speed"].plan)


def steps_sum(gpu: str, shape: str, batch: int, ctx: int, steps: list) -> float:
    """ms of SPEED's schedule as the sum of its stage steps, each graph-replayed alone back to
    back (``steps.csv``, the ring step; median over runs): what the decode would take if a
    step cost the same in the sequence as repeated alone."""
    ms = _step_ms(gpu).loc[(shape, batch, ctx)]
    return sum(ms["-".join(map(str, s))] for s in steps)


@cache
def _step_ms(gpu: str) -> pd.Series:
    """Median ms of each stage step of each case, over every ``steps.csv`` of ``gpu``."""
    df = pd.concat([pd.read_csv(p) for p in sorted((HERE / "results" / gpu).glob("**/steps.csv"))])
    return df.groupby(["shape", "batch", "ctx", "stages"]).ms.median()


def compare(gpu: str) -> pd.DataFrame:
    """Measured vs simulated, with the relative errors (simulated / measured - 1)."""
    m = measured(gpu)
    sims = [simulated(gpu, r.shape, r.batch, r.ctx) for r in m.itertuples()]
    m["sim_sequential"], m["sim_speed"], steps = zip(*sims)
    m["speed_steps"] = [steps_sum(gpu, r.shape, r.batch, r.ctx, s)
                        for r, s in zip(m.itertuples(), steps)]
    m["speedup"] = m.sequential / m.speed
    m["sim_speedup"] = m.sim_sequential / m.sim_speed
    for col in ("sequential", "speed", "speedup"):
        m[f"err_{col}"] = m[f"sim_{col}"] / m[col] - 1
    m["err_speed_steps"] = m.sim_speed / m.speed_steps - 1  # against the steps alone
    return m


def main(argv: list[str]) -> int:
    gpus = argv[1:] or sorted({p.relative_to(HERE / "results").parts[0]
                               for p in (HERE / "results").glob("*/**/e2e.csv")})
    for gpu in gpus:
        df = compare(gpu)
        print(f"\n{gpu}: decode of 31 tokens, ms (error = simulated / measured - 1)")
        print(df.drop(columns="speed_roll", errors="ignore").round(
            {"sequential": 2, "speed": 2, "speed_steps": 2, "sim_sequential": 2, "sim_speed": 2,
             "speedup": 3, "sim_speedup": 3, "err_sequential": 3, "err_speed": 3,
             "err_speedup": 3, "err_speed_steps": 3}).to_string(index=False))
        worst = df[["err_sequential", "err_speed", "err_speedup"]].abs().max()
        print("worst |error|:", worst.round(3).to_dict())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

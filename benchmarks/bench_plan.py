"""Benchmark: what a strategy costs before its replay, on the 7B edge run.

Per configured strategy of ``workloads/llama7b_cycle_u8.yaml`` on ``hw_configs/edge.yaml``
(~10^5 work items each): grouping the trace (``TraceIndex``, shared), building
the plan, costing it (``cost.plan``), the buffer check (``check_tiles_fit``),
and pickling the plan both ways (how worker processes send it). Best of a few
repeats, in seconds, each also with the cyclic garbage collector off (the
collector's share is the difference); asserts nothing.

    .venv/bin/python benchmarks/bench_plan.py [HW.yaml WORKLOAD.yaml]
"""

from __future__ import annotations

import gc
import pickle
import sys
import time
from typing import Callable

from speedsim.api import strategy_input
from speedsim.config import load_hardware, load_workload
from speedsim.hw import cost
from speedsim.hw.fit import check_tiles_fit
from speedsim.strategies.base import RunContext
from speedsim.strategies.builder import TraceIndex
from speedsim.strategies.registry import get_strategy


def best_s(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall seconds of ``fn()`` with the garbage collector on, and with it off."""
    times = {True: float("inf"), False: float("inf")}
    for collect in (True, False):
        for _ in range(repeats):
            gc.collect()
            if not collect:
                gc.disable()
            t0 = time.perf_counter()
            fn()
            times[collect] = min(times[collect], time.perf_counter() - t0)
            gc.enable()
    return times[True], times[False]


def main(hw_path: str = "hw_configs/edge.yaml", wl_path: str = "workloads/llama7b_cycle_u8.yaml",
         repeats: int = 3) -> None:
    hw, wl = load_hardware(hw_path), load_workload(wl_path)
    inp = strategy_input(hw, wl)
    trace = inp.trace
    ctx = RunContext(wl, inp, hw.bytes_per_element)
    print(f"{'TraceIndex':28s} {len(trace):7d} rows   " + _fmt(best_s(lambda: TraceIndex(trace), repeats)))
    for name in wl.strategies.names():
        strategy = get_strategy(name).configure(ctx)
        plan = strategy.plan(inp)
        costed = cost.plan(plan.items, hw)
        data = pickle.dumps(plan, protocol=5)
        phases = {"plan": lambda: strategy.plan(inp),
                  "cost.plan": lambda: cost.plan(plan.items, hw),
                  "check_tiles_fit": lambda: check_tiles_fit(plan.items, hw, costed),
                  "pickle dump": lambda: pickle.dumps(plan, protocol=5),
                  "pickle load": lambda: pickle.loads(data)}
        for phase, fn in phases.items():
            print(f"{name + ' ' + phase:28s} {len(plan.items):7d} items  " + _fmt(best_s(fn, repeats)))
        print(f"{name + ' pickled plan':28s} {len(data) / 1e6:7.1f} MB")


def _fmt(times: tuple[float, float]) -> str:
    return f"{times[0]:6.3f} s ({times[1]:6.3f} s without gc)"


if __name__ == "__main__":
    main(*sys.argv[1:3])

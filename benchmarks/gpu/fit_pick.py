"""Fit the greedy pick's cost per logit from the argmax kernels of real decode steps (no GPU).

``kernels.py`` timed every kernel of SPEED's stage steps (``results/<gpu>/kernels_*.csv``,
eager, GPU time per kernel). The pick there is PyTorch's ``argmax(dim=-1)`` over the LM
head's ``R × V`` logits: ``reduce_kernel<512, 1, ... ArgMaxOps>``, one thread block per
row, so its time does not grow with the rows (1 to 8 here, far fewer than the SMs) but with
the vocabulary (4.6-5.6 µs at V = 8,192; 10.3-10.6 µs at 32,000 on the H100). speedsim's
pick (``pick: kernel``, ``vector.pick_lanes``: one SM's 128 lanes a row) costs

    t = o_v + ⌈V · c / pick_lanes⌉ / f

with ``o_v`` (``vector.op_overhead_ns``) and ``f`` (``clock_hz``) from the config, and one
unknown ``c`` (``vector.cycles_per_element.pick``), fitted here by least squares over every
argmax kernel. Run ``python benchmarks/gpu/fit_pick.py GPU``: it prints ``c`` and each
case's measured and modelled time.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from speedsim.config.hw import load_hardware

HERE = Path(__file__).resolve().parent


def _shapes() -> dict:
    spec = importlib.util.spec_from_file_location("gpu_cases", HERE / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.SHAPES


def argmax_kernels(gpu: str) -> pd.DataFrame:
    """One row per argmax kernel of every stage step measured: shape, vocabulary, µs."""
    frames = [pd.read_csv(p) for p in sorted((HERE / "results" / gpu).glob("kernels_*.csv"))]
    k = pd.concat(frames)
    k = k[k.kernel.str.contains("ArgMaxOps")].copy()
    k["vocab"] = k["shape"].map({name: s["vocab"] for name, s in _shapes().items()})
    return k


def config(gpu: str) -> tuple[float, float, int]:
    """(o_v in µs, clock in cycles per µs, pick_lanes) of ``hw_configs/<gpu>.yaml``."""
    hw = load_hardware(HERE.parents[1] / "hw_configs" / f"{gpu}.yaml")
    return hw.vector.op_overhead_ns / 1e3, hw.clock_hz / 1e6, hw.vector.pick_lanes


def fit(gpu: str) -> float:
    """``c``: cycles per logit per lane, least squares in µs over every argmax kernel."""
    k = argmax_kernels(gpu)
    o_v, f, lanes = config(gpu)
    x = k.vocab.to_numpy() / (lanes * f)  # µs per unit of c
    return float(np.dot(x, k.us - o_v) / np.dot(x, x))


def table(gpu: str, c: float) -> pd.DataFrame:
    """Measured (median per shape and batch) against the modelled pick."""
    k = argmax_kernels(gpu)
    o_v, f, lanes = config(gpu)
    t = k.groupby(["shape", "batch", "vocab"], as_index=False).us.agg(["median", "min", "max"])
    t["model"] = o_v + t.vocab.map(lambda v: math.ceil(v * c / lanes)) / f
    t["error"] = t.model / t["median"] - 1
    return t


def main(argv: list[str]) -> int:
    for gpu in argv[1:] or ["h100", "h200"]:
        c = fit(gpu)
        print(f"{gpu}: cycles_per_element.pick = {c:.1f}")
        print(table(gpu, c).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

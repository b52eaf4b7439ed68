"""Per-item overheads fitted to layer-kernel *sequences*, as decoding engines run them.

``e2e.py`` measures ``seq.csv``: n = 8 consecutive decoder layers captured in one CUDA graph
and replayed back to back, at M = 1..16 rows and KV length 1024, each layer with its own
weights (streamed from HBM) or all with the same (resident in the L2). Inside a graph,
consecutive kernels overlap one's tail with the next one's launch, so a layer costs less
than the sum of its kernels timed alone (``fit.py``'s isolated fit).

The model of one such layer is speedsim itself, not a closed form: the same layer is
simulated on the GPU's config as a one-step decode with N = 16 and N = 8 layers
(``(T16 - T8) / 8`` cancels the embedding, head and prefill), sharing U = N (streamed) or
U = 1 (one resident set). The layer's item counts are the same for every shape, so the
sequences decide the overheads' *level*, not their split between the units: the fit keeps
the split of the isolated intercepts (the config's array : vector = ``ratio``) and finds the
one scale s (o_array = s, o_vector = s / ratio) that minimises the summed squared relative
error over the cases. The time is not linear in s (an array item's issue overlaps its own
weight stream, so a streamed layer feels only part of it), so the search evaluates speedsim
on a grid of s and refines around the best point. Run
``python benchmarks/gpu/fit_seq.py GPU [RESULTS_DIR ...]`` (no GPU needed): it prints the
fitted overheads and the per-case error with them.
"""

from __future__ import annotations

import copy
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from cases import SHAPES  # noqa: E402  (beside this file)

KV = 1024          # seq_case's KV length
LAYERS = (8, 16)   # simulated depths; their difference is 8 layers


def measured(results: list[Path]) -> pd.DataFrame:
    """µs per layer of every case (median over runs): ``seq.csv`` where measured, else the
    single graph-replayed layers of ``measure.py`` (``layer.csv``: fused attention, weights
    rotated over copies, so streamed)."""
    seq = [p for r in results for p in sorted(r.glob("**/seq.csv"))]
    if seq:
        df = pd.concat([pd.read_csv(p) for p in seq])
        dims = pd.DataFrame([(k, v["d_model"], v["n_heads"], v["d_ff"]) for k, v in SHAPES.items()],
                            columns=["shape", "d_model", "n_heads", "d_ff"])
        df = df.merge(dims, on="shape")
    else:
        df = pd.concat([pd.read_csv(p) for r in results for p in sorted(r.glob("**/layer.csv"))])
        df = df[(df.attn == "sdpa") & (df.resident == 0)].rename(
            columns={"heads": "n_heads", "tokens": "rows", "ms": "ms_per_layer"})
        df["shape"] = "d" + df.d_model.astype(str)
    keys = ["shape", "d_model", "n_heads", "d_ff", "rows", "resident"]
    df = df.groupby(keys, as_index=False).ms_per_layer.median()
    return df.assign(us=df.ms_per_layer * 1e3)


def hw_dict(gpu: str) -> dict:
    return yaml.safe_load((ROOT / "hw_configs" / f"{gpu}.yaml").read_text())


def layer_us(base: dict, dims: tuple[int, int, int], rows: int, resident: bool, o_a: float,
             o_v: float) -> float:
    """speedsim's time of one layer (d_model, heads, d_ff) of the sequence, overheads in µs."""
    return _layer_us(yaml.safe_dump(base), dims, rows, resident, o_a, o_v)


@lru_cache(maxsize=None)
def _layer_us(base_yaml: str, dims: tuple[int, int, int], rows: int, resident: bool, o_a: float,
              o_v: float) -> float:
    from speedsim.api import simulate
    from speedsim.config.hw import hardware_from_dict
    from speedsim.config.workload import workload_from_dict

    data = copy.deepcopy(yaml.safe_load(base_yaml))
    data["array"]["op_overhead_ns"], data["vector"]["op_overhead_ns"] = o_a * 1e3, o_v * 1e3
    hw = hardware_from_dict(data)
    s = dict(zip(("d_model", "n_heads", "d_ff"), dims))
    t = []
    for n in LAYERS:
        wl = workload_from_dict({
            "name": "seq", "model": {**s, "n_layers": n, "vocab_size": 32000, "max_seq_len": 4096,
                                     "mlp": "gated_gelu", "weights": {"source": "shape_only"},
                                     "sharing": {"scheme": "cycle", "unique_layers": 1 if resident else n}},
            "generation": {"prompt_tokens": KV, "new_tokens": 2, "batch": rows, "seed": 0},
            "strategies": {"sequential": {}}})
        t.append(simulate(hw, wl).runs["sequential"].metrics["decode_time_s"])
    return (t[1] - t[0]) / (LAYERS[1] - LAYERS[0]) * 1e6


def predicted(base: dict, m: pd.DataFrame, s: float, ratio: float) -> np.ndarray:
    """speedsim's µs per layer of every case at scale s."""
    return np.array([layer_us(base, (int(r.d_model), int(r.n_heads), int(r.d_ff)), int(r.rows),
                              bool(r.resident), s, s / ratio) for r in m.itertuples()])


def loss(base: dict, m: pd.DataFrame, s: float, ratio: float) -> float:
    return float(np.sum((predicted(base, m, s, ratio) / m.us.values - 1) ** 2))


def fit(base: dict, m: pd.DataFrame, ratio: float, hi_us: float = 8.0) -> float:
    """The scale s (µs) of least loss: a grid of 0.5 µs, then golden sections around it."""
    grid = np.arange(0.0, hi_us + 1e-9, 0.5)
    best = grid[int(np.argmin([loss(base, m, s, ratio) for s in grid]))]
    lo, hi = max(best - 0.5, 0.0), best + 0.5
    g = (5 ** 0.5 - 1) / 2
    for _ in range(12):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if loss(base, m, a, ratio) <= loss(base, m, b, ratio):
            hi = b
        else:
            lo = a
    return round((lo + hi) / 2, 3)


def main(argv: list[str]) -> int:
    gpu = argv[1]
    results = [Path(p) for p in argv[2:]] or [HERE / "results" / gpu]
    base = hw_dict(gpu)
    ratio = base["array"].get("op_overhead_ns", 4053.0) / base["vector"].get("op_overhead_ns", 6054.0)
    d = measured(results)
    s = fit(base, d, ratio)
    d["t0"] = predicted(base, d, 0.0, ratio)
    d["predicted"] = predicted(base, d, s, ratio)
    d["error"] = d.predicted / d.us - 1
    print(f"{gpu}: array.op_overhead_ns = {s * 1e3:.0f}, vector.op_overhead_ns = "
          f"{s / ratio * 1e3:.0f} (split {ratio:.3f} from the isolated intercepts)")
    print(d[["shape", "rows", "resident", "us", "t0", "predicted", "error"]]
          .round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

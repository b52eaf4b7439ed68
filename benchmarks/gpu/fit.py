"""Fit the few free hardware-model values from the GPU measurements (no GPU needed).

The model every fitted value belongs to (docs/calibration.md derives it): a work item
that streams ``B`` bytes from DRAM and issues alone on its unit costs

    t = o_unit + λ + B / (η · β)            (memory-bound item, weight_prefetch: per_op)
    t = o_unit + cycles / f                  (compute-bound item, SCALE-Sim cycles)

with ``o_unit`` the fixed per-item cost (``array.op_overhead_ns`` or
``vector.op_overhead_ns``: kernel launch, pipeline fill and tail), ``λ`` the DRAM
latency (``dram.latency_ns``, not separable from ``o`` by timing alone, so taken from
published microbenchmarks), ``β`` the datasheet bandwidth and ``η`` the achievable
fraction of it (``dram.efficiency``).

Fits, all by least squares on relative error (every op weighs the same, whatever its size):

1. ``η`` and the array intercept ``o_array + λ`` from the GEMVs (M = 1..16 rows, weights
   streamed from DRAM, K, N = 768..16384): ``t = c + B/(η β)``.
2. ``o_vector + λ`` from the single-decoder-layer measurements (d 2048 and 4096, 1..16
   tokens in flight, fused SDPA attention): the layer's 12 items run one after another,
   so ``t_layer = 6 (o_array + λ) + 6 (o_vector + λ) + Σ B/(η β)``, and with the array
   intercept from step 1 the vector intercept is the one unknown. It absorbs what a real
   layer runs beyond the 12 modelled items: LayerNorm's row reductions (8 µs for one row
   of 4096 in PyTorch, against 1.4 µs for an add), the KV-cache write kernels, the
   inter-kernel gaps. The isolated vector-op fit (same form, ops weighted by their count
   per layer) is printed beside it for comparison.

The per-op error table compares the closed form with every measured op; the layer table
compares it with every measured layer (d 768 was not fitted: a check). Run: ``python benchmarks/gpu/fit.py
[RESULTS_DIR]``; it prints the fitted values, the per-op error table and the layer check.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

LATENCY_NS = 500.0        # global-memory load latency of Hopper, order of 500 ns (hw_configs/h100.yaml)
RUNS = ("", "run2")       # two independent device runs; their median is the measurement
LAYER_VECTOR_OPS = {"layernorm": 2, "add": 2, "silu_mul": 1}   # per decoder layer
DEFAULT_DIR = Path(__file__).resolve().parent / "results" / "h200"


def peak_gb_s(results: Path) -> float:
    """The datasheet bandwidth of the GPU whose results these are (``results/<gpu>``)."""
    import yaml
    cfg = yaml.safe_load((Path(__file__).resolve().parents[2] / "hw_configs" / f"{results.resolve().name}.yaml").read_text())
    return float(cfg["dram"]["bandwidth_gb_s"])


def read(results: Path, name: str) -> pd.DataFrame:
    """One CSV, the median over the device runs of every measured case."""
    frames = [pd.read_csv(results / run / f"{name}.csv") for run in RUNS
              if (results / run / f"{name}.csv").exists()]
    df = pd.concat(frames)
    keys = [c for c in df.columns if c not in ("ms", "ms_min", "gb_s", "tflop_s", "copies",
                                               "kernels_per_layer", "graph_ms", "ms_per_launch")]
    value = "ms_per_launch" if "ms_per_launch" in df.columns else "ms"
    return df.groupby(keys, as_index=False)[value].median()


def relative_lstsq(t_us: np.ndarray, columns: list[np.ndarray]) -> np.ndarray:
    """Coefficients x minimising sum(((A x) / t - 1)^2)."""
    a = np.stack(columns, axis=1) / t_us[:, None]
    return np.linalg.lstsq(a, np.ones_like(t_us), rcond=None)[0]


def gemv_rows(results: Path) -> pd.DataFrame:
    g = read(results, "gemm")
    g = g[(g.resident == 0) & (g.M <= 16)].copy()
    g["bytes"] = g.weight_bytes + g.M * (g.K + g.N) * 2
    g["op"] = "gemv " + g.K.astype(str) + "x" + g.N.astype(str)
    return g


def fit_array(g: pd.DataFrame, peak: float) -> tuple[float, float]:
    """(intercept_us, efficiency) of t = c + bytes / (eff * peak)."""
    c, s = relative_lstsq(g.ms.values * 1e3, [np.ones(len(g)), g.bytes.values / 1e6])
    return float(c), float(1.0 / s / peak * 1e3)


def vector_rows(results: Path) -> pd.DataFrame:
    v = read(results, "vector")
    return v[v.op.isin(list(LAYER_VECTOR_OPS)) & (v.rows <= 16)].copy()


def fit_vector(v: pd.DataFrame, eff: float, peak: float) -> float:
    """Intercept (us) of t = c + bytes/(eff*peak), ops weighted by their count per layer."""
    stream_us = v.bytes.values / (eff * peak) / 1e3
    w = v.op.map(LAYER_VECTOR_OPS).values.astype(float)
    t = v.ms.values * 1e3
    return float(np.sum(w * (t - stream_us) / t) / np.sum(w / t))


def stream_us(bytes_: float, intercept_us: float, eff: float, peak: float) -> float:
    return intercept_us + bytes_ / (eff * peak) / 1e3


def attention_rows(results: Path) -> pd.DataFrame:
    a = read(results, "attn")
    return a[a.op.isin(["attn_score", "attn_value", "softmax"])].copy()


def layer_items_us(d: int, heads: int, d_ff: int, t: int, ctx: int, c_a: float, c_v: float,
                   eff: float, peak: float) -> dict[str, float]:
    """Closed-form time of each of a layer's 12 items, run one after another."""
    e = 2  # bf16
    gemv = lambda k, n: stream_us(e * (k * n + t * (k + n)), c_a, eff, peak)
    vec = lambda elems: stream_us(e * elems, c_v, eff, peak)
    kv = e * t * d * (ctx + 1)  # K (or V) of t tokens, ctx+1 positions
    return {"norm": vec(2 * t * d), "qkv": gemv(d, 3 * d), "attn_score": stream_us(kv, c_a, eff, peak),
            "softmax": vec(2 * t * heads * (ctx + 1)), "attn_value": stream_us(kv, c_a, eff, peak),
            "out_proj": gemv(d, d), "residual": vec(3 * t * d), "norm2": vec(2 * t * d),
            "mlp_up": gemv(d, 2 * d_ff), "act": vec(3 * t * d_ff), "mlp_down": gemv(d_ff, d),
            "residual2": vec(3 * t * d)}


FIT_LAYERS = (2048, 4096)  # d_model of the layers the vector intercept is fitted on


def layer_rows(results: Path) -> pd.DataFrame:
    lay = read(results, "layer")
    return lay[(lay.attn == "sdpa") & (lay.resident == 0)]


def fit_vector_from_layers(lay: pd.DataFrame, c_a: float, eff: float, peak: float) -> float:
    """Vector intercept (us) minimising the layers' relative error, array intercept fixed."""
    lay = lay[lay.d_model.isin(FIT_LAYERS)]
    t = lay.ms.values * 1e3
    base = np.array([sum(layer_items_us(r.d_model, r.heads, r.d_ff, r.tokens, r.ctx, c_a, 0.0,
                                        eff, peak).values()) for r in lay.itertuples()])
    vector_items = 6.0
    return float(np.sum((t - base) * vector_items / t**2) / np.sum((vector_items / t) ** 2))


def fitted(results: Path) -> dict[str, float]:
    """The config values: efficiency, latency and the two per-op overheads (ns)."""
    peak = peak_gb_s(results)
    c_a, eff = fit_array(gemv_rows(results), peak)
    c_v = fit_vector_from_layers(layer_rows(results), c_a, eff, peak)
    return {"dram.efficiency": eff, "dram.latency_ns": LATENCY_NS,
            "array.op_overhead_ns": c_a * 1e3 - LATENCY_NS,
            "vector.op_overhead_ns": c_v * 1e3 - LATENCY_NS,
            "intercept_array_us": c_a, "intercept_vector_us": c_v,
            "intercept_vector_isolated_ops_us": fit_vector(vector_rows(results), eff, peak)}


def op_errors(results: Path, fit: dict[str, float]) -> pd.DataFrame:
    """Predicted vs measured per op (the per-op error table)."""
    c_a, c_v, eff = fit["intercept_array_us"], fit["intercept_vector_us"], fit["dram.efficiency"]
    peak = peak_gb_s(results)
    g = gemv_rows(results)
    rows = [("gemv", f"{r.M}x{r.K}x{r.N}", r.ms * 1e3, stream_us(r.bytes, c_a, eff, peak))
            for r in g.itertuples()]
    a = attention_rows(results)
    for r in a.itertuples():
        kv = r.kv_bytes if r.op != "softmax" else 2 * 2 * r.tokens * r.heads * r.kv_len
        c = c_v if r.op == "softmax" else c_a
        rows.append((r.op, f"t{r.tokens} h{r.heads} L{r.kv_len}", r.ms * 1e3,
                     stream_us(kv, c, eff, peak)))
    for r in vector_rows(results).itertuples():
        rows.append((r.op, f"{r.rows}x{r.cols}", r.ms * 1e3, stream_us(r.bytes, c_v, eff, peak)))
    df = pd.DataFrame(rows, columns=["op", "shape", "measured_us", "predicted_us"])
    return df.assign(error=df.predicted_us / df.measured_us - 1)


def layer_check(results: Path, fit: dict[str, float]) -> pd.DataFrame:
    rows = []
    for r in layer_rows(results).itertuples():
        items = layer_items_us(r.d_model, r.heads, r.d_ff, r.tokens, r.ctx,
                               fit["intercept_array_us"], fit["intercept_vector_us"],
                               fit["dram.efficiency"], peak_gb_s(results))
        rows.append((r.d_model, r.tokens, r.ms * 1e3, sum(items.values())))
    df = pd.DataFrame(rows, columns=["d_model", "tokens", "measured_us", "closed_form_us"])
    return df.assign(error=df.closed_form_us / df.measured_us - 1)


GEMM_ITEMS = ("qkv", "out_proj", "mlp_up", "mlp_down")
# an unnamed elementwise kernel belongs to the item it follows: the KV-cache write to qkv,
# the add after a projection to the residual, the gate multiply to the activation
FOLLOWS = {"qkv": "qkv", "attention": "attention", "out_proj": "residual", "mlp_up": "act",
           "act": "act", "mlp_down": "residual2", "residual": "residual",
           "residual2": "residual2"}


def _item_of(kernel: str, current: str, gemms_done: int, norms_done: int) -> str:
    if "layer_norm" in kernel:
        return ("norm", "norm2")[norms_done]
    if "splitKreduce" in kernel:
        return current
    if kernel.startswith("nvjet") or "gemm" in kernel or "gemv" in kernel:
        return GEMM_ITEMS[gemms_done]
    if any(s in kernel for s in ("sdpa", "flash", "fmha", "lean_reduction")):
        return "attention"
    return FOLLOWS[current]


def layer_items_measured_us(results: Path, d: int, tokens: int) -> dict[str, float]:
    """Measured time of each modelled item inside one graph-replayed layer (fused attention):
    its kernels from the first one's start to the next item's first start."""
    k = pd.read_csv(results / "run2" / "layer_kernels.csv")
    k = k[(k.d_model == d) & (k.tokens == tokens) & (k.attn == "sdpa") & (k["mode"] == "graph")]
    lay, nxt = k[k.layer == 1], k[k.layer == 2].start_us.min()
    spans = np.diff(np.append(lay.start_us.values, nxt))
    out: dict[str, float] = {}
    current = ""
    for name, span in zip(lay.kernel, spans):
        current = _item_of(name, current, sum(g in out for g in GEMM_ITEMS),
                           sum(n in out for n in ("norm", "norm2")))
        out[current] = out.get(current, 0.0) + float(span)
    return out


def main(argv: list[str]) -> int:
    results = Path(argv[1]) if len(argv) > 1 else DEFAULT_DIR
    fit = fitted(results)
    print("fitted values")
    for k, v in fit.items():
        print(f"  {k:24s} {v:10.4g}")
    errs = op_errors(results, fit)
    print("\nper-op error summary (predicted / measured - 1)")
    print(errs.groupby("op").error.describe()[["count", "mean", "min", "max"]].round(3))
    print("\nsingle decoder layer (sdpa), closed form vs measured")
    print(layer_check(results, fit).round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Benchmark: build the shape-only op trace of a 7B-parameter shape.

LLaMA-7B-like: d_model 4096, 32 layers, d_ff 11008, vocab 32000, 32 heads,
prompt 128, 256 new tokens, SPEED exit rows included (G = 4). Prints the build
time and rows per second; asserts nothing.

    .venv/bin/python benchmarks/bench_trace.py
"""

from __future__ import annotations

import time

from speedsim.config.workload import workload_from_dict
from speedsim.trace import build_trace, total_macs

SEVEN_B = {
    "name": "7b-shape",
    "model": {"d_model": 4096, "n_heads": 32, "d_ff": 11008, "n_layers": 32,
              "vocab_size": 32000, "mlp": "gated_gelu", "sharing": {"scheme": "none"},
              "weights": {"source": "shape_only"}},
    "generation": {"prompt_tokens": 128, "new_tokens": 256, "batch": 1},
    "strategies": {"sequential": {},
                   "speed": {"stages": 4, "acceptance": {"source": "bernoulli", "rate": 0.8}}},
}


def main(repeats: int = 3) -> None:
    w = workload_from_dict(SEVEN_B)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        trace = build_trace(w, bytes_per_element=2)
        best = min(best, time.perf_counter() - t0)
    assert int(trace.macs.sum()) == total_macs(w.model, w.generation)
    print(f"7B shape-only trace: {len(trace)} rows in {best * 1e3:.0f} ms "
          f"({len(trace) / best:,.0f} rows/s), {trace.macs.sum() / 1e12:.2f} TMAC")


if __name__ == "__main__":
    main()

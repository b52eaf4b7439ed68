"""The end-to-end decode cases measured on GPUs (``e2e.py``) and replayed by speedsim.

One definition serves both sides: ``e2e.py`` runs each case on the GPU (PyTorch, bf16,
one CUDA graph per token or stage step) and ``tests/test_gpu_e2e.py`` simulates the same
case on the GPU's hardware config and compares.

Shapes (all cycle-shared, gated GELU MLP, LM head tied):

=======  =======  =====  =====  ==  =  ======================================================
name     d_model  heads  d_ff   N   U  parameters (executed / unique incl. embedding)
=======  =======  =====  =====  ==  =  ======================================================
s7b      4096     32     11008  32  8  6.6 B / 1.75 B: LLaMA-7B's layer, 8 sets cycled 4 times
s2b      2048     16     5504   32  8  1.7 B / 0.47 B
s01b     768      12     3072   8   2  0.10 B / 0.04 B: 2 sets (38 MB) + head (49 MB)
s01b_l2  768      12     3072   8   1  0.08 B / 0.02 B: 1 set (19 MB) + a vocabulary of 8,192
                                       (head 13 MB): 32 MB, which fits the L2 of either GPU
=======  =======  =====  =====  ==  =  ======================================================

Each at batch 1 and 4 and contexts 128 and 2048 (the prompt; 32 new tokens, so 31
decode steps), decoded sequentially and by SPEED with G = N / U stages (4; 8 for s01b_l2), the early
prediction accepted by a seeded Bernoulli(0.8) sequence (the same schedule, flushes
included, on both sides: ``speed_steps`` reads it off speedsim's plan).

Run ``python benchmarks/gpu/cases.py OUT.json`` here (it needs speedsim) to write the
cases with their SPEED schedules for the GPU machine, which has no speedsim.
"""

from __future__ import annotations

import json
import sys
from itertools import product

SHAPES = {
    "s7b": dict(d_model=4096, n_heads=32, d_ff=11008, n_layers=32, unique_layers=8, vocab=32000),
    "s2b": dict(d_model=2048, n_heads=16, d_ff=5504, n_layers=32, unique_layers=8, vocab=32000),
    "s01b": dict(d_model=768, n_heads=12, d_ff=3072, n_layers=8, unique_layers=2, vocab=32000),
    "s01b_l2": dict(d_model=768, n_heads=12, d_ff=3072, n_layers=8, unique_layers=1, vocab=8192),
}
NEW_TOKENS = 32
ACCEPTANCE = 0.8
BATCHES = (1, 4)
CONTEXTS = (128, 2048)


def case_ids() -> list[tuple[str, int, int]]:
    return list(product(SHAPES, BATCHES, CONTEXTS))


def workload_dict(shape: str, batch: int, ctx: int) -> dict:
    """The speedsim workload of one case (both strategies)."""
    s = dict(SHAPES[shape])
    U, vocab = s.pop("unique_layers"), s.pop("vocab")
    return {
        "name": f"{shape}_b{batch}_c{ctx}",
        "model": {**s, "vocab_size": vocab, "max_seq_len": 4096, "mlp": "gated_gelu",
                  "sharing": {"scheme": "cycle", "unique_layers": U},
                  "weights": {"source": "shape_only"}},
        "generation": {"prompt_tokens": ctx, "new_tokens": NEW_TOKENS, "batch": batch, "seed": 0},
        "strategies": {"sequential": {},
                       "speed": {"stages": s["n_layers"] // U,
                                 "acceptance": {"source": "bernoulli", "rate": ACCEPTANCE,
                                                "seed": 0}}},
    }


def speed_steps(plan) -> list[list[int]]:
    """The stages occupied at each decode stage step of a SPEED plan: a token execution
    launched at step s0 is in stage s - s0 at step s, until its last item's step."""
    items = plan.items
    spans = [(items[e.first_item].step, items[e.last_item].step)
             for e in plan.execs if e.phase == "decode"]
    first = min(s0 for s0, _ in spans)
    last = max(s1 for _, s1 in spans)
    return [sorted(s - s0 for s0, s1 in spans if s0 <= s <= s1) for s in range(first, last + 1)]


def all_cases() -> list[dict]:
    """Every case, with SPEED's schedule from speedsim (any hardware: it does not depend on it)."""
    from speedsim.api import simulate
    from speedsim.config.hw import load_hardware
    from speedsim.config.workload import workload_from_dict
    from pathlib import Path

    hw = load_hardware(Path(__file__).resolve().parents[2] / "hw_configs" / "h200.yaml")
    out = []
    for shape, batch, ctx in case_ids():
        wl = workload_from_dict(workload_dict(shape, batch, ctx))
        plan = simulate(hw, wl, ["speed"]).runs["speed"].plan
        out.append({"shape": shape, **SHAPES[shape], "batch": batch, "ctx": ctx,
                    "new_tokens": NEW_TOKENS, "stages": SHAPES[shape]["n_layers"]
                    // SHAPES[shape]["unique_layers"], "speed_steps": speed_steps(plan)})
    return out


if __name__ == "__main__":
    with open(sys.argv[1], "w") as f:
        json.dump(all_cases(), f, indent=1)

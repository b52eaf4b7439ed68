"""Write tests/data/<model>_expected.npz: PyTorch logits (float32, CPU) of shipped
weights on two held-out prompts, so CI can check the NumPy decoder without PyTorch.

Contents: ``tokens`` [B, T] int64 (held-out bytes), ``final_logits`` [B, T, V],
``early_logits_exit{e}`` [B, T, V] for each stage-boundary exit layer e (float32), ``exit_layers``,
and ``weights_sha256`` of the .npz they were computed from. Also prints the
largest difference from this directory's independent NumPy forward.

Usage: python training/make_expected.py --npz speedsim/data/speed_cycle_n12u3.npz
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

import evaluate_npz
import train
from corpus import heldout_prompts, load_splits

ROOT = Path(__file__).resolve().parent.parent
PROMPTS, PROMPT_LEN = 2, 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npz", type=Path, default=ROOT / "speedsim/data/speed_cycle_n12u3.npz")
    ap.add_argument("--out", type=Path, default=None,
                    help="default: tests/data/<npz stem>_expected.npz")
    args = ap.parse_args()
    out_path = args.out or ROOT / "tests" / "data" / f"{args.npz.stem}_expected.npz"
    torch.set_num_threads(2)

    weights, cfg = evaluate_npz.load(args.npz)
    p, shape = train.load_torch(args.npz, "cpu")
    exit_layers = train.stage_exit_layers(shape)
    _, heldout = load_splits()
    tokens = heldout_prompts(heldout, PROMPTS, PROMPT_LEN).astype(np.int64)  # [B, T]
    with torch.no_grad():
        final, early = train.forward(p, shape, torch.from_numpy(tokens), exit_layers)
    out = {"tokens": tokens, "final_logits": final.numpy(),
           "exit_layers": np.array(exit_layers, dtype=np.int64),
           "weights_sha256": np.array(hashlib.sha256(args.npz.read_bytes()).hexdigest())}
    out.update({f"early_logits_exit{e}": early[e].numpy() for e in exit_layers})

    f32 = {k: v.astype(np.float32) for k, v in weights.items()}
    np_final, np_early = evaluate_npz.forward(f32, cfg, tokens, exit_layers)
    diffs = [np.abs(np_final - out["final_logits"]).max()]
    diffs += [np.abs(np_early[e] - out[f"early_logits_exit{e}"]).max() for e in exit_layers]
    print("max |numpy - torch| per head (final, exits):", [f"{d:.2e}" for d in diffs])

    out_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out_path, **out)
    print(f"wrote {out_path}")


if __name__ == "__main__":
    main()

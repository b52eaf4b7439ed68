"""Write tests/data/trained_expected.npz: PyTorch logits of the shipped weights
on a few held-out prompts, so CI can check the NumPy decoder without PyTorch.

Contents: ``tokens`` [B, T] int64 (held-out bytes), ``final_logits`` [B, T, V],
``early_logits_exit{e}`` [B, T, V] for each exit layer e (float32), ``exit_layers``,
and ``weights_sha256`` of the .npz they were computed from. Also prints the
largest difference from this directory's independent NumPy forward.

Usage: python training/make_expected.py [--npz speedsim/data/speed_cycle_n8u2.npz]
"""
from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np
import torch

import evaluate_npz
import train
from corpus import load_splits

ROOT = Path(__file__).resolve().parent.parent
EXIT_LAYERS = (1, 3)
PROMPTS, PROMPT_LEN, STRIDE = 2, 32, 8192


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npz", type=Path, default=ROOT / "speedsim/data/speed_cycle_n8u2.npz")
    ap.add_argument("--out", type=Path, default=ROOT / "tests/data/trained_expected.npz")
    args = ap.parse_args()
    torch.set_num_threads(2)

    weights, cfg = evaluate_npz.load(args.npz)
    shape = train.Shape(d_model=cfg["d_model"], n_heads=cfg["n_heads"],
                        n_kv_heads=cfg["n_kv_heads"], d_ff=cfg["d_ff"],
                        n_layers=cfg["n_layers"], vocab_size=cfg["vocab_size"],
                        max_seq_len=weights["pos_emb"].shape[0], mlp=cfg["mlp"],
                        scheme=cfg["sharing"]["scheme"],
                        unique_layers=cfg["sharing"]["unique_layers"])
    _, heldout = load_splits()
    tokens = np.stack([heldout[i * STRIDE:i * STRIDE + PROMPT_LEN]
                       for i in range(PROMPTS)]).astype(np.int64)  # [B, T]

    p = {k: torch.from_numpy(v) for k, v in weights.items()}
    with torch.no_grad():
        final, early = train.forward(p, shape, torch.from_numpy(tokens), EXIT_LAYERS)
    out = {"tokens": tokens, "final_logits": final.numpy(),
           "exit_layers": np.array(EXIT_LAYERS, dtype=np.int64),
           "weights_sha256": np.array(hashlib.sha256(args.npz.read_bytes()).hexdigest())}
    out.update({f"early_logits_exit{e}": early[e].numpy() for e in EXIT_LAYERS})

    np_final, np_early = evaluate_npz.forward(weights, cfg, tokens, EXIT_LAYERS)
    diffs = [np.abs(np_final - out["final_logits"]).max()]
    diffs += [np.abs(np_early[e] - out[f"early_logits_exit{e}"]).max() for e in EXIT_LAYERS]
    print("max |numpy - torch| per head (final, exits):", [f"{d:.2e}" for d in diffs])

    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

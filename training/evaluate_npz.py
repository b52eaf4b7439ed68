"""Measure a shipped .npz decoder with NumPy alone: held-out perplexity per head
and early-vs-final agreement (SPEED acceptance) per exit point.

Reproduces the model-card numbers without PyTorch. The forward pass here is an
independent, self-contained implementation of ``docs/model.md`` (float32),
so it also cross-checks the exported weights.

Metrics, for each exit layer e (early head after layer e; the stage
boundaries U-1, 2U-1, ..., N-U-1):
- ``loss_*`` / ``ppl_*``: mean next-byte cross-entropy (nats) and exp of it,
  teacher-forced over non-overlapping 256-byte windows of the held-out
  evaluation sample (``corpus.heldout_eval_sample``);
- ``teacher_forced_acceptance_exit{e}``: fraction of those positions where
  argmax(early logits) == argmax(final logits) (ties to the lowest id);
- ``greedy_acceptance_exit{e}``: the same fraction over the positions of greedy
  generations (new_tokens per prompt) from held-out prompts;
- with ``--target T.npz`` (a draft model): ``draft.teacher_forced_acceptance``,
  how often the draft's argmax equals the target's final argmax on the same
  windows, and ``draft.greedy_acceptance``, the same on the target's own greedy
  continuations of the held-out prompts (what draft-model speculative decoding
  verifies).

Float16 files are evaluated in float32 (the weights are upcast on loading).

Usage: python training/evaluate_npz.py speedsim/data/speed_cycle_n12u3.npz [--json OUT]
       python training/evaluate_npz.py speedsim/data/draft_n2_d256.npz \
           --target speedsim/data/speed_cycle_n12u3.npz
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np

from corpus import heldout_eval_sample, heldout_prompts, load_splits

SET_OF = {"cycle": lambda layer, U, N: layer % U,
          "sequence": lambda layer, U, N: layer * U // N,
          "none": lambda layer, U, N: layer,
          "cycle_rev": lambda layer, U, N: layer % U if layer < N - U else U - 1 - (layer - (N - U))}


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """(weights by key, config dict from config_json)."""
    with np.load(path) as z:
        weights = {k: z[k].astype(np.float32) for k in z.files if k != "config_json"}
        config = json.loads(str(z["config_json"][()]))
    return weights, config


def _ln(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + np.float32(1e-5)) * w + b


def _gelu(x: np.ndarray) -> np.ndarray:
    c = np.float32(math.sqrt(2 / math.pi))
    return np.float32(0.5) * x * (1 + np.tanh(c * (x + np.float32(0.044715) * x ** 3)))


def _softmax(s: np.ndarray) -> np.ndarray:
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _layer(w: dict, s: str, x: np.ndarray, cfg: dict) -> np.ndarray:
    """One pre-LN block, weight-set prefix s; x [B, T, d] float32."""
    B, T, d = x.shape
    H = cfg["n_heads"]
    kvh = cfg.get("n_kv_heads") or H
    dh = d // H
    h = _ln(x, w[s + "ln1.w"], w[s + "ln1.b"])
    qkv = h @ w[s + "wqkv"]  # [B, T, d + 2 kvh dh]
    q = qkv[..., :H * dh].reshape(B, T, H, dh).transpose(0, 2, 1, 3)  # [B, H, T, dh]
    k = qkv[..., H * dh:(H + kvh) * dh].reshape(B, T, kvh, dh).transpose(0, 2, 1, 3)
    v = qkv[..., (H + kvh) * dh:].reshape(B, T, kvh, dh).transpose(0, 2, 1, 3)
    k, v = np.repeat(k, H // kvh, axis=1), np.repeat(v, H // kvh, axis=1)
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(math.sqrt(dh))  # [B, H, T, T]
    scores = np.where(np.tri(T, dtype=bool), scores, np.float32(-np.inf))
    a = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
    x = x + a @ w[s + "wo"]
    h = _ln(x, w[s + "ln2.w"], w[s + "ln2.b"]) @ w[s + "w_up"]
    if cfg["mlp"] == "gelu":
        h = _gelu(h)
    else:
        g, up = np.split(h, 2, axis=-1)
        h = _gelu(g) * up
    return x + h @ w[s + "w_down"]


def forward(w: dict, cfg: dict, tokens: np.ndarray,
            exit_layers: tuple[int, ...] = ()) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """tokens [B, T] -> (final logits [B, T, V], {exit layer: early logits [B, T, V]})."""
    N, sharing = cfg["n_layers"], cfg["sharing"]
    U = sharing.get("unique_layers") or N
    set_of = SET_OF[sharing["scheme"]]

    def head(x: np.ndarray) -> np.ndarray:
        return _ln(x, w["ln_f.w"], w["ln_f.b"]) @ w["tok_emb"].T

    x = w["tok_emb"][tokens] + w["pos_emb"][:tokens.shape[1]]
    early = {}
    for layer in range(N):
        x = _layer(w, f"sets.{set_of(layer, U, N)}.", x, cfg)
        if layer in exit_layers:
            early[layer] = head(x)
    return head(x), early


def _xent_sum(logits: np.ndarray, y: np.ndarray) -> float:
    """Sum over positions of -log softmax(logits)[y], in float64."""
    z = logits.astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    return float(-np.take_along_axis(logp, y[..., None], -1).sum())


def teacher_forced(w: dict, cfg: dict, data: np.ndarray, exit_layers: tuple[int, ...],
                   seq_len: int = 256, batch: int = 16) -> dict:
    """Per-head loss/perplexity and early-vs-final argmax agreement on `data`."""
    windows = windows_of(data, seq_len)
    n = len(windows)
    sums = {"final": 0.0, **{f"exit{e}": 0.0 for e in exit_layers}}
    agree = {e: 0 for e in exit_layers}
    for i in range(0, n, batch):
        x, y = windows[i:i + batch, :-1], windows[i:i + batch, 1:]
        final, early = forward(w, cfg, x, exit_layers)
        sums["final"] += _xent_sum(final, y)
        top = final.argmax(-1)
        for e, logits in early.items():
            sums[f"exit{e}"] += _xent_sum(logits, y)
            agree[e] += int((logits.argmax(-1) == top).sum())
    count = n * seq_len
    out = {"tokens": count}
    for k, s in sums.items():
        out[f"loss_{k}"] = s / count
        out[f"ppl_{k}"] = math.exp(s / count)
    out.update({f"teacher_forced_acceptance_exit{e}": agree[e] / count for e in exit_layers})
    return out


def greedy(w: dict, cfg: dict, prompts: np.ndarray, new_tokens: int,
           exit_layers: tuple[int, ...]) -> tuple[dict, np.ndarray]:
    """Greedy generation from prompts [B, P]; per exit, the early==final fraction."""
    seq = prompts.astype(np.int64)
    agree = {e: 0 for e in exit_layers}
    for _ in range(new_tokens):
        final, early = forward(w, cfg, seq, exit_layers)
        nxt = final[:, -1].argmax(-1)
        for e in exit_layers:
            agree[e] += int((early[e][:, -1].argmax(-1) == nxt).sum())
        seq = np.concatenate([seq, nxt[:, None]], axis=1)
    total = prompts.shape[0] * new_tokens
    return ({"generated_tokens": total,
             **{f"greedy_acceptance_exit{e}": agree[e] / total for e in exit_layers}}, seq)


def windows_of(data: np.ndarray, seq_len: int = 256) -> np.ndarray:
    """Non-overlapping windows of seq_len + 1 bytes: int64 [n, seq_len + 1]."""
    n = (data.size - 1) // seq_len
    return np.stack([data[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)]).astype(np.int64)


def draft_acceptance(draft: tuple[dict, dict], target: tuple[dict, dict], data: np.ndarray,
                     prompts: np.ndarray, new_tokens: int, batch: int = 16) -> dict:
    """Draft argmax == target final argmax: teacher-forced on `data`, and on the
    target's greedy continuations of `prompts`."""
    x = windows_of(data)[:, :-1]
    agree = sum(int((forward(*draft, w)[0].argmax(-1) == forward(*target, w)[0].argmax(-1)).sum())
                for w in np.array_split(x, -(-len(x) // batch)))
    _, seq = greedy(*target, prompts, new_tokens, ())
    P = prompts.shape[1]
    d_top = forward(*draft, seq[:, :-1])[0][:, P - 1:].argmax(-1)
    return {"teacher_forced_acceptance": agree / x.size,
            "greedy_acceptance": float((d_top == seq[:, P:]).mean())}


def stage_exits(cfg: dict) -> tuple[int, ...]:
    """Layers U-1, 2U-1, ..., N-U-1: every point where a stage of a multiple of U
    layers can end (none for an unshared model). SPEED with G stages exits after
    layer N/G - 1 (N=12, U=3: G=4 -> layer 2, G=2 -> layer 5)."""
    N = cfg["n_layers"]
    if cfg["sharing"]["scheme"] == "none":
        return ()
    U = cfg["sharing"].get("unique_layers") or N
    return tuple(range(U - 1, N - 1, U))


def main() -> None:
    ap = argparse.ArgumentParser(description="Held-out perplexity and SPEED acceptance of an .npz.")
    ap.add_argument("npz", type=Path)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--json", type=Path, default=None, help="also write the metrics here")
    ap.add_argument("--target", type=Path, default=None,
                    help="measure the npz as a draft model for this target")
    args = ap.parse_args()
    w, cfg = load(args.npz)
    exits = stage_exits(cfg)
    _, heldout = load_splits()
    sample, prompts = heldout_eval_sample(heldout), heldout_prompts(heldout)
    metrics = {"npz": str(args.npz), "exit_layers": list(exits),
               "heldout": teacher_forced(w, cfg, sample, exits)}
    gen, seq = greedy(w, cfg, prompts, args.new_tokens, exits)
    metrics["greedy"] = gen
    if args.target is not None:
        metrics["draft"] = {"target": args.target.name, **draft_acceptance(
            (w, cfg), load(args.target), sample, prompts, args.new_tokens)}
    metrics["sample"] = bytes(seq[0].astype(np.uint8)).decode("utf-8", errors="replace")
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""Render the model card (markdown) of a trained .npz from train.py's run report.

Usage: python training/model_card.py training/runs/speed_cycle_n8u2.json \
           --out speedsim/data/speed_cycle_n8u2.md
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from corpus import load_splits


def ngram_entropies() -> tuple[float, float]:
    """(unigram, bigram) conditional entropy of the training split, in nats per byte."""
    train, _ = load_splits()
    uni = np.bincount(train, minlength=256) / train.size
    h1 = -float((uni[uni > 0] * np.log(uni[uni > 0])).sum())
    pairs = np.zeros((256, 256))
    np.add.at(pairs, (train[:-1], train[1:]), 1)
    cond = pairs / np.maximum(pairs.sum(1, keepdims=True), 1)
    h2 = -float((pairs * np.log(np.where(cond > 0, cond, 1))).sum() / pairs.sum())
    return h1, h2


def batch_greedy_acceptance(npz: Path, exits: tuple[int, ...] = (1, 3)) -> dict:
    """Batch SPEED acceptance with speedsim's KV-cache decoder: the 8 held-out prompts
    of 64 bytes decoded as one batch for 128 bytes; per exit, the fraction of
    positions accepted for every sequence ("batch") and per sequence ("per_seq")."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from speedsim.config.workload import ModelShape
    from speedsim.model.decoder import greedy_decode
    from speedsim.model.weights import load_npz
    with np.load(npz) as z:
        cfg = json.loads(str(z["config_json"][()]))
        positions = z["pos_emb"].shape[0]
    shape = ModelShape.model_validate({
        **{k: cfg[k] for k in ("d_model", "n_heads", "d_ff", "n_layers", "vocab_size", "mlp")},
        "max_seq_len": positions, "sharing": cfg["sharing"]})
    params = load_npz(npz, shape, min_seq_len=64 + 128)
    _, heldout = load_splits()
    prompts = np.stack([heldout[i * 2048:i * 2048 + 64] for i in range(8)]).astype(np.int64)
    out = {}
    for e in exits:
        r = greedy_decode(params, shape, prompts, 128, exit_layer=e)
        out[str(e)] = {"batch": float(r.accepted.mean()), "per_seq": float((r.early == r.tokens).mean())}
    return out


def _row(name: str, m: dict, key: str, acc: str) -> str:
    tf = f"{m['heldout'][f'teacher_forced_acceptance_{key}']:.3f}" if key != "final" else "—"
    gr = f"{m['greedy'][f'greedy_acceptance_{key}']:.3f}" if key != "final" else "—"
    return (f"| {name} | {acc} | {m['train'][f'loss_{key}']:.3f} | {m['heldout'][f'loss_{key}']:.3f} "
            f"| {m['heldout'][f'ppl_{key}']:.2f} | {tf} | {gr} |")


def render(m: dict, npz_name: str) -> str:
    s, c = m["shape"], m["config"]
    exits = sorted(int(e) for e in c["exits"])
    G_of = {s["n_layers"] // (e + 1): e for e in exits if s["n_layers"] % (e + 1) == 0}
    exit_note = {e: f"G = {g}" for g, e in G_of.items()}
    tokens = c["steps"] * c["batch"] * c["seq_len"]
    rows = [_row("final (after layer 7)", m, "final", "—")]
    rows += [_row(f"early, after layer {e}", m, f"exit{e}", exit_note.get(e, "—")) for e in exits]
    weights = " + ".join(f"{w}·CE(after layer {e})" for e, w in sorted(c["exits"].items()))
    sample = m["sample"].replace("```", "'''")
    h1, h2 = ngram_entropies()
    gap = m["heldout"][f"loss_exit{exits[0]}"] - m["heldout"]["loss_final"]
    h = m["heldout"]
    gaps = ", ".join(f"{h[f'loss_exit{e}'] - h['loss_final']:+.3f} nats after layer {e}" for e in exits)
    depth_note = (f"Held-out loss of each exit relative to\nthe final head: {gaps}. "
                  + ("The later layers add little (well under 0.1 nats),\nwhich is one reason acceptance is high."
                     if gap < 0.1 else "The later layers do real work."))
    b = m.get("batch_greedy")
    if b:
        acc = " and ".join(f"{b[str(e)]['batch']:.3f}" for e in sorted(int(k) for k in b))
        per = " and ".join(f"{b[str(e)]['per_seq']:.3f}" for e in sorted(int(k) for k in b))
        at = " and ".join(f"after layer {e}" for e in sorted(int(k) for k in b))
        batch_note = (f": for the 8 greedy prompts decoded\nas one batch (speedsim's `greedy_decode`, "
                      f"KV cache), {acc} of positions are\naccepted at the exits {at} "
                      f"(per sequence: {per}, the same as the table).")
    else:
        batch_note = "."
    return f"""# {npz_name}: byte-level decoder with cycle sharing, trained for SPEED

Trained by `training/train.py` (PyTorch CPU, seed {c['seed']}); see
`training/README.md` for the recipe, corpus provenance and licences.

## Shape

| | |
|---|---|
| layers N / weight sets U | {s['n_layers']} / {s['unique_layers']}, `{s['scheme']}` sharing (layer l uses set l mod {s['unique_layers']}) |
| d_model, heads (kv heads), d_ff | {s['d_model']}, {s['n_heads']} ({s['n_kv_heads']}), {s['d_ff']}, `{s['mlp']}` MLP |
| vocabulary | {s['vocab_size']} (UTF-8 bytes), LM head tied to the embedding |
| positions | {s['max_seq_len']} (`pos_emb` rows): prompt + new tokens ≤ {s['max_seq_len']} |
| file | float32, keys per `docs/model.md`, with `config_json` |

SPEED's default G = N/U = {s['n_layers'] // s['unique_layers']} stages exit after layer
{s['n_layers'] // (s['n_layers'] // s['unique_layers']) - 1}; G = 2 exits after layer {s['n_layers'] // 2 - 1}.

Workload snippet:

```yaml
model:
  d_model: {s['d_model']}
  n_heads: {s['n_heads']}
  d_ff: {s['d_ff']}
  n_layers: {s['n_layers']}
  vocab_size: {s['vocab_size']}
  max_seq_len: {s['max_seq_len']}
  sharing: {{scheme: {s['scheme']}, unique_layers: {s['unique_layers']}}}
  weights: {{source: packaged, name: {Path(npz_name).stem}}}
```

## Training

Corpus: 1.50 MB of English technical prose (Python reference topics and
standard-library docstrings, PSF licence; Debian's licence texts, verbatim);
held-out split: every tenth 16 KiB block (147,456 bytes).
{c['steps']} AdamW steps × {c['batch']} sequences × {c['seq_len']} bytes = {tokens / 1e6:.2f} M tokens,
peak lr {c['lr']} ({c.get('warmup_steps', 30)} warm-up steps, cosine decay to {c.get('lr_min_ratio', 0.1) * c['lr']:.2g}),
loss = CE(final) + {weights}.
Wall time {m['train_seconds'] / 60:.1f} min on 2 shared CPU cores.

## Quality and SPEED acceptance

Losses are mean next-byte cross-entropy in nats (perplexity per byte =
exp(loss)); "train" is a held-out-sized slice of the training split. Acceptance
is the fraction of positions whose early argmax equals the final argmax:
teacher-forced over {m['heldout']['tokens']:,} held-out positions (256-byte windows), and on
greedy generations ({m['greedy']['generated_tokens']} positions: 8 held-out prompts of 64 bytes, 128 new bytes each).

For scale: a unigram byte model of the training split scores {h1:.2f} nats,
a bigram model {h2:.2f} nats (both measured on the training split itself).

| head | SPEED exit for | train loss | held-out loss | held-out ppl | acceptance, teacher-forced | acceptance, greedy |
|---|---|---|---|---|---|---|
{chr(10).join(rows)}

Reproduce without PyTorch: `python training/evaluate_npz.py speedsim/data/{npz_name}`
(NumPy only; same numbers up to float rounding).

Caveats: this is a small model trained for minutes ({tokens / 1e6:.2f} M tokens); it
models spelling and local structure of its corpus, not meaning. {depth_note}
Greedy generations fall into
loops (often runs of spaces or repeated phrases), where early and final heads
agree easily, so greedy acceptance is higher than teacher-forced acceptance.
For SPEED with batch B > 1 a position is accepted only if it is accepted for
every sequence, so batch acceptance is lower{batch_note}

Sample (greedy, held-out prompt of 64 bytes + 128 generated):

```
{sample}
```
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--npz", type=Path, default=None,
                    help="also measure batch greedy acceptance of this .npz with speedsim's decoder")
    args = ap.parse_args()
    m = json.loads(args.report.read_text())
    if args.npz is not None:
        m["batch_greedy"] = batch_greedy_acceptance(args.npz)
    m["config"]["exits"] = {int(k): v for k, v in m["config"]["exits"].items()}
    args.out.write_text(render(m, args.out.with_suffix(".npz").name))


if __name__ == "__main__":
    main()

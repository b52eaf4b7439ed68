"""Render the model card (markdown) of a trained .npz from train.py's run report.

The card states the shape, the training recipe, and per head (final and every
stage-boundary exit) the train / held-out losses and SPEED acceptance
(teacher-forced and on greedy text), the shallow exit's loss gap, and for a
draft model its acceptance against the target. ``--compare`` adds another
model's held-out loss on the same evaluation sample (an ``evaluate_npz.py
--json`` output), so the card can say how much better the model is.

Usage: python training/model_card.py training/runs/speed_cycle_n12u3.json \
           --out speedsim/data/speed_cycle_n12u3.md --npz speedsim/data/speed_cycle_n12u3.npz
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from corpus import heldout_prompts, load_splits


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


def batch_greedy_acceptance(npz: Path, exits: tuple[int, ...]) -> dict:
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
    prompts = heldout_prompts(heldout).astype(np.int64)
    out = {}
    for e in exits:
        r = greedy_decode(params, shape, prompts, 128, exit_layer=e)
        out[str(e)] = {"batch": float(r.accepted.mean()), "per_seq": float((r.early == r.tokens).mean())}
    return out


def exit_layers(m: dict) -> list[int]:
    return sorted(int(e) for e in m["config"]["exits"])


def _row(name: str, m: dict, key: str, acc: str) -> str:
    tf = f"{m['heldout'][f'teacher_forced_acceptance_{key}']:.3f}" if key != "final" else "—"
    gr = f"{m['greedy'][f'greedy_acceptance_{key}']:.3f}" if key != "final" else "—"
    return (f"| {name} | {acc} | {m['train'][f'loss_{key}']:.3f} | {m['heldout'][f'loss_{key}']:.3f} "
            f"| {m['heldout_full'][f'loss_{key}']:.3f} | {m['heldout'][f'ppl_{key}']:.2f} | {tf} | {gr} |")


def _sharing_text(s: dict) -> str:
    if s["scheme"] == "none":
        return f"{s['n_layers']} / {s['n_layers']}, no sharing (layer l uses set l)"
    return (f"{s['n_layers']} / {s['unique_layers']}, `{s['scheme']}` sharing "
            f"(layer l uses set l mod {s['unique_layers']})")


def _shape_section(m: dict, stem: str) -> str:
    s = m["shape"]
    N, U = s["n_layers"], s["unique_layers"]
    sharing = ("{scheme: none}" if s["scheme"] == "none"
               else f"{{scheme: {s['scheme']}, unique_layers: {U}}}")
    stages = ("" if s["scheme"] == "none" else
              f"\nSPEED's default G = N/U = {N // U} stages exit after layer {U - 1}; "
              f"G = 2 exits after layer {N // 2 - 1}.\n")
    return f"""## Shape

| | |
|---|---|
| layers N / weight sets U | {_sharing_text(s)} |
| d_model, heads (kv heads), d_ff | {s['d_model']}, {s['n_heads']} ({s['n_kv_heads']}), {s['d_ff']}, `{s['mlp']}` MLP |
| vocabulary | {s['vocab_size']} (UTF-8 bytes), LM head tied to the embedding |
| positions | {s['max_seq_len']} (`pos_emb` rows): prompt + new tokens ≤ {s['max_seq_len']} |
| file | {m.get('storage', 'float32')}, keys per `docs/model.md`, with `config_json` |
{stages}
Workload snippet:

```yaml
model:
  d_model: {s['d_model']}
  n_heads: {s['n_heads']}
  d_ff: {s['d_ff']}
  n_layers: {N}
  vocab_size: {s['vocab_size']}
  max_seq_len: {s['max_seq_len']}
  sharing: {sharing}
  weights: {{source: packaged, name: {stem}}}
```
"""


def _training_section(m: dict) -> str:
    c = m["config"]
    tokens = c["steps"] * c["batch"] * c["seq_len"]
    weights = " + ".join(f"{w}·CE(after layer {e})" for e, w in sorted(c["exits"].items()))
    loss = "CE(final)" + (f" + {weights}" if weights else "")
    master = m.get("heldout_master_weights", {}).get("loss_final")
    rounding = (f"\nHeld-out loss of the float32 master weights before float16 rounding: "
                f"{master:.4f} (stored weights: {m['heldout']['loss_final']:.4f}).\n" if master else "")
    return f"""## Training

Corpus: 10.3 MB (`training/corpus`): Python reference topics, standard-library
docstrings and the standard library's own source (PSF licence), Debian's
licence texts (verbatim). Held-out split: every tenth 16 KiB block
(1,015,808 bytes); the card's "held-out" columns use its evaluation sample of
9 evenly spaced held-out blocks (147,456 bytes), "full held-out" all of it.
{c['steps']} AdamW steps × {c['batch']} sequences × {c['seq_len']} bytes = {tokens / 1e6:.1f} M tokens,
peak lr {c['lr']} ({c['warmup_steps']} warm-up steps, cosine decay to {c['lr_min_ratio'] * c['lr']:.2g}),
loss = {loss}.
Training time {m['train_seconds'] / 60:.1f} min on {m.get('device', 'the CPU')}.
{rounding}"""


def _quality_section(m: dict, compare: dict | None) -> str:
    s, exits = m["shape"], exit_layers(m)
    N = s["n_layers"]
    G_of = {N // (e + 1): e for e in exits if N % (e + 1) == 0}
    note = {e: f"G = {g}" for g, e in G_of.items()}
    rows = [_row(f"final (after layer {N - 1})", m, "final", "—")]
    rows += [_row(f"early, after layer {e}", m, f"exit{e}", note.get(e, "—")) for e in exits]
    h1, h2 = ngram_entropies()
    cmp_line = ""
    if compare:
        cmp_line = (f"\nOn the same evaluation sample `{Path(compare['npz']).name}` scores "
                    f"{compare['heldout']['loss_final']:.3f} nats at its final head.\n")
    return f"""## Quality and SPEED acceptance

Losses are mean next-byte cross-entropy in nats (perplexity per byte =
exp(loss)); "train" is a held-out-sized slice of the training split. Acceptance
is the fraction of positions whose early argmax equals the final argmax:
teacher-forced over {m['heldout']['tokens']:,} held-out positions (256-byte windows), and on
greedy generations ({m['greedy']['generated_tokens']} positions: 8 held-out prompts of 64 bytes, 128 new bytes each).

For scale: a unigram byte model of the training split scores {h1:.2f} nats,
a bigram model {h2:.2f} nats (both measured on the training split itself).
{cmp_line}
| head | SPEED exit for | train loss | held-out loss | full held-out loss | held-out ppl | acceptance, teacher-forced | acceptance, greedy |
|---|---|---|---|---|---|---|---|
{chr(10).join(rows)}
"""


def _depth_note(m: dict) -> str:
    exits = exit_layers(m)
    if not exits:
        return ""
    h = m["heldout"]
    gaps = ", ".join(f"{h[f'loss_exit{e}'] - h['loss_final']:+.3f} nats after layer {e}" for e in exits)
    gap = h[f"loss_exit{exits[0]}"] - h["loss_final"]
    verdict = ("The later layers add little (well under 0.1 nats), which is one reason acceptance is high."
               if gap < 0.1 else
               f"The shallow exit model (the first {exits[0] + 1} layers and the head, decoded alone) "
               f"is {gap:.3f} nats/byte worse than the full depth: the later layers do real work.")
    return f"Held-out loss of each exit relative to the final head: {gaps}. {verdict}\n"


def _batch_note(m: dict) -> str:
    b = m.get("batch_greedy")
    if not b:
        return ""
    keys = sorted(int(k) for k in b)
    acc = " and ".join(f"{b[str(e)]['batch']:.3f}" for e in keys)
    per = " and ".join(f"{b[str(e)]['per_seq']:.3f}" for e in keys)
    at = " and ".join(f"after layer {e}" for e in keys)
    return (f"For SPEED with batch B > 1 a position is accepted only if it is accepted for\n"
            f"every sequence: for the 8 greedy prompts decoded as one batch (speedsim's\n"
            f"`greedy_decode`, KV cache), {acc} of positions are accepted at the exits\n"
            f"{at} (per sequence: {per}).\n")


def _draft_section(m: dict) -> str:
    d = m.get("draft")
    if not d:
        return ""
    return f"""
## As a draft model

Against the target `{d['target']}` (same corpus and byte vocabulary), the
draft's argmax equals the target's final argmax at {d['teacher_forced_acceptance']:.3f} of
the held-out positions (teacher-forced, the evaluation sample) and at
{d['greedy_acceptance']:.3f} of the positions of the target's own greedy continuations of the
8 held-out prompts (128 bytes each), the text draft-model speculative decoding verifies.
"""


def render(m: dict, npz_name: str, compare: dict | None = None) -> str:
    stem = Path(npz_name).stem
    kind = ("decoder without weight sharing (draft model)" if m["shape"]["scheme"] == "none"
            else "decoder with cycle sharing, trained for SPEED")
    sample = m["sample"].replace("```", "'''")
    target = (f"Reproduce: `python training/evaluate_npz.py speedsim/data/{npz_name}"
              + (f" --target speedsim/data/{m['draft']['target']}`" if m.get("draft") else "`"))
    return f"""# {npz_name}: byte-level {kind}

Trained by `training/train.py` (seed {m['config']['seed']}); see `training/README.md`
for the recipe, corpus provenance and licences.

{_shape_section(m, stem)}
{_training_section(m)}
{_quality_section(m, compare)}
{target} (NumPy only; same numbers up to float rounding).

Caveats: a small model trained for minutes; it models spelling, code layout
and local structure of its corpus, not meaning. {_depth_note(m)}
Greedy generations fall into loops (often runs of spaces or repeated phrases),
where heads agree easily, so greedy acceptance is higher than teacher-forced.
{_batch_note(m)}{_draft_section(m)}
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
    ap.add_argument("--compare", type=Path, default=None,
                    help="evaluate_npz.py --json output of another model, quoted for comparison")
    ap.add_argument("--notes", type=Path, default=None,
                    help="markdown appended to the card (training/cards/<name>.md: measured elsewhere)")
    args = ap.parse_args()
    m = json.loads(args.report.read_text())
    m["config"]["exits"] = {int(k): v for k, v in m["config"]["exits"].items()}
    if args.npz is not None and m["config"]["exits"]:
        m["batch_greedy"] = batch_greedy_acceptance(args.npz, tuple(exit_layers(m))[:2])
    compare = json.loads(args.compare.read_text()) if args.compare else None
    notes = "\n" + args.notes.read_text() if args.notes else ""
    args.out.write_text(render(m, args.out.with_suffix(".npz").name, compare) + notes)


if __name__ == "__main__":
    main()

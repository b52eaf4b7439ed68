"""Train a byte-level, cycle-shared decoder with early-exit heads for SPEED.

The model is exactly the reference decoder of ``docs/model.md``: GPT-style
pre-LayerNorm, learned positions, tanh-GELU MLP, final LayerNorm and an LM head
tied to the token embedding. N layers reuse U weight sets in the ``cycle``
scheme (layer l uses set l mod U), so SPEED's default G = N/U stages all run
the same weights.

SPEED launches the next token from the *early* prediction at the end of stage
0; it pays off only if that prediction usually equals the final one. The loss
therefore trains the shared final norm and head at every exit point too:

    loss = CE(final head) + sum_e w_e * CE(head after layer e)

The exits are the stage boundaries U-1, 2U-1, ..., N-U-1 unless --exits
names others: with N=12, U=3 they are layers 2 (SPEED's default G = 4),
5 (G = 2) and 8. A model with scheme ``none`` and no exits is a plain decoder
(the draft model of draft-model speculative decoding).

Runs on the CPU (float32) or on a CUDA GPU (--device cuda: bf16 autocast for
training; evaluation always in float32 with TF32 off). Deterministic given
--seed: one seeded CPU generator draws the initial weights and every batch
(so the batches are the same on any device), the step count is fixed, and
PyTorch runs with deterministic algorithms where it has them.

--fp16 stores the weights as float16; the metrics are then measured on the
float16-rounded weights (what is shipped), and the report also gives the
float32 master weights' held-out losses.

The recipes of the shipped models are in training/README.md.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine
# spinning threads steal the core the other thread needs (2-3x slower steps).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402  (after OMP_WAIT_POLICY)
import torch.nn.functional as F  # noqa: E402

from corpus import heldout_eval_sample, heldout_prompts, load_splits  # noqa: E402


@dataclass(frozen=True)
class Shape:
    """The model shape; field names follow speedsim's ``ModelShape``."""

    d_model: int = 384
    n_heads: int = 6
    n_kv_heads: int = 6
    d_ff: int = 1536
    n_layers: int = 12  # N
    unique_layers: int = 3  # U
    vocab_size: int = 256  # bytes
    max_seq_len: int = 256  # rows of pos_emb
    mlp: str = "gelu"
    scheme: str = "cycle"

    def set_of(self, layer: int) -> int:
        """Weight set used by `layer` (cycle sharing: l mod U; none: U = N, set l)."""
        assert self.scheme in ("cycle", "none"), self.scheme
        return layer % self.unique_layers

    def config_json(self) -> str:
        """The ``config_json`` entry of the .npz (docs/model.md)."""
        return json.dumps({
            "d_model": self.d_model, "n_heads": self.n_heads, "n_kv_heads": self.n_kv_heads,
            "d_ff": self.d_ff, "n_layers": self.n_layers, "vocab_size": self.vocab_size,
            "mlp": self.mlp,
            "sharing": {"scheme": self.scheme, "unique_layers": self.unique_layers},
        }, sort_keys=True)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    steps: int = 1500
    batch: int = 128  # sequences per step
    seq_len: int = 256  # tokens per sequence (<= max_seq_len)
    lr: float = 1e-3  # peak; linear warm-up then cosine decay to lr_min_ratio * lr
    lr_min_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.1  # matrices only
    grad_clip: float = 1.0
    init_std: float = 0.02
    exits: dict = field(default_factory=lambda: {2: 0.005, 5: 0.005, 8: 0.005})  # layer -> weight
    device: str = "cpu"


# --- model -----------------------------------------------------------------------------------


def init_params(shape: Shape, init_std: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """All parameters under their .npz key names; matrices N(0, init_std), LN (1, 0).

    The residual output projections (wo, w_down) start at init_std / sqrt(2N), the
    GPT-2 scaling, because each weight set is applied N/U times.
    """
    d, dh = shape.d_model, shape.d_model // shape.n_heads
    qkv_cols = d + 2 * shape.n_kv_heads * dh
    up_cols = shape.d_ff if shape.mlp == "gelu" else 2 * shape.d_ff
    resid_std = init_std / math.sqrt(2 * shape.n_layers)

    def normal(rows: int, cols: int, std: float) -> torch.Tensor:
        return torch.randn(rows, cols, generator=gen) * std

    p = {"tok_emb": normal(shape.vocab_size, d, init_std),
         "pos_emb": normal(shape.max_seq_len, d, init_std),
         "ln_f.w": torch.ones(d), "ln_f.b": torch.zeros(d)}
    for u in range(shape.unique_layers):
        s = f"sets.{u}."
        p.update({s + "ln1.w": torch.ones(d), s + "ln1.b": torch.zeros(d),
                  s + "wqkv": normal(d, qkv_cols, init_std),
                  s + "wo": normal(d, d, resid_std),
                  s + "ln2.w": torch.ones(d), s + "ln2.b": torch.zeros(d),
                  s + "w_up": normal(d, up_cols, init_std),
                  s + "w_down": normal(shape.d_ff, d, resid_std)})
    return {k: v.requires_grad_(True) for k, v in p.items()}


def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, (x.shape[-1],), w, b, eps=1e-5)


def _layer(p: dict, s: str, x: torch.Tensor, shape: Shape) -> torch.Tensor:
    """One pre-LN block with weight set prefix `s`; x [B, T, d]."""
    B, T, d = x.shape
    H, kvh, dh = shape.n_heads, shape.n_kv_heads, d // shape.n_heads
    h = _ln(x, p[s + "ln1.w"], p[s + "ln1.b"])
    q, k, v = (h @ p[s + "wqkv"]).split([H * dh, kvh * dh, kvh * dh], dim=-1)
    q = q.view(B, T, H, dh).transpose(1, 2)  # [B, H, T, dh]
    k = k.view(B, T, kvh, dh).transpose(1, 2).repeat_interleave(H // kvh, dim=1)
    v = v.view(B, T, kvh, dh).transpose(1, 2).repeat_interleave(H // kvh, dim=1)
    a = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, dh]
    x = x + a.transpose(1, 2).reshape(B, T, d) @ p[s + "wo"]
    h = _ln(x, p[s + "ln2.w"], p[s + "ln2.b"]) @ p[s + "w_up"]
    if shape.mlp == "gelu":
        h = F.gelu(h, approximate="tanh")
    else:
        g, up = h.chunk(2, dim=-1)
        h = F.gelu(g, approximate="tanh") * up
    return x + h @ p[s + "w_down"]


def head(p: dict, x: torch.Tensor) -> torch.Tensor:
    """Final norm and tied LM head: [B, T, d] -> logits [B, T, V]."""
    return _ln(x, p["ln_f.w"], p["ln_f.b"]) @ p["tok_emb"].T


def forward(p: dict, shape: Shape, tokens: torch.Tensor,
            exit_layers: tuple[int, ...] = ()) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """tokens [B, T] -> (final logits [B, T, V], {exit layer: early logits [B, T, V]})."""
    T = tokens.shape[1]
    assert T <= shape.max_seq_len, (T, shape.max_seq_len)
    x = p["tok_emb"][tokens] + p["pos_emb"][:T]
    early = {}
    for layer in range(shape.n_layers):
        x = _layer(p, f"sets.{shape.set_of(layer)}.", x, shape)
        if layer in exit_layers:
            early[layer] = head(p, x)
    return head(p, x), early


# --- training --------------------------------------------------------------------------------


def lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (cfg.lr_min_ratio + (1 - cfg.lr_min_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def sample_batch(data: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """Random windows of seq_len + 1 bytes: [batch, seq_len + 1] int64 on data's device.
    The start offsets come from the CPU generator `gen`, so they do not depend on the device."""
    starts = torch.randint(0, data.numel() - cfg.seq_len - 1, (cfg.batch,), generator=gen)
    offsets = torch.arange(cfg.seq_len + 1)
    return data[(starts[:, None] + offsets).to(data.device)]


def losses(p: dict, shape: Shape, window: torch.Tensor,
           exit_layers: tuple[int, ...]) -> dict[str, torch.Tensor]:
    """Mean next-byte cross-entropy (nats) of the final head and of each exit."""
    x, y = window[:, :-1], window[:, 1:]
    final, early = forward(p, shape, x, exit_layers)
    V = shape.vocab_size
    out = {"final": F.cross_entropy(final.reshape(-1, V), y.reshape(-1))}
    for e, logits in early.items():
        out[f"exit{e}"] = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
    return out


def make_optimizer(p: dict, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay on the matrices except pos_emb."""
    decay = [v for k, v in p.items() if v.ndim == 2 and k != "pos_emb"]
    no_decay = [v for k, v in p.items() if not (v.ndim == 2 and k != "pos_emb")]
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=cfg.lr, betas=(0.9, 0.95))


def train(shape: Shape, cfg: TrainConfig, train_data: torch.Tensor, log,
          probe=None) -> dict:
    """Run cfg.steps AdamW steps; return the trained parameters (on cfg.device).

    `probe(p)`, if given, returns a short held-out summary, logged every 500 steps."""
    gen = torch.Generator().manual_seed(cfg.seed)
    p = {k: v.detach().to(cfg.device).requires_grad_(True)
         for k, v in init_params(shape, cfg.init_std, gen).items()}
    opt = make_optimizer(p, cfg)
    exit_layers = tuple(sorted(cfg.exits))
    use_bf16 = cfg.device != "cpu"
    t0 = time.time()
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=use_bf16):
            ls = losses(p, shape, sample_batch(train_data, cfg, gen), exit_layers)
        total = ls["final"] + sum(w * ls[f"exit{e}"] for e, w in cfg.exits.items())
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), cfg.grad_clip)
        opt.step()
        if step % 100 == 0 or step == cfg.steps - 1:
            parts = " ".join(f"{k}={v.item():.3f}" for k, v in ls.items())
            log(f"step {step:5d} lr {lr_at(step, cfg):.2e} {parts} ({time.time() - t0:.0f}s)")
        if probe is not None and (step + 1) % 500 == 0:
            log(f"  held-out at step {step + 1}: {probe({k: v.detach() for k, v in p.items()})}")
    return {k: v.detach() for k, v in p.items()}


# --- evaluation ------------------------------------------------------------------------------


@torch.no_grad()
def evaluate(p: dict, shape: Shape, data: torch.Tensor, exit_layers: tuple[int, ...],
             seq_len: int, batch: int = 16) -> dict:
    """Teacher-forced next-byte loss per head and early-vs-final argmax agreement.

    `data` is cut into non-overlapping windows of seq_len + 1 bytes (the tail
    that does not fill a window is dropped).
    """
    n = (data.numel() - 1) // seq_len
    windows = torch.stack([data[i * seq_len:i * seq_len + seq_len + 1] for i in range(n)])
    windows = windows.to(next(iter(p.values())).device)
    sums = {"final": 0.0, **{f"exit{e}": 0.0 for e in exit_layers}}
    agree = {e: 0 for e in exit_layers}
    count = 0
    for i in range(0, n, batch):
        w = windows[i:i + batch]
        x, y = w[:, :-1], w[:, 1:]
        final, early = forward(p, shape, x, exit_layers)
        V = shape.vocab_size
        sums["final"] += F.cross_entropy(final.reshape(-1, V), y.reshape(-1), reduction="sum").item()
        top = final.argmax(-1)
        for e, logits in early.items():
            sums[f"exit{e}"] += F.cross_entropy(logits.reshape(-1, V), y.reshape(-1),
                                                reduction="sum").item()
            agree[e] += (logits.argmax(-1) == top).sum().item()
        count += y.numel()
    out = {"tokens": count}
    for k, s in sums.items():
        out[f"loss_{k}"] = s / count
        out[f"ppl_{k}"] = math.exp(s / count)
    for e in exit_layers:
        out[f"teacher_forced_acceptance_exit{e}"] = agree[e] / count
    return out


@torch.no_grad()
def greedy_acceptance(p: dict, shape: Shape, prompts: torch.Tensor, new_tokens: int,
                      exit_layers: tuple[int, ...]) -> dict:
    """Greedy-decode from prompts [B, P]; per exit, the fraction of generated
    positions whose early argmax equals the final argmax. Returns the samples too."""
    seq = prompts.clone().to(next(iter(p.values())).device)
    agree = {e: 0 for e in exit_layers}
    for _ in range(new_tokens):
        final, early = forward(p, shape, seq, exit_layers)
        nxt = final[:, -1].argmax(-1)
        for e in exit_layers:
            agree[e] += (early[e][:, -1].argmax(-1) == nxt).sum().item()
        seq = torch.cat([seq, nxt[:, None]], dim=1)
    total = prompts.shape[0] * new_tokens
    return {"generated_tokens": total,
            **{f"greedy_acceptance_exit{e}": agree[e] / total for e in exit_layers},
            "samples": seq}


def export_npz(p: dict, shape: Shape, path: Path, dtype=np.float32) -> None:
    """Write the weights (float32 or float16) under the docs/model.md keys plus config_json."""
    arrays = {k: v.cpu().numpy().astype(dtype) for k, v in p.items()}
    arrays["config_json"] = np.array(shape.config_json())
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)


def stage_exit_layers(shape: Shape) -> tuple[int, ...]:
    """Layers U-1, 2U-1, ..., N-U-1: the ends of stages of a multiple of U layers."""
    if shape.scheme == "none":
        return ()
    return tuple(range(shape.unique_layers - 1, shape.n_layers - 1, shape.unique_layers))


def parse_exits(text: str | None, shape: Shape, weight: float) -> dict[int, float]:
    """--exits: None = every stage boundary at `weight`; "none" = no exits; else "l:w,l:w"."""
    if text is None:
        return {e: weight for e in stage_exit_layers(shape)}
    if text == "none":
        return {}
    return {int(a): float(b) for a, b in (kv.split(":") for kv in text.split(","))}


def shape_from_config(cfg: dict, positions: int) -> Shape:
    """The Shape of an .npz's config_json (positions = rows of pos_emb)."""
    sharing = cfg["sharing"]
    return Shape(d_model=cfg["d_model"], n_heads=cfg["n_heads"],
                 n_kv_heads=cfg.get("n_kv_heads") or cfg["n_heads"], d_ff=cfg["d_ff"],
                 n_layers=cfg["n_layers"], vocab_size=cfg["vocab_size"], max_seq_len=positions,
                 mlp=cfg["mlp"], scheme=sharing["scheme"],
                 unique_layers=sharing.get("unique_layers") or cfg["n_layers"])


def load_torch(path: Path, device: str) -> tuple[dict, Shape]:
    """(parameters as float32 tensors on `device`, Shape) of an .npz."""
    with np.load(path) as z:
        cfg = json.loads(str(z["config_json"][()]))
        p = {k: torch.from_numpy(z[k].astype(np.float32)).to(device)
             for k in z.files if k != "config_json"}
    return p, shape_from_config(cfg, p["pos_emb"].shape[0])


@torch.no_grad()
def draft_acceptance(p: dict, shape: Shape, target: Path, data: torch.Tensor,
                     prompts: torch.Tensor, new_tokens: int, seq_len: int) -> dict:
    """How often the draft's argmax equals the target's final argmax: teacher-forced on
    `data` (256-byte windows), and on the target's own greedy continuations of `prompts`
    (the text draft-model speculative decoding verifies)."""
    tp, tshape = load_torch(target, next(iter(p.values())).device.type)
    n = (data.numel() - 1) // seq_len
    x = torch.stack([data[i * seq_len:i * seq_len + seq_len] for i in range(n)]).to(tp["tok_emb"].device)
    agree = sum(int((forward(p, shape, w)[0].argmax(-1) == forward(tp, tshape, w)[0].argmax(-1)).sum())
                for w in x.split(16))
    seq = greedy_acceptance(tp, tshape, prompts, new_tokens, ())["samples"]
    P = prompts.shape[1]
    d_top = forward(p, shape, seq[:, :-1])[0][:, P - 1:].argmax(-1)
    return {"target": target.name, "teacher_forced_acceptance": agree / (n * seq_len),
            "greedy_acceptance": float((d_top == seq[:, P:]).float().mean())}


def configure_torch(device: str) -> None:
    """Deterministic kernels: a fixed thread count on the CPU; on CUDA deterministic
    cuBLAS workspaces and no TF32 (warn-only where a kernel has no deterministic form)."""
    torch.set_num_threads(2 if device == "cpu" else 8)
    if device == "cpu":
        torch.use_deterministic_algorithms(True)
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="Train a byte-level (cycle-shared) decoder for SPEED.")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--seed", type=int, default=TrainConfig.seed)
    ap.add_argument("--steps", type=int, default=TrainConfig.steps)
    ap.add_argument("--batch", type=int, default=TrainConfig.batch)
    ap.add_argument("--lr", type=float, default=TrainConfig.lr)
    ap.add_argument("--warmup", type=int, default=TrainConfig.warmup_steps,
                    help="linear warm-up steps before the cosine decay")
    ap.add_argument("--lr-min-ratio", type=float, default=TrainConfig.lr_min_ratio,
                    help="cosine decays to this fraction of the peak lr")
    ap.add_argument("--d-model", type=int, default=Shape.d_model)
    ap.add_argument("--n-heads", type=int, default=Shape.n_heads)
    ap.add_argument("--d-ff", type=int, default=Shape.d_ff)
    ap.add_argument("--n-layers", type=int, default=Shape.n_layers)
    ap.add_argument("--unique-layers", type=int, default=Shape.unique_layers)
    ap.add_argument("--scheme", default="cycle", choices=("cycle", "none"))
    ap.add_argument("--exits", default=None,
                    help="exit layer:loss weight pairs, comma-separated, or 'none' "
                         "(default: every stage boundary at --exit-weight)")
    ap.add_argument("--exit-weight", type=float, default=0.005)
    ap.add_argument("--fp16", action="store_true", help="store float16 weights")
    ap.add_argument("--target", type=Path, default=None,
                    help="also measure this model's acceptance as a draft for the target .npz")
    ap.add_argument("--report", type=Path, default=None,
                    help="metrics JSON (default: training/runs/<out stem>.json)")
    return ap.parse_args()


def make_config(args: argparse.Namespace) -> tuple[Shape, TrainConfig]:
    unique = args.n_layers if args.scheme == "none" else args.unique_layers
    shape = Shape(d_model=args.d_model, n_heads=args.n_heads, n_kv_heads=args.n_heads,
                  d_ff=args.d_ff, n_layers=args.n_layers, unique_layers=unique,
                  scheme=args.scheme)
    cfg = TrainConfig(seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr,
                      warmup_steps=args.warmup, lr_min_ratio=args.lr_min_ratio,
                      exits=parse_exits(args.exits, shape, args.exit_weight), device=args.device)
    return shape, cfg


def open_log(report_path: Path):
    log_file = open(report_path.with_suffix(".log"), "w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_file.write(msg + "\n")
        log_file.flush()
    return log


def measure(p: dict, shape: Shape, cfg: TrainConfig, splits: dict, exit_layers) -> dict:
    """Losses and acceptance on the training slice, the held-out evaluation sample
    (the model card's numbers) and the whole held-out split, and greedy acceptance."""
    m = {name: evaluate(p, shape, splits[name], exit_layers, cfg.seq_len)
         for name in ("train", "heldout", "heldout_full")}
    gen = greedy_acceptance(p, shape, splits["prompts"], 128, exit_layers)
    samples = gen.pop("samples")
    m["greedy"] = gen
    m["sample"] = bytes(samples[0].tolist()).decode("utf-8", errors="replace")
    return m


def main() -> None:
    """1. configure, 2. load the corpus, 3. train, 4. round and export, 5. measure, 6. report."""
    args = parse_args()
    shape, cfg = make_config(args)
    configure_torch(cfg.device)
    report_path = args.report or Path(__file__).parent / "runs" / f"{args.out.stem}.json"
    report_path.parent.mkdir(parents=True, exist_ok=True)
    log = open_log(report_path)

    train_bytes, heldout_bytes = load_splits()
    as_t = lambda a: torch.from_numpy(a.astype(np.int64))  # noqa: E731
    splits = {"heldout_full": as_t(heldout_bytes), "heldout": as_t(heldout_eval_sample(heldout_bytes)),
              "prompts": as_t(heldout_prompts(heldout_bytes))}
    splits["train"] = heldout_like_sample(as_t(train_bytes), splits["heldout"].numel(),
                                          torch.Generator().manual_seed(cfg.seed + 1))
    train_data = as_t(train_bytes).to(cfg.device)
    log(f"shape {asdict(shape)}\nconfig {asdict(cfg)}")
    log(f"corpus: {train_data.numel()} train bytes, {splits['heldout_full'].numel()} held-out bytes")
    exit_layers = tuple(sorted(cfg.exits))

    def probe(p: dict) -> str:
        r = evaluate(p, shape, splits["heldout"], exit_layers, cfg.seq_len)
        return " ".join(f"{k}={v:.3f}" for k, v in r.items() if k.startswith("loss_"))

    t0 = time.time()
    p = train(shape, cfg, train_data, log, probe)
    train_s = time.time() - t0
    master = {k: v for k, v in evaluate(p, shape, splits["heldout"], exit_layers, cfg.seq_len).items()
              if k.startswith("loss_")}
    if args.fp16:
        p = {k: v.half().float() for k, v in p.items()}
    export_npz(p, shape, args.out, np.float16 if args.fp16 else np.float32)

    metrics = {"train_seconds": round(train_s, 1), "device": device_name(cfg.device),
               "storage": "float16" if args.fp16 else "float32", "heldout_master_weights": master,
               **measure(p, shape, cfg, splits, exit_layers)}
    if args.target is not None:
        metrics["draft"] = draft_acceptance(p, shape, args.target, splits["heldout"],
                                            splits["prompts"], 128, cfg.seq_len)
    log(json.dumps(metrics, indent=2))
    report_path.write_text(json.dumps({"shape": asdict(shape), "config": asdict(cfg),
                                       **metrics}, indent=2) + "\n")


def device_name(device: str) -> str:
    if device == "cpu":
        return f"CPU, {torch.get_num_threads()} threads"
    return torch.cuda.get_device_name(0)


def heldout_like_sample(train_data: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """A contiguous slice of the training stream as long as the held-out set."""
    start = int(torch.randint(0, train_data.numel() - n, (1,), generator=gen))
    return train_data[start:start + n]


if __name__ == "__main__":
    main()

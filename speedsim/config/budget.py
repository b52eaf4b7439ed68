"""How much work a configuration asks for, estimated before anything is built.

A run's cost grows with its work items: one per op of one token at one layer
(``OPS_PER_LAYER`` of them, plus ``OPS_PER_TOKEN`` per pass: the shipped
workloads have 12.2–12.6 trace rows per layer and decoded position), for each
strategy. Memory grows with the
items (plan, event log, tables: ``BYTES_PER_ITEM``, measured at about 4 KiB on
``llama7b_cycle_u8``, 650 MiB for 168 k items) plus the reference decoder's float32
weights and KV cache when the weights are numeric. A configuration whose
estimate exceeds ``Limits`` is refused with both numbers and the ways out,
instead of being accepted and killed for memory minutes later.
"""

from __future__ import annotations

from dataclasses import dataclass

from speedsim.config.errors import ConfigError

OPS_PER_LAYER = 12  # qkv, attn_score, softmax, attn_value, out_proj, 2 norms, 2 residuals, mlp
OPS_PER_TOKEN = 3  # embed, final norm, LM head (a pick kernel, ``pick: kernel``, is one more)
BYTES_PER_ITEM = 4096
FLOAT32_BYTES = 4
GIB = 1024 ** 3


@dataclass(frozen=True)
class Limits:
    """Largest run accepted without an explicit override."""

    max_work_items: int = 2_000_000  # about 5 minutes and 8 GiB of replay
    max_memory_gib: float = 8.0


def work_items(wl, n_strategies: int) -> int:
    """Estimated work items of a run: every op of every layer for each of the ``new_tokens``
    passes (prefill and decode), for each strategy. Fusing lowers SPEED's count and
    flushes raise it; on the shipped workloads the estimate is within a third of the count."""
    m, g = wl.model, wl.generation
    return (OPS_PER_LAYER * m.n_layers + OPS_PER_TOKEN) * g.new_tokens * max(n_strategies, 1)


def numeric_bytes(wl) -> int:
    """float32 weights and KV cache of the NumPy reference decoder (0 for shape-only)."""
    m, g = wl.model, wl.generation
    if m.weights.source == "shape_only":
        return 0
    d, kv_dim = m.d_model, m.kv_heads * m.head_dim
    mlp_mats = 3 if m.mlp == "gated_gelu" else 2
    per_set = d * (d + 2 * kv_dim) + d * d + mlp_mats * d * m.d_ff
    seq = m.max_seq_len or g.prompt_tokens + g.new_tokens
    params = m.weight_sets * per_set + (m.vocab_size + seq) * d
    kv_cache = m.n_layers * 2 * g.batch * seq * kv_dim
    return FLOAT32_BYTES * (params + kv_cache)


def check_budget(wl, n_strategies: int, limits: Limits = Limits()) -> None:
    """``ConfigError`` when the run would exceed ``limits``, naming the keys that size it."""
    items = work_items(wl, n_strategies)
    item_gib = items * BYTES_PER_ITEM / GIB
    numeric_gib = numeric_bytes(wl) / GIB
    m, g = wl.model, wl.generation
    if items > limits.max_work_items:
        raise _too_big(f"about {items:,} work items (limit {limits.max_work_items:,})",
                       f"model.n_layers={m.n_layers:,} or generation.new_tokens={g.new_tokens:,}",
                       "--max-work-items", "workload.model.n_layers")
    if item_gib + numeric_gib > limits.max_memory_gib:
        big_numeric = numeric_gib > item_gib
        keys = (f"generation.batch={g.batch:,}, model.vocab_size={m.vocab_size:,}, d_model, d_ff, "
                "or use model.weights={source: shape_only}" if big_numeric else
                f"model.n_layers={m.n_layers:,} or generation.new_tokens={g.new_tokens:,}")
        raise _too_big(f"about {item_gib + numeric_gib:,.1f} GiB of memory ({numeric_gib:,.1f} GiB "
                       f"of float32 weights and KV cache; limit {limits.max_memory_gib:g} GiB)",
                       keys, "--max-memory-gib",
                       "workload.model" if big_numeric else "workload.model.n_layers")


def _too_big(what: str, keys: str, option: str, key: str) -> ConfigError:
    return ConfigError(f"this run needs {what}: lower {keys}, or raise the limit ({option})",
                       key=key)

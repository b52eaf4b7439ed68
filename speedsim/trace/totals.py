"""Closed-form totals of a run, independent of the trace builders (a cross-check)."""

from __future__ import annotations


def total_macs(shape, generation) -> int:
    """MACs of prefill + greedy decoding: sum of the trace's ``macs`` column.

    Per layer and input group (m = B·t rows, keys L): m·d·(d + 2·kvh·dh) + m·d·d
    + m·d·up + m·d_ff·d dense, plus 2·B·H·t·dh·L attention. Decode positions
    p = P..P+T-2 have L = p + 1, summing to (T-1)(2P+T)/2. One LM head on B
    rows per group.
    """
    d, H, kvh, dh = shape.d_model, shape.n_heads, shape.kv_heads, shape.head_dim
    F, N, V = shape.d_ff, shape.n_layers, shape.vocab_size
    P, T, B = generation.prompt_tokens, generation.new_tokens, generation.batch
    up = 2 * F if shape.mlp == "gated_gelu" else F
    dense_per_row = d * (d + 2 * kvh * dh) + d * d + d * up + F * d
    head = B * d * V
    prefill = N * (B * P * dense_per_row + 2 * B * H * P * dh * P) + head
    sum_L = (T - 1) * (2 * P + T) // 2
    decode = (T - 1) * (N * B * dense_per_row + head) \
        + N * 2 * B * H * dh * sum_L
    return prefill + decode

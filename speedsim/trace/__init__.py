"""The op trace: one row per op of one token (all batch sequences) at one layer.

Column contract: ``speedsim.trace.schema``. dtypes: ``phase`` and ``op`` str,
every other column int64.

Rows, in order: prefill (position 0), then decode input positions
P .. P+new_tokens-2 ascending (token 0 comes from the prefill, so the last
generated token is never an input). Within a position: ``embed`` (layer -1),
layers 0..N-1 each as norm, qkv, attn_score, softmax, attn_value, out_proj,
residual, norm, mlp_up, act, mlp_down, residual; then the head (norm,
lm_head, pick, layer N). The trace is the same for every strategy, and for
every hardware of one element size: an early exit runs the head rows on an
earlier hidden state (the strategies say when); the pick becomes a work item
only where the hardware issues it as a kernel (``pick: kernel``; ``fused``
hides it in the LM head's drain: ``speedsim.strategies.builder``).

Sizes (B batch, t tokens per sequence — P in prefill, 1 in decode — m = B·t,
L = kv_len = position + t, H heads, kvh KV heads, dh head size):

- dense GEMMs m×k×n, count 1: qkv d×(d+2·kvh·dh) (writes 2·B·t·kvh·dh KV
  elements), out_proj d×d, mlp_up d×d_ff (gated: d×2·d_ff), mlp_down d_ff×d;
- attention: count B·H GEMMs, attn_score t×dh×L and attn_value t×L×dh, both
  computed in full (no causal skipping); each reads B·kvh·L·dh KV elements
  (GQA heads share their K/V);
- heads: norm + lm_head on B rows (prefill: only the last position's), then
  pick: elements B·V (the logits), act_out B (one id per row, at the element
  size), no weights;
- vector ops: elements = vector_ops; ``act`` counts the m·(d_ff or 2·d_ff)
  input elements; embed reads the B·t token rows and t positional rows.

Bytes = elements × ``bytes_per_element`` (the hardware precision).
"""

from __future__ import annotations

import pandas as pd

from speedsim.trace.numeric import numeric_trace
from speedsim.trace.schema import COLUMNS, HEAD_SET, NO_WEIGHTS
from speedsim.trace.shape_only import shape_only_trace
from speedsim.trace.totals import total_macs

__all__ = ["COLUMNS", "HEAD_SET", "NO_WEIGHTS", "build_trace", "numeric_trace",
           "shape_only_trace", "total_macs"]


def build_trace(workload, bytes_per_element: int) -> pd.DataFrame:
    """The op trace of ``workload``, from its shape alone (any weights source)."""
    g = workload.generation
    return shape_only_trace(workload.model, g.prompt_tokens, g.new_tokens, g.batch,
                            bytes_per_element)

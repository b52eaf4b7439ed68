"""The op trace: the table the strategies read (DESIGN §4).

One row per op of one token (all ``batch`` sequences together) at one layer.
Prefill rows cover the whole prompt: ``m = prompt_tokens * batch``.

Columns (all integers unless noted):

=================  ==========================================================
phase              str: ``prefill`` | ``decode``
position           absolute position of the input token (prefill: 0)
layer              0..N-1 for decoder layers; -1 for ``embed``; N for the final
                   norm, the LM head and the pick of the ids (the head rows: every
                   exit head of every strategy — early, second, final, a draft's —
                   runs these rows)
weight_set         0..U-1 for decoder-layer weights; ``HEAD_SET`` (-2) for the
                   tied embedding / LM head and the final norm; ``NO_WEIGHTS``
                   (-1) for ops with no parameters (attention, softmax, act,
                   residual, pick)
op                 str: embed, norm, qkv, attn_score, softmax, attn_value,
                   out_proj, residual, mlp_up, act, mlp_down, lm_head, pick
                   (the greedy pick, or the sampler: logits in, one id per row
                   out; an item only where the hardware says ``pick: kernel``)
m, k, n            GEMM shape Y[m,n] = X[m,k] W[k,n]; 0 for vector ops. For
                   attention: one GEMM per (sequence, head) — ``count`` of them
count              number of independent m×k×n GEMMs (attention: batch*heads;
                   dense layers: 1; vector ops: 0)
heads              attention heads (query heads) for attention ops, else 0
kv_len             keys attended to (attention ops), else 0
elements           elements processed by a vector op, else 0
weight_bytes       parameter bytes the op reads
act_in_bytes       activation bytes read
act_out_bytes      activation bytes written
kv_read_bytes      KV-cache bytes read (attn_score: K, attn_value: V)
kv_write_bytes     KV-cache bytes written (qkv: new K and V)
macs               multiply-accumulates (count * m * k * n for GEMMs)
vector_ops         element operations of vector ops (= elements)
=================  ==========================================================
"""

from __future__ import annotations

from speedsim.contracts.oprow import HEAD_SET, NO_WEIGHTS, OpRow


COLUMNS = OpRow._fields

GEMM_OPS = ("qkv", "out_proj", "mlp_up", "mlp_down", "lm_head")
ATTENTION_OPS = ("attn_score", "attn_value")
VECTOR_OPS = ("embed", "norm", "softmax", "act", "residual", "pick")

"""The op trace from the model shape alone: vectorised, no weights, any model size.

Each input group (the prompt, or one decode position) expands to the same
sequence of rows; only attention sizes depend on the position (through
``kv_len``). So one block of rows is laid out once as ``[positions, rows]``
NumPy columns, every decode position at a time, and flattened position-major.
A 7B shape with 256 new tokens (~100k rows) builds in well under a second.

The row contents are documented in ``speedsim.trace`` (and must equal, row for
row, what ``speedsim.trace.numeric`` records from a real run).
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from speedsim.model.dims import Dims
from speedsim.trace.schema import COLUMNS, HEAD_SET, NO_WEIGHTS

INT_COLUMNS = tuple(c for c in COLUMNS if c not in ("phase", "op"))
BYTE_COLUMNS = ("weight_bytes", "act_in_bytes", "act_out_bytes", "kv_read_bytes",
                "kv_write_bytes")
_ELEMS = {"weight_bytes": "weight", "act_in_bytes": "act_in", "act_out_bytes": "act_out",
          "kv_read_bytes": "kv_read", "kv_write_bytes": "kv_write"}


def _row(layer: int, weight_set: int, op: str, **sizes) -> tuple:
    """(layer, weight_set, op, sizes in elements; values int or int64[n])."""
    return layer, weight_set, op, sizes


def _layer_rows(dm: Dims, B: int, t: int, L: np.ndarray) -> list[tuple]:
    """The 12 ops of one decoder layer for t tokens x B sequences, keys L = kv_len [n]."""
    d, H, kvh, dh, F = dm.d, dm.heads, dm.kv_heads, dm.head_dim, dm.d_ff
    m = B * t
    qn = d + 2 * kvh * dh
    un = 2 * F if dm.gated else F
    scores = B * H * t * L
    kv = B * kvh * L * dh
    norm = dict(elements=m * d, weight=2 * d, act_in=m * d, act_out=m * d)
    resid = dict(elements=m * d, act_in=2 * m * d, act_out=m * d)
    S = 0  # placeholder weight set, filled per layer
    return [
        _row(0, S, "norm", **norm),
        _row(0, S, "qkv", m=m, k=d, n=qn, count=1, weight=d * qn, act_in=m * d,
             act_out=m * qn, kv_write=2 * B * t * kvh * dh, macs=m * d * qn),
        _row(0, NO_WEIGHTS, "attn_score", m=t, k=dh, n=L, count=B * H, heads=H, kv_len=L,
             act_in=m * d, act_out=scores, kv_read=kv, macs=scores * dh),
        _row(0, NO_WEIGHTS, "softmax", elements=scores, act_in=scores, act_out=scores),
        _row(0, NO_WEIGHTS, "attn_value", m=t, k=L, n=dh, count=B * H, heads=H, kv_len=L,
             act_in=scores, act_out=m * d, kv_read=kv, macs=scores * dh),
        _row(0, S, "out_proj", m=m, k=d, n=d, count=1, weight=d * d, act_in=m * d,
             act_out=m * d, macs=m * d * d),
        _row(0, NO_WEIGHTS, "residual", **resid),
        _row(0, S, "norm", **norm),
        _row(0, S, "mlp_up", m=m, k=d, n=un, count=1, weight=d * un, act_in=m * d,
             act_out=m * un, macs=m * d * un),
        _row(0, NO_WEIGHTS, "act", elements=m * un, act_in=m * un, act_out=m * F),
        _row(0, S, "mlp_down", m=m, k=F, n=d, count=1, weight=F * d, act_in=m * F,
             act_out=m * d, macs=m * F * d),
        _row(0, NO_WEIGHTS, "residual", **resid),
    ]


def _head_rows(dm: Dims, B: int) -> list[tuple]:
    """Final norm + tied LM head + the pick of the ids on B rows (one position of each
    sequence), at layer N."""
    d, V = dm.d, dm.vocab
    return [
        _row(dm.n_layers, HEAD_SET, "norm", elements=B * d, weight=2 * d, act_in=B * d,
             act_out=B * d),
        _row(dm.n_layers, HEAD_SET, "lm_head", m=B, k=d, n=V, count=1, weight=V * d,
             act_in=B * d, act_out=B * V, macs=B * d * V),
        _row(dm.n_layers, NO_WEIGHTS, "pick", elements=B * V, act_in=B * V, act_out=B),
    ]


def _block_rows(dm: Dims, B: int, t: int, L: np.ndarray) -> list:
    """All rows of one input group, in trace order: embed, layers, head."""
    d = dm.d
    rows = [_row(-1, HEAD_SET, "embed", elements=B * t * d, weight=B * t * d + t * d,
                 act_out=B * t * d)]
    template = _layer_rows(dm, B, t, L)
    for layer, u in enumerate(dm.sets):
        rows += [(layer, u if ws != NO_WEIGHTS else ws, op, sizes)
                 for _, ws, op, sizes in template]
    return rows + _head_rows(dm, B)


def _block_frame(rows: list, n: int, phase: str, positions: np.ndarray,
                 bytes_per_element: int) -> dict[str, np.ndarray]:
    """Rows (values scalar or [n]) -> flat columns of n blocks, position-major."""
    R = len(rows)
    cols: dict[str, np.ndarray] = {}
    cols["phase"] = np.full(n * R, phase, dtype=object)
    cols["position"] = np.repeat(positions.astype(np.int64), R)
    cols["layer"] = np.tile(np.array([r[0] for r in rows], np.int64), n)
    cols["weight_set"] = np.tile(np.array([r[1] for r in rows], np.int64), n)
    cols["op"] = np.tile(np.array([r[2] for r in rows], dtype=object), n)
    for c in INT_COLUMNS:
        if c in ("position", "layer", "weight_set"):
            continue
        key = "elements" if c == "vector_ops" else _ELEMS.get(c, c)
        grid = np.zeros((n, R), np.int64)
        for j, r in enumerate(rows):
            v = r[3].get(key, 0)
            if c == "vector_ops" and "m" in r[3]:
                v = 0  # GEMMs and attention do MACs, not vector ops
            grid[:, j] = v
        if c in BYTE_COLUMNS:
            grid *= bytes_per_element
        cols[c] = grid.ravel()
    return cols


def shape_only_trace(shape, prompt_tokens: int, new_tokens: int, batch: int,
                     bytes_per_element: int) -> pd.DataFrame:
    """The op trace of prefill + greedy decoding of ``new_tokens`` for ``shape``.

    Decode rows cover input positions P .. P+new_tokens-2 (token 0 comes from
    the prefill).
    """
    dm = Dims.of(shape)
    P, T, B = int(prompt_tokens), int(new_tokens), int(batch)
    if min(P, T, B, bytes_per_element) < 1:
        raise ValueError("prompt_tokens, new_tokens, batch and bytes_per_element must be >= 1")
    parts = [_block_frame(_block_rows(dm, B, P, np.array([P], np.int64)), 1,
                          "prefill", np.array([0]), bytes_per_element)]
    if T > 1:
        pos = np.arange(P, P + T - 1, dtype=np.int64)
        parts.append(_block_frame(_block_rows(dm, B, 1, pos + 1), T - 1,
                                  "decode", pos, bytes_per_element))
    cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
    return frame(cols)


def frame(cols: dict[str, np.ndarray]) -> pd.DataFrame:
    """Columns -> the trace DataFrame with the contract's column order and dtypes."""
    df = pd.DataFrame({c: cols[c] for c in COLUMNS})
    df["phase"] = df["phase"].astype(str)
    df["op"] = df["op"].astype(str)
    return df.astype({c: np.int64 for c in INT_COLUMNS})

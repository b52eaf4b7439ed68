"""How a decode step's small kernels grow with the rows in flight (issue #29, the small shapes).

SPEED's stage steps on the d_model 768 shapes run 4 to 32 rows through kernels whose
weights sit in the L2; their cost grows with the rows far more than their bytes and MACs
say (docs/calibration.md §7). This measures that growth op by op, each op graph-replayed
back to back (``measure.time_graph``), with one set of operands (L2-resident, as in
s01b_l2) or rotating sets (streamed from HBM), for rows 1..32 (and beyond for the pick):

- ``gemm``    ``y = x @ W.T`` of the d 768 layer and head shapes (K x N: 768 x 2304,
              768 x 768, 768 x 6144, 3072 x 768, 768 x 8192, 768 x 32000), resident and
              streamed;
- ``sdpa``    fused attention, rows x 12 heads of 64, each row its own KV (128 and 2048);
- ``argmax``  the greedy pick over V = 8,192 and 32,000 logits, 1 to 264 rows (one thread
              block a row: waves over the SMs beyond their count);
- ``gather``  ``index_select`` of 8 of R rows of 768 (the two heads' rows of a SPEED step),
              and the embedding lookup of R ids (V = 8,192);
- ``norm``, ``add``, ``gelu_mul``: LayerNorm, residual add, gated GELU of R rows.

Usage on the GPU machine: ``python3 rows.py OUT.csv``. One CSV row per case: op, what
(the shape), rows, resident, µs (median per launch).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from measure import Sink, copies_for, rnd, time_graph, DEV, DT

ROWS = (1, 2, 4, 8, 12, 16, 20, 24, 28, 32)
GEMMS = ((768, 2304), (768, 768), (768, 6144), (3072, 768), (768, 8192), (768, 32000))


def per_launch_us(fn_of, count: int) -> float:
    ms, _ = time_graph(lambda: [fn_of(i) for i in range(count)])
    return ms / count * 1e3


def gemm(sink: Sink, m: int, k: int, n: int, resident: bool) -> None:
    r = 32 if resident else copies_for(k * n * 2)
    w0 = rnd(n, k)
    ws = [w0] * r if resident else [w0] + [rnd(n, k) for _ in range(r - 1)]
    x = rnd(m, k)
    ys = [torch.empty(m, n, device=DEV, dtype=DT) for _ in range(r)]
    us = per_launch_us(lambda i: torch.matmul(x, ws[i].t(), out=ys[i]), r)
    sink.add(op="gemm", what=f"{k}x{n}", rows=m, resident=int(resident), us=us)


def sdpa(sink: Sink, rows: int, L: int) -> None:
    heads, dh, r = 12, 64, 16
    q = [rnd(rows, heads, 1, dh) for _ in range(r)]
    k = [rnd(rows, heads, L, dh) for _ in range(r)]
    v = [rnd(rows, heads, L, dh) for _ in range(r)]
    us = per_launch_us(lambda i: F.scaled_dot_product_attention(q[i], k[i], v[i]), r)
    sink.add(op="sdpa", what=f"12x64 kv{L}", rows=rows, resident=0, us=us)


def argmax(sink: Sink, rows: int, vocab: int) -> None:
    r = 32
    logits = [rnd(rows, vocab) for _ in range(r)]
    us = per_launch_us(lambda i: torch.argmax(logits[i], dim=-1), r)
    sink.add(op="argmax", what=f"V{vocab}", rows=rows, resident=0, us=us)


def gathers(sink: Sink, rows: int) -> None:
    r, d = 32, 768
    h = [rnd(rows, d) for _ in range(r)]
    idx = torch.arange(min(8, rows), device=DEV)
    sink.add(op="gather", what="index_select 8 of R x 768", rows=rows, resident=1,
             us=per_launch_us(lambda i: torch.index_select(h[i], 0, idx), r))
    emb = rnd(8192, d)
    ids = torch.randint(0, 8192, (rows,), device=DEV)
    sink.add(op="embed", what="F.embedding V8192 x 768", rows=rows, resident=1,
             us=per_launch_us(lambda i: F.embedding(ids, emb), r))


def vectors(sink: Sink, rows: int) -> None:
    r, d, f = 32, 768, 3072
    x = [rnd(rows, d) for _ in range(r)]
    y = [rnd(rows, d) for _ in range(r)]
    up = [rnd(rows, 2 * f) for _ in range(r)]
    w, b = rnd(d), rnd(d)
    sink.add(op="norm", what="layer_norm 768", rows=rows, resident=1,
             us=per_launch_us(lambda i: F.layer_norm(x[i], (d,), w, b), r))
    sink.add(op="add", what="add 768", rows=rows, resident=1,
             us=per_launch_us(lambda i: x[i] + y[i], r))
    sink.add(op="gelu_mul", what="gelu(g) * u, 3072", rows=rows, resident=1,
             us=per_launch_us(lambda i: F.gelu(up[i][:, :f]) * up[i][:, f:], r))


def main(argv: list[str]) -> int:
    out = Path(argv[1])
    sink = Sink(out, ["op", "what", "rows", "resident", "us"])
    for rows in ROWS:
        for k, n in GEMMS:
            for resident in (True, False):
                gemm(sink, rows, k, n, resident)
        for L in (128, 2048):
            sdpa(sink, rows, L)
        gathers(sink, rows)
        vectors(sink, rows)
    for rows in (1, 4, 8, 32, 64, 128, 132, 133, 200, 264):
        for vocab in (8192, 32000):
            argmax(sink, rows, vocab)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

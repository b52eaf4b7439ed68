"""The op trace: numeric (recorded from a run) == shape-only (closed forms), row for row."""

import numpy as np
import pandas as pd
import pytest

from speedsim.model.weights import load_params
from speedsim.trace import COLUMNS, HEAD_SET, NO_WEIGHTS, build_trace, numeric_trace, total_macs
from speedsim.trace.shape_only import shape_only_trace

LAYER_OPS = ["norm", "qkv", "attn_score", "softmax", "attn_value", "out_proj", "residual",
             "norm", "mlp_up", "act", "mlp_down", "residual"]

SHAPES = {
    "cycle_speed": dict(),
    "gqa_gated_b2": dict(model__n_kv_heads=2, model__mlp="gated_gelu", generation__batch=2),
    "none_sequential": dict(model__sharing={"scheme": "none"}, strategies={"sequential": {}}),
    "rev_G3_b3": dict(model__n_layers=6, model__sharing={"scheme": "cycle_rev", "unique_layers": 3},
                      strategies__speed={"stages": 3}, generation__batch=3, model__n_kv_heads=1),
    "loop_P1_U2_C1": dict(model__n_layers=6, strategies__speed={"exit_depth": 1},
                          model__sharing={"scheme": "loop", "unique_layers": 2,
                                          "prelude_layers": 1, "coda_layers": 1}),
}


@pytest.mark.parametrize("name", sorted(SHAPES))
@pytest.mark.parametrize("bpe", [1, 2])
def test_numeric_trace_equals_shape_only(tiny_workload, name, bpe):
    w = tiny_workload(**SHAPES[name])
    shape_only = build_trace(w, bytes_per_element=bpe)
    numeric = numeric_trace(w, bytes_per_element=bpe, params=load_params(w))
    pd.testing.assert_frame_equal(numeric, shape_only)


def test_columns_dtypes_and_order(tiny_workload):
    w = tiny_workload(generation__batch=2)
    t = build_trace(w, bytes_per_element=2)
    P, T, N = 4, 12, 4
    assert tuple(t.columns) == COLUMNS
    assert pd.api.types.is_string_dtype(t["phase"]) and pd.api.types.is_string_dtype(t["op"])
    assert all(t[c].dtype == np.int64 for c in COLUMNS if c not in ("phase", "op"))

    pre, dec = t[t.phase == "prefill"], t[t.phase == "decode"]
    assert list(t.phase) == ["prefill"] * len(pre) + ["decode"] * len(dec)
    assert (pre.position == 0).all()
    assert sorted(set(dec.position)) == list(range(P, P + T - 1))
    assert list(dec.position) == sorted(dec.position)
    one = dec[dec.position == P + 3]
    # the same rows for every strategy: no early-exit head (SPEED runs the layer-N head rows)
    assert list(one.op) == ["embed"] + LAYER_OPS * N + ["norm", "lm_head", "pick"]
    assert list(one.layer) == [-1] + [l for l in range(N) for _ in LAYER_OPS] + [N] * 3
    assert len(pre) == 1 + 12 * N + 3

    # weight sets: layers use theirs, heads HEAD_SET, parameter-free ops NO_WEIGHTS
    layer_rows = one[(one.layer >= 0) & (one.layer < N)]
    free = layer_rows.op.isin(["attn_score", "softmax", "attn_value", "residual", "act"])
    assert (layer_rows[free].weight_set == NO_WEIGHTS).all()
    assert (layer_rows[~free].weight_set == layer_rows[~free].layer % 2).all()
    assert (one[one.op.isin(["embed", "lm_head"])].weight_set == HEAD_SET).all()

    # the pick: the B x V logits in (2 bytes each), one id per sequence out, no weights
    V = 64
    for rows in (pre, dec):
        pick = rows[rows.op == "pick"]
        assert len(pick) == len(rows[rows.op == "lm_head"])
        assert (pick.weight_set == NO_WEIGHTS).all() and (pick.weight_bytes == 0).all()
        assert (pick.elements == 2 * V).all() and (pick.vector_ops == 2 * V).all()
        assert (pick.act_in_bytes == 2 * V * 2).all() and (pick.act_out_bytes == 2 * 2).all()
        assert (pick.macs == 0).all() and (pick.kv_read_bytes == 0).all()

    # decode attention sizes
    att = dec[dec.op == "attn_score"]
    assert (att.kv_len == att.position + 1).all() and (att["count"] == 2 * 4).all()
    assert (att.m == 1).all() and (att.k == 8).all() and (att.n == att.kv_len).all()
    patt = pre[pre.op == "attn_value"]
    assert (patt.m == P).all() and (patt.k == P).all() and (patt.n == 8).all()
    assert (pre[pre.op == "qkv"].m == P * 2).all() and (dec[dec.op == "qkv"].m == 2).all()
    assert (pre[pre.op == "lm_head"].m == 2).all()
    gemm = t.op.isin(["qkv", "out_proj", "mlp_up", "mlp_down", "lm_head", "attn_score",
                      "attn_value"])
    assert (t[gemm].macs == t[gemm]["count"] * t[gemm].m * t[gemm].k * t[gemm].n).all()
    assert (t[gemm].vector_ops == 0).all() and (t[~gemm].vector_ops == t[~gemm].elements).all()


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_total_macs_closed_form(tiny_workload, name):
    w = tiny_workload(**SHAPES[name])
    t = build_trace(w, bytes_per_element=1)
    assert int(t.macs.sum()) == total_macs(w.model, w.generation)


def test_trace_is_the_same_for_every_strategy(tiny_workload):
    """Strategy-agnostic: with SPEED (any exit depth) or without, the same table."""
    loop = {"scheme": "loop", "unique_layers": 2, "prelude_layers": 1, "coda_layers": 1}
    base = dict(model__n_layers=8, model__sharing=loop)
    plain = build_trace(tiny_workload(**base, strategies={"sequential": {}}), 1)
    for d1 in (1, 2):
        w = tiny_workload(**base, strategies__speed={"exit_depth": d1})
        pd.testing.assert_frame_equal(build_trace(w, 1), plain)


def test_shape_only_weights_need_no_numerics(tiny_workload):
    w = tiny_workload(model__weights={"source": "shape_only"},
                      strategies__speed={"stages": 2, "acceptance": {"source": "bernoulli",
                                                                     "rate": 0.5}})
    t = build_trace(w, bytes_per_element=1)
    assert int(t.macs.sum()) == total_macs(w.model, w.generation)


def test_7b_shape_builds(tiny_workload):
    w = tiny_workload(model__d_model=4096, model__n_heads=32, model__d_ff=11008,
                      model__n_layers=32, model__vocab_size=32000,
                      model__sharing={"scheme": "none"},
                      model__weights={"source": "shape_only"}, strategies={"sequential": {}},
                      generation__prompt_tokens=128, generation__new_tokens=256)
    t = build_trace(w, bytes_per_element=2)
    assert len(t) == 256 * (1 + 32 * 12 + 3)
    assert int(t.macs.sum()) == total_macs(w.model, w.generation)
    qkv = t[(t.phase == "decode") & (t.op == "qkv")]
    assert (qkv.weight_bytes == 4096 * 3 * 4096 * 2).all()


def test_bad_arguments(tiny_workload):
    w = tiny_workload()
    with pytest.raises(ValueError):
        shape_only_trace(w.model, 4, 12, 1, 0)


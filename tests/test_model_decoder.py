"""The reference decoder against the spec (docs/model.md) and against itself.

- a naive, loop-per-head transcription of the spec agrees with ``forward_full``;
- the KV-cached path agrees with ``forward_full`` to 1e-5 at every position,
  for final and early logits, MHA and GQA, gelu and gated_gelu, batch 1 and 2;
- a fused ``run_layers`` call (several groups at different layers) equals
  separate per-group calls;
- ``generate`` records what greedy decoding means.
"""

import math

import numpy as np
import pytest

from speedsim.model.dims import exit_layer_of
from speedsim.model.decoder import (KVCache, embed, forward_full, gelu, generate,
                                    greedy_decode, head, layer_norm, prompt_ids, run_layer,
                                    run_layers)
from speedsim.model.sharing import shape_layer_sets
from speedsim.model.tokenizer import decode, encode
from speedsim.model.weights import load_params

VARIANTS = {
    "mha_gelu": dict(),
    "gqa_gated": dict(model__n_kv_heads=2, model__mlp="gated_gelu"),
    "mqa_seq": dict(model__n_kv_heads=1, model__sharing={"scheme": "sequence", "unique_layers": 2}),
    "none_b2": dict(model__sharing={"scheme": "none"}, generation__batch=2),
    "rev_b2_gated": dict(model__n_layers=6,
                         model__sharing={"scheme": "cycle_rev", "unique_layers": 3},
                         model__mlp="gated_gelu", generation__batch=2, model__n_kv_heads=2,
                         strategies__speed={"stages": 3}),
}


def naive_logits(params, shape, tokens, upto_layer=None):
    """docs/model.md transcribed literally, one sequence, loops over heads."""
    d, H, kvh = shape.d_model, shape.n_heads, shape.kv_heads
    dh, T = d // H, len(tokens)
    sets = shape_layer_sets(shape)

    def ln(x, w, b):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * w + b

    def gl(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))

    x = (params.tok_emb[tokens] + params.pos_emb[:T]).astype(np.float64)
    for l in range(shape.n_layers):
        w = params.sets[sets[l]]
        h = ln(x, w.ln1_w, w.ln1_b)
        qkv = h @ w.wqkv
        q, k, v = qkv[:, :d], qkv[:, d:d + kvh * dh], qkv[:, d + kvh * dh:]
        heads = []
        for i in range(H):
            j = i // (H // kvh)
            qi = q[:, i * dh:(i + 1) * dh]
            ki, vi = k[:, j * dh:(j + 1) * dh], v[:, j * dh:(j + 1) * dh]
            s = qi @ ki.T / math.sqrt(dh) + np.triu(np.full((T, T), -np.inf), 1)
            p = np.exp(s - s.max(-1, keepdims=True))
            heads.append((p / p.sum(-1, keepdims=True)) @ vi)
        x = x + np.concatenate(heads, -1) @ w.wo
        h = ln(x, w.ln2_w, w.ln2_b)
        if shape.mlp == "gelu":
            x = x + gl(h @ w.w_up) @ w.w_down
        else:
            g, up = np.split(h @ w.w_up, 2, axis=-1)
            x = x + (gl(g) * up) @ w.w_down
        if l == upto_layer:
            break
    return ln(x, params.ln_f_w, params.ln_f_b) @ params.tok_emb.T


def test_layer_norm_and_gelu_formulas():
    x = np.array([[1.0, 2.0, 4.0, -3.0]], np.float32)
    mu, var = x.mean(), x.var()
    np.testing.assert_allclose(layer_norm(x, np.float32(2), np.float32(1)),
                               (x - mu) / np.sqrt(var + 1e-5) * 2 + 1, rtol=1e-6)
    # PyTorch gelu(approximate="tanh") values
    np.testing.assert_allclose(gelu(np.array([-2.0, -0.5, 0.0, 1.0, 3.0], np.float32)),
                               [-0.04540231, -0.15428599, 0.0, 0.84119199, 2.99636269], atol=1e-6)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_forward_full_matches_the_spec(tiny_workload, variant):
    w = tiny_workload(**VARIANTS[variant])
    params = load_params(w)
    tokens = prompt_ids(w.generation, w.model.vocab_size)
    exit_l = exit_layer_of(w)
    final, early = forward_full(params, w.model, tokens, exit_l)
    assert final.shape == (*tokens.shape, w.model.vocab_size) and final.dtype == np.float32
    for b in range(tokens.shape[0]):
        np.testing.assert_allclose(final[b], naive_logits(params, w.model, tokens[b]), atol=1e-4)
        np.testing.assert_allclose(early[b], naive_logits(params, w.model, tokens[b], exit_l),
                                   atol=1e-4)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_cached_decoding_equals_full_recompute(tiny_workload, variant):
    """Prefill 3 positions, then one at a time with the cache: every position's final and
    early logits equal ``forward_full`` of the whole sequence to 1e-5 (default init_std
    0.02, so logits are O(0.1-1) and 1e-5 is float32 round-off, not slack)."""
    w = tiny_workload(**VARIANTS[variant], generation__prompt_tokens=3, generation__new_tokens=14,
                      model__weights={"source": "random", "seed": 4})
    params, shape = load_params(w), w.model
    rng = np.random.default_rng(7)
    B = w.generation.batch
    tokens = rng.integers(0, shape.vocab_size, size=(B, 16))
    exit_l = exit_layer_of(w)
    full_final, full_early = forward_full(params, shape, tokens, exit_l)

    cache = KVCache.for_shape(shape, B, 16)
    got_final, got_early = [], []
    for start, stop in [(0, 3)] + [(p, p + 1) for p in range(3, 16)]:
        x = embed(params, tokens[:, start:stop], start)
        for l in range(shape.n_layers):
            x = run_layer(params, shape, l, x, cache, start)
            if l == exit_l:
                got_early.append(head(params, x))
        got_final.append(head(params, x))
    assert cache.lengths == [16] * shape.n_layers
    np.testing.assert_allclose(np.concatenate(got_final, 1), full_final, atol=1e-5, rtol=1e-5)
    np.testing.assert_allclose(np.concatenate(got_early, 1), full_early, atol=1e-5, rtol=1e-5)


def test_fused_layer_step_equals_separate_calls(tiny_workload):
    """Groups at layers 0 and 2 (same set under cycle U=2), at different positions."""
    w = tiny_workload(generation__batch=2, model__n_kv_heads=2)
    params, shape = load_params(w), w.model
    rng = np.random.default_rng(1)
    B, N = 2, shape.n_layers
    toks = rng.integers(0, shape.vocab_size, size=(B, 8))

    def primed():
        cache = KVCache.for_shape(shape, B, 8)
        x = embed(params, toks[:, :5], 0)
        for l in range(N):
            x = run_layer(params, shape, l, x, cache, 0)
        cache.rollback(5)
        return cache

    xa = rng.normal(size=(B, 1, 32)).astype(np.float32)
    xb = rng.normal(size=(B, 1, 32)).astype(np.float32)
    c1, c2 = primed(), primed()
    c1.rollback(4)  # layer 0 group at position 4 after a rollback; layer 2 group at position 5
    c2.rollback(4)
    c1.lengths[2] = c2.lengths[2] = 5
    fused = run_layers(params, shape, [xa, xb], [0, 2], [4, 5], c1)
    sep = [run_layer(params, shape, 0, xa, c2, 4), run_layer(params, shape, 2, xb, c2, 5)]
    for f, s in zip(fused, sep):
        np.testing.assert_allclose(f, s, atol=1e-5)
    assert c1.lengths == c2.lengths == [5, 4, 6, 4]
    with pytest.raises(ValueError, match="different weight sets"):
        run_layers(params, shape, [xa, xb], [0, 1], [5, 5], c1)


def test_cache_rejects_out_of_order_writes(tiny_workload):
    w = tiny_workload()
    params = load_params(w)
    cache = KVCache.for_shape(w.model, 1, 8)
    x = embed(params, np.array([[1, 2]]), 0)
    run_layer(params, w.model, 0, x, cache, 0)
    with pytest.raises(ValueError, match="cannot append"):
        run_layer(params, w.model, 0, x[:, :1], cache, 3)


@pytest.mark.parametrize("variant", ["mha_gelu", "rev_b2_gated"])
def test_generate_is_greedy_and_records_predictions(tiny_workload, variant):
    w = tiny_workload(**VARIANTS[variant])
    params = load_params(w)
    rec = generate(w, params=params)
    P, T, B = w.generation.prompt_tokens, w.generation.new_tokens, w.generation.batch
    assert rec.prompt.shape == (B, P) and rec.tokens.shape == rec.early.shape == (B, T)
    seq = np.concatenate([rec.prompt, rec.tokens[:, :-1]], 1)
    final, early = forward_full(params, w.model, seq, rec.exit_layer)
    np.testing.assert_array_equal(rec.tokens, final[:, P - 1:].argmax(-1))
    np.testing.assert_array_equal(rec.early, early[:, P - 1:].argmax(-1))
    np.testing.assert_array_equal(rec.accepted, (rec.early == rec.tokens).all(0))
    assert rec.final is rec.tokens
    assert not rec.accepted.all()  # init_std 0.5: early exits often miss


def test_generate_without_exit_layer(tiny_workload):
    w = tiny_workload(strategies={"sequential": {}})
    rec = generate(w)
    assert rec.exit_layer is None and rec.early is None and rec.accepted is None


def test_ties_go_to_the_lowest_id(tiny_workload):
    w = tiny_workload()
    params = load_params(w)
    flat = type(params)(np.zeros_like(params.tok_emb), params.pos_emb, params.ln_f_w,
                        params.ln_f_b, params.sets)
    rec = greedy_decode(flat, w.model, np.array([[5, 6, 7]]), 3)
    assert (rec.tokens == 0).all()


def test_prompts():
    from speedsim.config.workload import Generation
    g = Generation(prompt_tokens=5, new_tokens=2, batch=3, seed=9)
    ids = prompt_ids(g, 50)
    rng = np.random.default_rng(9)
    np.testing.assert_array_equal(ids, [rng.integers(0, 50, size=5) for _ in range(3)])
    assert ids.dtype == np.int64 and not (ids[0] == ids[1]).all()
    text = Generation(prompt_tokens=6, new_tokens=2, batch=2, prompt="héllo")
    np.testing.assert_array_equal(prompt_ids(text, 256), [list("héllo".encode())] * 2)


def test_tokenizer_round_trip():
    s = "SPEED ünïcode ✓"
    assert decode(encode(s)) == s
    assert encode("A").tolist() == [65]
    assert decode([72, 105, 999]) == "Hi\ufffd"

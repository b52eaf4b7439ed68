"""The shipped trained decoders (speedsim/data/*.npz) through the NumPy decoder.

``tests/data/<model>_expected.npz`` holds PyTorch's float32 logits for held-out
byte prompts, written by ``training/make_expected.py`` from the same weights
(stored as float16 for the two newer models, upcast to float32 on loading by
both sides). The NumPy reference must reproduce them — final head and every
stage-boundary early head — to 1e-4, so the weights, the key layout and both
implementations of docs/model.md agree, without PyTorch in CI.

Models: ``speed_cycle_n12u3`` (the default SPEED target: N = 12 over U = 3
weight sets, exits after layers 2, 5, 8), ``draft_n2_d256`` (2 unshared layers,
the draft model of draft-model speculative decoding) and the previous default
``speed_cycle_n8u2`` (N = 8 over U = 2); and the depth family of issue 30,
``speed_cycle_n{3,6,12,24}u3_steps3000`` (U = 3 weight sets of d_model 384 at N = 3, 6,
12 and 24, twice the default target's token budget, exits at every stage boundary).
"""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from speedsim.config.workload import ModelShape
from speedsim.model.decoder import forward_full
from speedsim.model.weights import SET_KEYS, load_npz

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "speedsim" / "data"
TOL = 1e-4
# 21.3 MB before issue 30; its depth family adds four float16 files of 11.0 MB each
SHIPPED_LIMIT_BYTES = 66 * 10**6

MODELS = {
    "speed_cycle_n12u3": ({"d_model": 384, "n_heads": 6, "d_ff": 1536, "n_layers": 12,
                           "sharing": {"scheme": "cycle", "unique_layers": 3}}, np.float16, (2, 5, 8)),
    "draft_n2_d256": ({"d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": 2,
                       "sharing": {"scheme": "none"}}, np.float16, ()),
    "speed_cycle_n8u2": ({"d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": 8,
                          "sharing": {"scheme": "cycle", "unique_layers": 2}}, np.float32, (1, 3)),
    **{f"speed_cycle_n{n}u3_steps3000": ({"d_model": 384, "n_heads": 6, "d_ff": 1536, "n_layers": n,
                                          "sharing": {"scheme": "cycle", "unique_layers": 3}},
                                         np.float16, tuple(range(2, n - 1, 3)))
       for n in (3, 6, 12, 24)},
}
EXITS = [(name, e) for name, (_, _, exits) in MODELS.items() for e in (None, *exits)]


def shape_of(name: str) -> ModelShape:
    return ModelShape.model_validate({
        **MODELS[name][0], "vocab_size": 256, "max_seq_len": 256, "mlp": "gelu",
        "weights": {"source": "packaged", "name": name}})


@pytest.fixture(scope="module")
def expected():
    out = {}
    for name in MODELS:
        with np.load(ROOT / "tests" / "data" / f"{name}_expected.npz") as z:
            out[name] = {k: z[k] for k in z.files}
    return out


@pytest.fixture(scope="module")
def params():
    return {name: load_npz(DATA / f"{name}.npz", shape_of(name), min_seq_len=256) for name in MODELS}


def test_shipped_weights_fit_the_size_budget():
    assert sum(p.stat().st_size for p in DATA.glob("*.npz")) <= SHIPPED_LIMIT_BYTES


@pytest.mark.parametrize("name", MODELS)
def test_shipped_file_layout(name):
    spec, dtype, _ = MODELS[name]
    with np.load(DATA / f"{name}.npz") as z:
        arrays = {k: z[k] for k in z.files}
    config = json.loads(str(arrays.pop("config_json")[()]))
    U = spec["sharing"].get("unique_layers", spec["n_layers"])
    assert config == {**spec, "n_kv_heads": spec["n_heads"], "vocab_size": 256, "mlp": "gelu",
                      "sharing": {**spec["sharing"], "unique_layers": U}}
    want = {"tok_emb", "pos_emb", "ln_f.w", "ln_f.b"}
    want |= {f"sets.{u}.{k}" for u in range(U) for k in SET_KEYS}
    assert set(arrays) == want
    assert {a.dtype for a in arrays.values()} == {np.dtype(dtype)}
    assert arrays["pos_emb"].shape == (256, spec["d_model"])


@pytest.mark.parametrize("name", MODELS)
def test_expected_values_come_from_the_shipped_weights(expected, name):
    e = expected[name]
    assert str(e["weights_sha256"][()]) == hashlib.sha256((DATA / f"{name}.npz").read_bytes()).hexdigest()
    assert e["tokens"].shape == (2, 32)
    assert tuple(e["exit_layers"]) == MODELS[name][2]


@pytest.mark.parametrize("name,exit_layer", EXITS)
def test_numpy_decoder_matches_torch_logits(params, expected, name, exit_layer):
    e = expected[name]
    final, early = forward_full(params[name], shape_of(name), e["tokens"], exit_layer=exit_layer)
    assert final.shape == (2, 32, 256)
    np.testing.assert_allclose(final, e["final_logits"], rtol=0, atol=TOL)
    if exit_layer is not None:
        np.testing.assert_allclose(early, e[f"early_logits_exit{exit_layer}"], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", MODELS)
def test_final_head_is_a_trained_predictor(params, expected, name):
    """On held-out text the final head predicts the next byte far better than chance (1/256)."""
    tokens = expected[name]["tokens"]
    final, _ = forward_full(params[name], shape_of(name), tokens)
    assert (final[:, :-1].argmax(-1) == tokens[:, 1:]).mean() > 0.3


def test_target_exits_agree_more_with_depth(params, expected):
    """Exits of the default target after layers 2, 5 and 8 agree with its final head
    increasingly often: depth changes the prediction, and deeper exits are closer."""
    name = "speed_cycle_n12u3"
    tokens = expected[name]["tokens"]
    agree = []
    for e in (2, 5, 8):
        final, early = forward_full(params[name], shape_of(name), tokens, exit_layer=e)
        agree.append((early.argmax(-1) == final.argmax(-1)).mean())
    assert agree[0] < agree[1] <= agree[2]
    assert agree[0] < 0.95

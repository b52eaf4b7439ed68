"""The shipped trained decoder (speedsim/data/speed_cycle_n8u2.npz) through the NumPy decoder.

``tests/data/trained_expected.npz`` holds PyTorch's logits for held-out byte
prompts, written by ``training/make_expected.py`` from the same weights. The
NumPy reference must reproduce them — final head and the early heads after
layers 1 (SPEED's exit for G = 4) and 3 (G = 2) — to 1e-4, so the weights,
the key layout and both implementations of docs/model.md agree, without
PyTorch in CI.
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
WEIGHTS = ROOT / "speedsim" / "data" / "speed_cycle_n8u2.npz"
EXPECTED = ROOT / "tests" / "data" / "trained_expected.npz"
TOL = 1e-4

SHAPE = ModelShape.model_validate({
    "d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": 8, "vocab_size": 256,
    "max_seq_len": 256, "mlp": "gelu",
    "sharing": {"scheme": "cycle", "unique_layers": 2},
    "weights": {"source": "packaged", "name": "speed_cycle_n8u2"}})


@pytest.fixture(scope="module")
def expected():
    with np.load(EXPECTED) as z:
        return {k: z[k] for k in z.files}


@pytest.fixture(scope="module")
def params():
    return load_npz(WEIGHTS, SHAPE, min_seq_len=256)


def test_shipped_file_layout():
    assert WEIGHTS.stat().st_size <= 10 * 2**20
    with np.load(WEIGHTS) as z:
        arrays = {k: z[k] for k in z.files}
    config = json.loads(str(arrays.pop("config_json")[()]))
    assert config == {"d_model": 256, "n_heads": 4, "n_kv_heads": 4, "d_ff": 1024,
                      "n_layers": 8, "vocab_size": 256, "mlp": "gelu",
                      "sharing": {"scheme": "cycle", "unique_layers": 2}}
    want = {"tok_emb", "pos_emb", "ln_f.w", "ln_f.b"}
    want |= {f"sets.{u}.{k}" for u in range(2) for k in SET_KEYS}
    assert set(arrays) == want
    assert {a.dtype for a in arrays.values()} == {np.dtype(np.float32)}
    assert arrays["pos_emb"].shape == (256, 256)


def test_expected_values_come_from_the_shipped_weights(expected):
    assert str(expected["weights_sha256"][()]) == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert expected["tokens"].shape == (2, 32)
    assert list(expected["exit_layers"]) == [1, 3]


@pytest.mark.parametrize("exit_layer", [1, 3])
def test_numpy_decoder_matches_torch_logits(params, expected, exit_layer):
    final, early = forward_full(params, SHAPE, expected["tokens"], exit_layer=exit_layer)
    assert final.shape == early.shape == (2, 32, 256)
    np.testing.assert_allclose(final, expected["final_logits"], rtol=0, atol=TOL)
    np.testing.assert_allclose(early, expected[f"early_logits_exit{exit_layer}"], rtol=0, atol=TOL)


def test_early_head_is_a_trained_predictor(params, expected):
    """On held-out text the early head at layer 3 mostly agrees with the final
    head, and the final head predicts the text far better than chance (1/256)."""
    tokens = expected["tokens"]
    final, early = forward_full(params, SHAPE, tokens, exit_layer=3)
    hits = (final[:, :-1].argmax(-1) == tokens[:, 1:]).mean()
    agree = (early.argmax(-1) == final.argmax(-1)).mean()
    assert hits > 0.3
    assert agree > 0.5

"""Weights: seeded init, npz round trip, and loud failures naming the key path."""

import json

import numpy as np
import pytest

from speedsim.config.errors import ConfigError
from speedsim.model.weights import (Params, expected_shapes, load_npz, load_params,
                                    random_params, save_npz)


def test_random_init_follows_the_spec(tiny_workload):
    w = tiny_workload(model__mlp="gated_gelu", model__n_kv_heads=2)
    p = random_params(w.model, seed=3, init_std=0.1, max_seq_len=20)
    rng = np.random.default_rng(3)
    np.testing.assert_array_equal(p.tok_emb, rng.normal(0, 0.1, (64, 32)).astype(np.float32))
    np.testing.assert_array_equal(p.pos_emb, rng.normal(0, 0.1, (20, 32)).astype(np.float32))
    np.testing.assert_array_equal(p.sets[0].wqkv, rng.normal(0, 0.1, (32, 64)).astype(np.float32))
    assert len(p.sets) == 2 and p.sets[1].w_up.shape == (32, 128)
    assert (p.sets[1].ln2_w == 1).all() and (p.ln_f_b == 0).all()
    assert all(a.dtype == np.float32 for _, a in p.arrays())
    assert {k: a.shape for k, a in p.arrays()} == expected_shapes(w.model, 20)


def test_npz_round_trip(tiny_workload, tmp_path):
    w = tiny_workload()
    p = load_params(w)
    save_npz(tmp_path / "w.npz", p, w.model)
    q = load_npz(tmp_path / "w.npz", w.model, min_seq_len=16)
    assert isinstance(q, Params)
    for (k1, a), (k2, b) in zip(p.arrays(), q.arrays()):
        assert k1 == k2
        np.testing.assert_array_equal(a, b)
    w2 = tiny_workload(model__weights={"source": "npz", "path": str(tmp_path / "w.npz")})
    np.testing.assert_array_equal(load_params(w2).sets[1].w_down, p.sets[1].w_down)


def _mangle(path, **changes):
    data = dict(np.load(path))
    for k, v in changes.items():
        if v is None:
            data.pop(k)
        else:
            data[k] = v
    np.savez(path, **data)


@pytest.mark.parametrize("change,match", [
    ({"sets.0.wo": np.zeros((32, 31), np.float32)}, "sets.0.wo"),
    ({"sets.1.w_up": None}, "missing"),
    ({"sets.2.wo": np.zeros((32, 32), np.float32)}, "unexpected"),
    ({"pos_emb": np.zeros((10, 32), np.float32)}, "positions"),
    ({"config_json": np.array(json.dumps({"d_model": 32, "n_layers": 5}))}, "n_layers"),
    ({"tok_emb": np.zeros((64, 32), np.int32)}, "dtype"),
])
def test_bad_npz_names_the_key(tiny_workload, tmp_path, change, match):
    w = tiny_workload()
    f = tmp_path / "w.npz"
    save_npz(f, load_params(w), w.model)
    _mangle(f, **change)
    with pytest.raises(ConfigError, match=match) as err:
        load_npz(f, w.model, min_seq_len=16)
    assert err.value.key == "model.weights.path"


def test_not_an_npz(tiny_workload, tmp_path):
    f = tmp_path / "w.npz"
    f.write_text("hello")
    with pytest.raises(ConfigError) as err:
        load_npz(f, tiny_workload().model)
    assert err.value.key == "model.weights.path"


def test_packaged_and_shape_only(tiny_workload):
    with pytest.raises(ConfigError) as err:
        load_params(tiny_workload(model__weights={"source": "packaged", "name": "nope"}))
    assert err.value.key == "model.weights.name"
    with pytest.raises(ConfigError) as err:
        load_params(tiny_workload(model__weights={"source": "shape_only"},
                                  strategies={"sequential": {}}))
    assert err.value.key == "model.weights.source"


@pytest.mark.parametrize("source", ["random", "packaged"])
def test_loaded_weights_lie_in_one_block_each_on_a_cache_line(tiny_workload, source):
    """The decoder streams the weights once per token: they are one allocation (huge pages
    where NumPy asks for them), each array on a 64-byte line, the file's values exactly."""
    from speedsim.config.workload import load_workload
    w = tiny_workload() if source == "random" else load_workload("workloads/gen.yaml", [])
    p = load_params(w)
    arrays = [a for _, a in p.arrays()]
    bases = {id(a.base) for a in arrays}
    assert len(bases) == 1 and all(a.ctypes.data % 64 == 0 for a in arrays)
    assert all(a.dtype == np.float32 and a.flags.c_contiguous for a in arrays)
    starts = sorted((a.ctypes.data, a.nbytes) for a in arrays)
    assert all(s0 + n0 <= s1 for (s0, n0), (s1, _) in zip(starts, starts[1:]))  # no overlap
    if source == "packaged":
        with np.load("speedsim/data/speed_cycle_n12u3.npz") as f:
            assert all(np.array_equal(a, f[k]) for k, a in p.arrays())

"""Bad workload files: each gives one ConfigError naming the file and the key path."""

import copy

import numpy as np
import pytest
import yaml

from speedsim.config.errors import ConfigError
from speedsim.config.workload import load_workload
from speedsim.model.weights import load_params

GOOD = {
    "name": "t",
    "model": {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 4, "vocab_size": 300,
              "sharing": {"scheme": "cycle", "unique_layers": 2},
              "weights": {"source": "random", "seed": 0}},
    "generation": {"prompt_tokens": 4, "new_tokens": 8},
    "strategies": {"sequential": {}, "speed": {}},
}


def _with(path: str, value):
    data = copy.deepcopy(GOOD)
    *parents, leaf = path.split(".")
    node = data
    for p in parents:
        node = node[p]
    if value is _DROP:
        del node[leaf]
    else:
        node[leaf] = value
    return data


_DROP = object()

BAD = {  # name: (data or raw YAML text, key path named, words in the message)
    "misspelt key": (_with("model.d_modle", 32), "model.d_modle", "unknown key"),
    "unknown top-level key": (_with("strategy", {}), "strategy", "unknown key"),
    "missing key": (_with("model.d_model", _DROP), "model.d_model", "missing"),
    "wrong type": (_with("model.n_layers", "four"), "model.n_layers", "integer"),
    "string number": (_with("generation.batch", "2"), "generation.batch", "integer"),
    "negative size": (_with("model.d_ff", -5), "model.d_ff", "greater than"),
    "heads not dividing d_model": (_with("model.n_heads", 5), "model.n_heads", "divide"),
    "kv heads not dividing heads": (_with("model.n_kv_heads", 3), "model.n_kv_heads", "divide"),
    "N not a multiple of U with speed": (
        _with("model.sharing", {"scheme": "cycle", "unique_layers": 3}),
        "strategies.speed.stages", "multiple"),
    "stages not dividing N": (_with("strategies.speed", {"stages": 3}),
                              "strategies.speed.stages", "divide"),
    "unknown scheme": (_with("model.sharing", {"scheme": "ring", "unique_layers": 2}),
                       "model.sharing.scheme", "ring"),
    "unknown weights source": (_with("model.weights", {"source": "magic"}),
                               "model.weights", "magic"),
    "missing weights file": (_with("model.weights", {"source": "npz", "path": "nope.npz"}),
                             "model.weights.path", "not found"),
    "bad acceptance rate": (_with("strategies.speed", {"acceptance": {"source": "bernoulli",
                                                                      "rate": 1.5}}),
                            "strategies.speed.acceptance.rate", "less than"),
    "text prompt with vocab < 256": (
        {**_with("model.vocab_size", 200), "generation": {"prompt_tokens": 2, "new_tokens": 4,
                                                          "prompt": "hi"}},
        "generation.prompt", "vocab_size"),
    "text prompt of the wrong length": (_with("generation.prompt", "hello"),
                                        "generation.prompt", "5 UTF-8 bytes"),
    "max_seq_len too small": (_with("model.max_seq_len", 10), "model.max_seq_len", "12"),
    "model acceptance without weights": (_with("model.weights", {"source": "shape_only"}),
                                         "strategies.speed.acceptance.source", "numeric"),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_workload_names_the_key(tmp_path, name):
    data, key, words = BAD[name]
    f = tmp_path / "w.yaml"
    f.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_workload(f)
    e = err.value
    assert e.key == key, str(e)
    assert e.file == str(f)
    assert words in e.message, str(e)
    assert str(e).startswith(f"{f}: {key}: ")
    assert "\n" not in str(e)


def test_malformed_yaml(tmp_path):
    f = tmp_path / "w.yaml"
    f.write_text("name: t\nmodel: {d_model: 32, n_heads: [4\n")
    with pytest.raises(ConfigError, match="malformed YAML at line") as err:
        load_workload(f)
    assert err.value.file == str(f)


def test_npz_with_wrong_shapes(tmp_path):
    """Shapes are checked when the weights are loaded: the key is still named."""
    from speedsim.model.weights import save_npz
    good = load_workload(_write(tmp_path, GOOD))
    save_npz(tmp_path / "w.npz", load_params(good))
    d = dict(np.load(tmp_path / "w.npz"))
    d["sets.1.wqkv"] = np.zeros((32, 32), np.float32)
    np.savez(tmp_path / "w.npz", **d)
    w = load_workload(_write(tmp_path, _with("model.weights", {"source": "npz", "path": "w.npz"})))
    assert w.model.weights.path == str(tmp_path / "w.npz")  # resolved next to the YAML
    with pytest.raises(ConfigError, match="sets.1.wqkv") as err:
        load_params(w)
    assert err.value.key == "model.weights.path"


def test_good_workload_loads(tmp_path):
    w = load_workload(_write(tmp_path, GOOD))
    assert w.stages == 2 and w.model.unique_layers == 2


def _write(tmp_path, data):
    f = tmp_path / "w.yaml"
    f.write_text(yaml.safe_dump(data))
    return f

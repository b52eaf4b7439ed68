"""The competing strategies' config: key paths, defaults, impossible K and E."""

import copy

import pytest

from speedsim.config.errors import ConfigError
from speedsim.config.workload import workload_from_dict
TINY_MODEL = {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 4, "vocab_size": 64,
              "sharing": {"scheme": "cycle", "unique_layers": 2},
              "weights": {"source": "random", "seed": 0, "init_std": 0.5}}

BASE = {"name": "w", "model": TINY_MODEL,
        "generation": {"prompt_tokens": 4, "new_tokens": 12},
        "strategies": {"sequential": {}, "speed": {"stages": 2}}}
DRAFT = dict(TINY_MODEL, n_layers=2, sharing={"scheme": "none"})


def load(**strategies):
    data = copy.deepcopy(BASE)
    data["strategies"].update(strategies)
    return workload_from_dict(data, file="w.yaml")


def error(**strategies) -> str:
    with pytest.raises(ConfigError) as e:
        load(**strategies)
    return str(e.value)


def test_defaults_follow_speeds_exit():
    w = load(early_exit_spec={}, shallow={}, draft_spec={"draft_model": DRAFT})
    assert w.strategies.names() == ["sequential", "speed", "early_exit_spec", "draft_spec",
                                    "shallow"]
    assert w.exit_layers("early_exit_spec") == w.exit_layers("shallow") == 2  # N / G = 4 / 2
    assert w.strategies.early_exit_spec.draft_tokens == 4
    assert w.strategies.draft_spec.acceptance.source == "model"


def test_exit_defaults_to_n_over_u_without_speed():
    data = copy.deepcopy(BASE)
    data["model"] = dict(TINY_MODEL, n_layers=8, sharing={"scheme": "cycle", "unique_layers": 2})
    data["strategies"] = {"early_exit_spec": {"draft_tokens": 2}}
    w = workload_from_dict(data)
    assert w.exit_layers("early_exit_spec") == 2  # G = N / U = 4 -> E = N / G = 2


def test_unknown_strategy_names_the_key_and_lists_the_valid_ones():
    msg = error(early_exit={})
    assert msg.startswith("w.yaml: strategies.early_exit: unknown strategy 'early_exit'")
    assert "early_exit_spec, draft_spec, shallow" in msg


@pytest.mark.parametrize("strategies, key", [
    ({"early_exit_spec": {"draft_tokens": 0}}, "strategies.early_exit_spec.draft_tokens"),
    ({"draft_spec": {"draft_model": DRAFT, "draft_tokens": 0}},
     "strategies.draft_spec.draft_tokens"),
    ({"early_exit_spec": {"exit_layer": 4}}, "strategies.early_exit_spec.exit_layer"),
    ({"early_exit_spec": {"exit_layer": 0}}, "strategies.early_exit_spec.exit_layer"),
    ({"shallow": {"exit_layer": 9}}, "strategies.shallow.exit_layer"),
    ({"draft_spec": {"draft_model": dict(DRAFT, vocab_size=32)}},
     "strategies.draft_spec.draft_model.vocab_size"),
    ({"draft_spec": {"draft_model": dict(DRAFT, depth=2)}},
     "strategies.draft_spec.draft_model.depth"),
    ({"draft_spec": {"draft_model": dict(DRAFT, weights={"source": "shape_only"})}},
     "strategies.draft_spec.acceptance.source"),
    ({"early_exit_spec": {"acceptance": {"source": "bernoulli", "rate": 1.5}}},
     "strategies.early_exit_spec.acceptance.rate"),
])
def test_impossible_values_name_the_key_path(strategies, key):
    assert error(**strategies).startswith(f"w.yaml: {key}: ")


def test_no_sharing_needs_an_explicit_exit():
    data = copy.deepcopy(BASE)
    data["model"] = dict(TINY_MODEL, sharing={"scheme": "none"})
    data["strategies"] = {"sequential": {}, "shallow": {}}
    with pytest.raises(ConfigError, match="strategies.shallow.exit_layer: exit_layer=4"):
        workload_from_dict(data)
    data["strategies"]["shallow"] = {"exit_layer": 1}
    assert workload_from_dict(data).exit_layers("shallow") == 1


def test_shape_only_target_needs_synthetic_acceptance():
    data = copy.deepcopy(BASE)
    data["model"] = dict(TINY_MODEL, weights={"source": "shape_only"})
    data["strategies"] = {"early_exit_spec": {}}
    with pytest.raises(ConfigError, match="strategies.early_exit_spec.acceptance.source"):
        workload_from_dict(data)
    data["strategies"] = {"early_exit_spec": {"acceptance": {"source": "bernoulli", "rate": 0.5}},
                          "shallow": {}}
    assert workload_from_dict(data).strategies.names() == ["sequential", "early_exit_spec",
                                                           "shallow"]


def test_file_acceptance_resolves_beside_the_workload_and_names_its_key(tmp_path):
    from speedsim.strategies.acceptance import acceptance

    (tmp_path / "acc.txt").write_text("\n".join("1010"))
    data = copy.deepcopy(BASE)
    data["generation"]["new_tokens"] = 4
    data["strategies"]["early_exit_spec"] = {"acceptance": {"source": "file", "path": "acc.txt"}}
    w = workload_from_dict(data, base_dir=tmp_path)
    acc = w.strategies.early_exit_spec.acceptance
    assert acc.path == str(tmp_path / "acc.txt")
    key = "strategies.early_exit_spec.acceptance"
    got = acceptance(acc, 4, None, key)
    assert got.accepted.tolist() == [True, False, True, False] and got.expected is None
    with pytest.raises(ConfigError, match=f"{key}.path: .* holds 4 values; new_tokens=6"):
        acceptance(acc, 6, None, key)
    with pytest.raises(ConfigError, match=f"{key}.source"):
        acceptance(acc.model_copy(update={"source": "model"}), 4, None, key)


def test_acceptance_sources_are_one_registry_that_refuses_duplicates():
    import numpy as np

    from speedsim.config.workload import BernoulliAcceptance
    from speedsim.strategies.acceptance import SOURCES, acceptance, source

    assert {"bernoulli", "file", "model"} <= set(SOURCES)  # others may register more
    with pytest.raises(ValueError, match="already registered"):
        source("bernoulli")(lambda *a: None)
    got = acceptance(BernoulliAcceptance(source="bernoulli", rate=0.25, seed=4), 6, None, "k")
    assert got.accepted.tolist() == (np.random.default_rng(4).random(6) < 0.25).tolist()
    assert got.expected.tolist() == [0.25] * 6

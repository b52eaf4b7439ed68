"""Acceptance vectors for the simulator: model, bernoulli, file."""

import numpy as np
import pytest

from speedsim.config.errors import ConfigError
from speedsim.model.decoder import generate
from speedsim.model.speed_exec import run_speed_workload
from speedsim.strategies.acceptance import acceptance_vector


def test_model_acceptance_is_the_reference_runs(tiny_workload):
    w = tiny_workload()
    rec = generate(w)
    np.testing.assert_array_equal(acceptance_vector(w, rec), rec.accepted)
    np.testing.assert_array_equal(run_speed_workload(w).tokens, rec.committed)
    with pytest.raises(ConfigError):
        acceptance_vector(w, None)


def test_bernoulli_is_seeded(tiny_workload):
    w = tiny_workload(strategies__speed={"stages": 2, "acceptance": {
        "source": "bernoulli", "rate": 0.7, "seed": 5}})
    a = acceptance_vector(w)
    np.testing.assert_array_equal(a, np.random.default_rng(5).random(12) < 0.7)
    assert a.dtype == bool and a.shape == (12,)


@pytest.mark.parametrize("text", ["1\n0\n1\n" * 5, "pos,accepted\n" + "3,1\n4,false\n" * 7,
                                  "accepted\n" + "true\n" * 14])
def test_file_acceptance(tiny_workload, tmp_path, text):
    f = tmp_path / "acc.txt"
    f.write_text(text)
    w = tiny_workload(strategies__speed={"stages": 2, "acceptance": {"source": "file",
                                                                     "path": str(f)}})
    a = acceptance_vector(w)
    assert a.shape == (12,) and a.dtype == bool


@pytest.mark.parametrize("text", ["1\n0\n", "1\nmaybe\n" * 8, "pos,acc\n1,1\n"])
def test_bad_acceptance_file(tiny_workload, tmp_path, text):
    f = tmp_path / "acc.txt"
    f.write_text(text)
    w = tiny_workload(strategies__speed={"stages": 2, "acceptance": {"source": "file",
                                                                     "path": str(f)}})
    with pytest.raises(ConfigError) as err:
        acceptance_vector(w)
    assert err.value.key == "strategies.speed.acceptance.path"

"""Shared test setup.

BLAS threads: the decoder's matmuls are tiny, and on a busy machine OpenBLAS's
thread hand-offs cost more than the work (8 ms instead of 0.1 ms per LM head),
so tests pin BLAS to one thread. This must happen before NumPy is imported.
"""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import copy  # noqa: E402

import pytest  # noqa: E402

TINY = {
    "name": "tiny",
    "model": {"d_model": 32, "n_heads": 4, "d_ff": 64, "n_layers": 4, "vocab_size": 64,
              "sharing": {"scheme": "cycle", "unique_layers": 2},
              "weights": {"source": "random", "seed": 0, "init_std": 0.5}},
    "generation": {"prompt_tokens": 4, "new_tokens": 12, "batch": 1, "seed": 0},
    "strategies": {"sequential": {}, "speed": {"stages": 2}},
}


@pytest.fixture
def tiny_workload():
    """Build a small valid Workload; keyword paths like ``model__n_layers=6`` override TINY."""
    from speedsim.config.workload import workload_from_dict

    def make(**overrides):
        data = copy.deepcopy(TINY)
        for key, value in overrides.items():
            *parents, leaf = key.split("__")
            node = data
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        return workload_from_dict(data)

    return make

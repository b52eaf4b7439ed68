"""The depth family (issue 30): four trained models over the same U = 3 weight sets at
N = 3, 6, 12 and 24 layers, one workload each (``workloads/depth/``).

- each workload runs its own model (shape, file, SPEED's G = N / U);
- SPEED's acceptance at each depth is that model's own: the rate the summary reports equals
  the early-vs-final agreement of the model's greedy run (``greedy_decode`` with the exit
  after layer 2), and two depths' runs commit different text;
- sequential decoding pays for every layer: its cycles are affine in N exactly (each
  layer of a decode step costs the same at every depth), and at full acceptance SPEED pays
  less per added layer than sequential decoding does.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload
from speedsim.config.weightsfile import packaged_path
from speedsim.model.decoder import greedy_decode, prompt_ids
from speedsim.model.weights import load_params

ROOT = Path(__file__).resolve().parents[1]
DEPTHS = (3, 6, 12, 24)
FULL = {"source": "bernoulli", "rate": 1.0, "seed": 0}


def workload(n, overrides=()):
    return load_workload(ROOT / f"workloads/depth/n{n}.yaml", list(overrides))


def shape_only(n, new_tokens=8):
    """The depth-n workload on shapes alone, every guess accepted."""
    return workload(n, [("model.weights", {"source": "shape_only"}), ("generation.prompt", None),
                        ("generation.new_tokens", new_tokens),
                        ("strategies.speed.acceptance", FULL),
                        ("strategies.early_exit_spec.acceptance", FULL),
                        ("strategies.draft_spec.acceptance", FULL),
                        ("strategies.draft_spec.draft_model.weights", {"source": "shape_only"})])


@pytest.mark.parametrize("n", DEPTHS)
def test_each_depth_workload_runs_its_own_model(n):
    wl = workload(n)
    m = wl.model
    assert (m.n_layers, m.sharing.unique_layers, m.d_model) == (n, 3, 384)
    assert m.weights.name == f"speed_cycle_n{n}u3_steps3000"
    with np.load(packaged_path(m.weights.name)) as z:
        assert json.loads(str(z["config_json"][()]))["n_layers"] == n
    if n == 3:  # G = N / U = 1: no SPEED, and no exit below the last layer
        assert wl.strategies.speed is None and wl.strategies.shallow is None
        assert wl.strategies.draft_spec is not None
    else:
        assert wl.stages == n // 3
        assert wl.exit_layers("early_exit_spec") == wl.exit_layers("shallow") == 3


def own_record(n, new_tokens):
    wl = workload(n, [("generation.new_tokens", new_tokens)])
    record = greedy_decode(load_params(wl), wl.model, prompt_ids(wl.generation, 256), new_tokens,
                           exit_layer=2)
    return wl, record


def test_speed_acceptance_is_each_models_own():
    hw = load_hardware(ROOT / "hw_configs/edge.yaml")
    tokens = {}
    for n in (6, 24):
        wl, record = own_record(n, 16)
        s = simulate(hw, wl, ["speed"]).summary["strategies"]["speed"]
        # SPEED consults accepted[1 .. T-2] (speedsim.strategies.speed_schedule)
        assert s["speculation"]["acceptance_rate"] == record.accepted[1:15].mean()
        tokens[n] = record.tokens
    assert (tokens[6] != tokens[24]).any()


def cycles(hw_name, strategy):
    """Cycles at depth 6, 12, 24. A GPU's L2 is taken as a scratchpad of its size here: as a
    cache (``kind: cache``) what stays resident depends on the whole working set, so each
    added layer does not cost the same (on h100 the step 6 -> 12 costs 14,644 cycles more
    than half of 12 -> 24, from L2 misses that per-op loads expose)."""
    overrides = [("buffers.weight.kind", "scratchpad")] if hw_name != "edge" else []
    hw = load_hardware(ROOT / f"hw_configs/{hw_name}.yaml", overrides)
    return {n: simulate(hw, shape_only(n), [strategy]).summary["strategies"][strategy]["cycles"]
            for n in (6, 12, 24)}


@pytest.mark.parametrize("hw_name", ["edge", "h100"])
def test_sequential_cycles_are_affine_in_depth(hw_name):
    c = cycles(hw_name, "sequential")
    assert c[24] - c[12] == 2 * (c[12] - c[6]) > 0


@pytest.mark.parametrize("hw_name", ["edge", "h100"])
def test_speed_pays_less_per_added_layer_than_sequential(hw_name):
    seq, speed = cycles(hw_name, "sequential"), cycles(hw_name, "speed")
    assert speed[24] - speed[6] < 0.6 * (seq[24] - seq[6])

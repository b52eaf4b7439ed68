"""The reference-run cache: its key covers exactly the reference run's inputs, a hit
gives the same results as a fresh run, and ``speedsim run --cache-dir`` skips the
reference decoder when the key is already stored."""

import json
from pathlib import Path

import numpy as np
import pytest

from speedsim.api import simulate
from speedsim.cli import main
from speedsim.config import load_hardware
from speedsim.model import reference_cache
from speedsim.model.decoder import generate
from speedsim.model.reference_cache import reference_key, record_arrays, record_from_arrays


class MemoryCache:
    def __init__(self):
        self.data, self.loads, self.stores = {}, 0, 0

    def load(self, key):
        self.loads += 1
        return self.data.get(key)

    def store(self, key, arrays):
        self.stores += 1
        self.data[key] = arrays


def test_key_ignores_what_the_reference_run_does_not_depend_on(tiny_workload):
    base = reference_key(tiny_workload())
    assert base == reference_key(tiny_workload())
    assert base == reference_key(tiny_workload(
        strategies__speed__acceptance={"source": "bernoulli", "rate": 0.5, "seed": 3}))
    assert base == reference_key(tiny_workload(name="renamed"))
    # temperature 0 is greedy: the key of no sampling
    assert base == reference_key(tiny_workload(generation__sampling={"temperature": 0.0}))


@pytest.mark.parametrize("override", [
    {"model__weights": {"source": "random", "seed": 1, "init_std": 0.5}},
    {"model__weights": {"source": "random", "seed": 0, "init_std": 0.4}},
    {"generation__seed": 1},                      # other random prompt ids
    {"generation__new_tokens": 11},
    {"generation__batch": 2},
    {"strategies__speed__stages": 4},             # exit after layer 0 instead of 1
    {"model__sharing": {"scheme": "cycle", "unique_layers": 4}},
    {"generation__sampling": {"temperature": 0.7}},
    {"generation__sampling": {"temperature": 0.7, "top_p": 0.9}},
    {"generation__sampling": {"temperature": 0.7, "top_k": 5}},
    {"generation__sampling": {"temperature": 0.7, "seed": 1}},
])
def test_key_changes_with_every_input(tiny_workload, override):
    assert reference_key(tiny_workload(**override)) != reference_key(tiny_workload())


def test_key_follows_the_weight_file_content(tiny_workload, tmp_path):
    from speedsim.model.weights import load_params, save_npz
    wl = tiny_workload()
    path = tmp_path / "w.npz"
    save_npz(path, load_params(wl), wl.model)
    first = reference_key(tiny_workload(model__weights={"source": "npz", "path": str(path)}))
    save_npz(path, load_params(tiny_workload(model__weights={"source": "random", "seed": 5})), wl.model)
    assert reference_key(tiny_workload(model__weights={"source": "npz", "path": str(path)})) != first


def test_record_round_trips_through_arrays(tiny_workload):
    sampled = {"temperature": 1.0, "top_p": 0.9}
    for wl in (tiny_workload(), tiny_workload(strategies={"sequential": {}}),
               tiny_workload(generation__sampling=sampled)):
        r = generate(wl)
        back = record_from_arrays(record_arrays(r))
        for name in ("probs", "expected"):
            assert (getattr(back, name) is None) == (getattr(r, name) is None)
            if getattr(r, name) is not None:
                np.testing.assert_array_equal(getattr(back, name), getattr(r, name))
        assert back.exit_layer == r.exit_layer
        np.testing.assert_array_equal(back.tokens, r.tokens)
        np.testing.assert_array_equal(back.prompt, r.prompt)
        assert (back.early is None) == (r.early is None)
        if r.early is not None:
            np.testing.assert_array_equal(back.early, r.early)


def test_a_hit_gives_the_uncached_results_on_other_hardware(tiny_workload):
    wl = tiny_workload()
    cache = MemoryCache()
    simulate(load_hardware("hw_configs/edge.yaml"), wl, reference_cache=cache)
    assert (cache.loads, cache.stores) == (1, 1)
    dc = load_hardware("hw_configs/datacenter.yaml")
    cached = simulate(dc, wl, reference_cache=cache)
    assert (cache.loads, cache.stores) == (2, 1)
    assert cached.summary == simulate(dc, wl).summary


def test_run_with_cache_dir_skips_the_reference_run(tmp_path, monkeypatch, capsys):
    args = ["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--json",
            "--set", "workload.generation.new_tokens=8", "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1

    def fail(*a, **k):
        raise AssertionError("the reference run should come from the cache")
    monkeypatch.setattr(reference_cache, "generate", fail)
    monkeypatch.setattr("speedsim.api.load_params", fail)  # nor the weights (~45 ms a run)
    assert main(args[:-2] + ["--cache-dir", str(tmp_path / "cache"), "--set",
                             "hw.dram.bandwidth_gb_s=51.2"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["strategies"]["speed"]["speculation"] == first["strategies"]["speed"]["speculation"]
    assert second["strategies"]["speed"]["decode_time_s"] < first["strategies"]["speed"]["decode_time_s"]


def test_hardware_only_sweep_points_share_one_reference_run(tmp_path):
    import yaml
    from conftest import TINY
    from speedsim.sweep.runner import run_sweep
    from speedsim.sweep.spec import load_sweep
    from speedsim.report.store import load_results
    (tmp_path / "wl.yaml").write_text(yaml.safe_dump(TINY))
    spec = {"name": "bw", "hw": str(Path("hw_configs/edge.yaml").resolve()), "workload": "wl.yaml",
            "mode": "grid", "strategies": ["sequential", "speed"],
            "axes": {"hw.dram.bandwidth_gb_s": [12.8, 25.6, 51.2]},
            "metrics": ["speed.decode_time_s", "speedup.speed"]}
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(spec))
    sweep = load_sweep(tmp_path / "sweep.yaml")
    run_sweep(sweep, tmp_path / "cached.csv", progress=False, cache_dir=tmp_path / "cache")
    run_sweep(sweep, tmp_path / "plain.csv", progress=False)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    cached, plain = (load_results(tmp_path / f"{n}.csv").sort_values("index") for n in ("cached", "plain"))
    assert list(cached["status"]) == ["ok"] * 3
    cols = ["speed.decode_time_s", "speedup.speed"]
    assert cached[cols].to_numpy().tolist() == plain[cols].to_numpy().tolist()

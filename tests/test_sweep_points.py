"""Expansion of sweeps into points, and the config hash."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.sweep_fakes

from speedsim.sweep.points import config_hash, expand  # noqa: E402
from speedsim.sweep.spec import axis_values, load_sweep, sweep_from_dict  # noqa: E402
from tests.sweep_fakes import BASE_HW, BASE_WORKLOAD, write_sweep  # noqa: E402


def points_of(tmp_path, spec):
    return expand(load_sweep(write_sweep(tmp_path, spec)))


def axis(raw):
    spec = sweep_from_dict({"hw": "h", "workload": "w", "axes": {"hw.array.rows": raw}}, file="s")
    return axis_values(spec.axes["hw.array.rows"])


def test_axis_forms():
    assert axis([3, 1, 2]) == [3, 1, 2]
    assert axis({"values": [None, "x", 1.5]}) == [None, "x", 1.5]
    assert axis({"range": {"start": 8, "stop": 32, "step": 8}}) == [8, 16, 24, 32]  # stop included
    assert axis({"range": {"start": 8, "stop": 30, "step": 8}}) == [8, 16, 24]
    assert axis({"range": {"start": 0.5, "stop": 1.0, "step": 0.1}}) == [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert axis({"range": {"start": 4, "stop": 1, "step": -1}}) == [4, 3, 2, 1]
    assert axis({"linspace": {"start": 0, "stop": 1, "num": 5}}) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert axis({"log2": {"start": 64, "stop": 512}}) == [64, 128, 256, 512]
    assert axis({"log2": {"start": 64, "stop": 500}}) == [64, 128, 256]


def test_grid_is_the_product_with_the_last_axis_fastest(tmp_path):
    pts = points_of(tmp_path, {"axes": {"hw.array.rows": [16, 32, 64],
                                        "hw.dram.bandwidth_gb_s": [12.8, 25.6]}})
    assert [p.index for p in pts] == list(range(6))
    assert [tuple(p.values.values()) for p in pts] == [
        (16, 12.8), (16, 25.6), (32, 12.8), (32, 25.6), (64, 12.8), (64, 25.6)]
    assert pts[3].hw["array"] == {**BASE_HW["array"], "rows": 32}
    assert pts[3].hw["dram"]["bandwidth_gb_s"] == 25.6
    assert pts[3].workload == BASE_WORKLOAD


def test_zip_pairs_values_and_fixed_applies_first(tmp_path):
    pts = points_of(tmp_path, {
        "mode": "zip",
        "fixed": {"workload.model.sharing": {"scheme": "none"}, "workload.generation.new_tokens": 8},
        "axes": {"workload.model.sharing.scheme": ["none", "cycle", "cycle"],
                 "workload.model.sharing.unique_layers": [None, 4, 6]}})
    assert [p.workload["model"]["sharing"] for p in pts] == [
        {"scheme": "none", "unique_layers": None}, {"scheme": "cycle", "unique_layers": 4},
        {"scheme": "cycle", "unique_layers": 6}]
    assert {p.workload["generation"]["new_tokens"] for p in pts} == {8}


@pytest.mark.parametrize("mode", ["random", "lhs"])
def test_sampled_modes_are_deterministic_sized_and_in_bounds(tmp_path, mode):
    spec = {"mode": mode, "samples": 20, "seed": 7, "axes": {
        "hw.dram.bandwidth_gb_s": {"low": 10.0, "high": 100.0, "log": True},
        "hw.array.rows": {"low": 8, "high": 64, "integer": True},
        "workload.model.sharing.unique_layers": {"values": [2, 4, 6]}}}
    first = points_of(tmp_path, spec)
    again = points_of(tmp_path, spec)
    other_seed = points_of(tmp_path, {**spec, "seed": 8})
    assert len(first) == 20
    assert [p.values for p in first] == [p.values for p in again]
    assert [p.values for p in first] != [p.values for p in other_seed]
    for p in first:
        bw, rows, u = p.values.values()
        assert 10.0 <= bw <= 100.0 and isinstance(bw, float)
        assert 8 <= rows <= 64 and isinstance(rows, int)
        assert u in (2, 4, 6)


def test_lhs_hits_every_stratum_once(tmp_path):
    n = 16
    pts = points_of(tmp_path, {"mode": "lhs", "samples": n, "seed": 3, "axes": {
        "hw.dram.bandwidth_gb_s": {"low": 0.0, "high": 16.0},
        "hw.clock_hz": {"low": 0.0, "high": 1.6e9}}})
    for key, width in (("hw.dram.bandwidth_gb_s", 1.0), ("hw.clock_hz", 1e8)):
        strata = sorted(int(p.values[key] // width) for p in pts)
        assert strata == list(range(n))


def test_lhs_integer_axis_is_balanced(tmp_path):
    pts = points_of(tmp_path, {"mode": "lhs", "samples": 12, "axes": {
        "hw.array.rows": {"low": 1, "high": 4, "integer": True}}})
    rows = [p.values["hw.array.rows"] for p in pts]
    assert sorted(rows) == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_hash_is_canonical():
    h = config_hash({"a": 1, "b": {"c": 2.5}}, {"x": None}, ["sequential", "speed"])
    assert h == config_hash({"b": {"c": 2.5}, "a": 1}, {"x": None}, ("sequential", "speed"))
    assert h != config_hash({"a": 1, "b": {"c": 2.5}}, {"x": None}, ["sequential"])
    assert h != config_hash({"a": 1.0, "b": {"c": 2.5}}, {"x": None}, ["sequential", "speed"])
    # pinned to the canonical text: a change here orphans every stored result on resume
    canonical = b'{"hw":{"a":1,"b":{"c":2.5}},"strategies":["sequential","speed"],"workload":{"x":null}}'
    assert h == hashlib.sha256(canonical).hexdigest()
    assert h == "29d98168535443243e08a04f20bbc36d2292340b192111ce90235b8182665788"


def test_point_hashes_are_stable_across_processes(tmp_path):
    spec = {"mode": "lhs", "samples": 5, "seed": 1, "axes": {
        "hw.dram.bandwidth_gb_s": {"low": 10.0, "high": 40.0}}}
    here = [p.config_hash for p in points_of(tmp_path, spec)]
    code = ("import sys; from speedsim.sweep.points import expand; "
            "from speedsim.sweep.spec import load_sweep; "
            "print(' '.join(p.config_hash for p in expand(load_sweep(sys.argv[1]))))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "sweep.yaml")],
                         capture_output=True, text=True, check=True, env={"PYTHONHASHSEED": "123"})
    assert out.stdout.split() == here
    assert len(set(here)) == 5

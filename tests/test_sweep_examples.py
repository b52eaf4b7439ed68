"""The shipped example sweeps load, expand to their stated size, and every point is a valid config."""

from pathlib import Path

import pytest

from speedsim.config import hardware_from_dict, workload_from_dict
from speedsim.sweep.points import expand
from speedsim.sweep.spec import load_sweep

SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


@pytest.mark.parametrize("name, size", [("edge_design_space", 108), ("speed_space", 54),
                                        ("sharing_schemes", 6),
                                        ("strategies_acceptance", 6), ("depth", 3)])
def test_example_sweep_points_are_valid_configs(name, size):
    path = SWEEPS / f"{name}.yaml"
    sweep = load_sweep(path)
    points = expand(sweep)
    assert len(points) == size
    assert len({p.config_hash for p in points}) == size
    for p in points:
        hardware_from_dict(p.hw, file=f"{name} point {p.index}")
        workload_from_dict(p.workload, file=f"{name} point {p.index}", base_dir=sweep.workload_dir)

"""Pinned results of every shipped workload and hardware: a change of the simulated
cycles or energy of any of them is a decision, never an accident.

Each workload runs at 8 new tokens (seconds for all of them; the schedule, tiling
and residency paths are the full-size ones), and the README's headline run (gen on
edge, 128 tokens) runs at full size. Cycles are exact; energy is pinned to nine
significant digits (it is a float sum). Values were recorded on the commit that
made the newcomer's edges clean (issue 15), equal to the results before it.
"""

import pytest

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload

EDGE = "hw_configs/edge.yaml"
WORKLOADS = {  # workload -> hardware, {strategy: (cycles, energy J)} at new_tokens = 8
    "batch4": (EDGE, {"sequential": (9717947, 0.00664996699), "speed": (8101550, 0.00550080847)}),
    "gen": (EDGE, {"sequential": (6874900, 0.00455559646), "speed": (3607775, 0.00234851588)}),
    "gen_g2": (EDGE, {"sequential": (6874900, 0.00455559646), "speed": (4679833, 0.00307811902)}),
    "llama7b_shape": ("hw_configs/datacenter.yaml",
                      {"sequential": (377526564, 14.9903591), "speed": (253237544, 10.1619157)}),
    "long_context": (EDGE, {"sequential": (200229391, 0.202455195),
                            "speed": (199401366, 0.202196141)}),
    "low_acceptance": (EDGE, {"sequential": (6874900, 0.00455559646),
                              "speed": (5465281, 0.0035785856)}),
    "no_sharing": (EDGE, {"sequential": (6874900, 0.00455559646), "speed": (6682787, 0.00454968021)}),
}
HARDWARE = {  # gen at new_tokens = 8 on each shipped accelerator
    "datacenter": {"sequential": (574242, 0.0172799381), "speed": (293795, 0.00915249145)},
    "edge": {"sequential": (6874900, 0.00455559646), "speed": (3607775, 0.00234851588)},
    "h100": {"sequential": (511713, 0.0288146121), "speed": (289253, 0.0165437433)},
    "tiny": {"sequential": (13113384, 0.0102381077), "speed": (7374521, 0.0053065369)},
}


def measured(hw: str, workload: str, overrides=(("generation.new_tokens", 8),)):
    result = simulate(load_hardware(hw), load_workload(workload, list(overrides)))
    return {n: (m["cycles"], float(f"{m['energy_j']['total']:.9g}"))
            for n, m in result.summary["strategies"].items()}


def test_every_shipped_workload_is_pinned():
    from pathlib import Path
    assert set(WORKLOADS) == {p.stem for p in Path("workloads").glob("*.yaml")}
    assert set(HARDWARE) == {p.stem for p in Path("hw_configs").glob("*.yaml")}


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_shipped_workload(name):
    hw, want = WORKLOADS[name]
    assert measured(hw, f"workloads/{name}.yaml") == want


@pytest.mark.parametrize("name", sorted(HARDWARE))
def test_shipped_hardware(name):
    assert measured(f"hw_configs/{name}.yaml", "workloads/gen.yaml") == HARDWARE[name]


def test_the_readme_headline_run_at_full_size():
    cycles = {n: c for n, (c, _) in measured(EDGE, "workloads/gen.yaml", ()).items()}
    assert cycles == {"sequential": 103183212, "speed": 42681666}

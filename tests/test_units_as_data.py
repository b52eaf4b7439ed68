"""Units as data (issue 25): the compute units come from ``Hardware.units``; no module
past the config names one.

A third compute unit (here a second, smaller systolic array that runs attention) is
one more ``ComputeUnit`` and its config section: cost, preflight, replay, metrics,
energy, the summary and the table take it without an edit.
"""

import ast
from pathlib import Path
from typing import ClassVar

import pytest

from speedsim.api import simulate
from speedsim.config.hw import UNITS, Array, ComputeUnit, Hardware, load_hardware, placement
from speedsim.config.workload import load_workload
from speedsim.hw import cost
from speedsim.report.table import summary_table

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "speedsim"
UNIT_NAMES = {u.name for u in UNITS}
# where the units are declared: the hardware schema (its sections are the units) and the
# loader's keys that tell a hardware file from others
DECLARED = {"config/hw.py", "config/loader.py"}
# sim/tables.py is being reworked on another branch (issue 25's replay core); its
# ``on_array`` (line ~260) is to become ``cost.on_matrix`` there
ELSEWHERE: set[str] = set()


def _unit_names_in(path: Path) -> list[str]:
    """``line: text`` of every string constant that is a unit's name, and every
    ``hw.<unit>`` attribute (a unit's config section reached by name)."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and node.value in UNIT_NAMES:
            found.append(f"{node.lineno}: {node.value!r}")
        elif isinstance(node, ast.Attribute) and node.attr in UNIT_NAMES and \
                getattr(node.value, "attr", getattr(node.value, "id", "")) == "hw":
            found.append(f"{node.lineno}: hw.{node.attr}")
    return found


def test_no_module_past_the_config_names_a_unit():
    offenders = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).as_posix()
        if rel not in DECLARED | ELSEWHERE and (hits := _unit_names_in(path)):
            offenders[rel] = hits
    assert not offenders, f"unit names outside their declaration: {offenders}"


def test_the_scan_finds_a_unit_name(tmp_path):
    """The check above can fail: a literal name and a section reached through ``hw``."""
    bad = tmp_path / "bad.py"
    bad.write_text('on = item.unit == "array"\nlanes = hw.vector.lanes\nx = np.array([1])\n')
    assert _unit_names_in(bad) == ["1: 'array'", "2: hw.vector"]


# -- a third compute unit ---------------------------------------------------------------------

SECOND = ComputeUnit("attn_array", "matrix", 1 / 8, "compute")


class ThreeUnits(Hardware):
    """The edge NPU with a second, smaller systolic array that runs attention."""

    attn_array: Array
    attention_on: str = SECOND.name
    units: ClassVar[tuple[ComputeUnit, ...]] = (*UNITS, SECOND)


@pytest.fixture(scope="module")
def runs():
    edge = load_hardware(ROOT / "hw_configs/edge.yaml")
    three = ThreeUnits(**{**edge.model_dump(), "attention_on": SECOND.name},
                       attn_array={"rows": 8, "cols": 8, "dataflow": "ws"})
    wl = load_workload(ROOT / "workloads/gen.yaml",
                       [("generation.new_tokens", 6), ("model.max_seq_len", 80)])
    return edge, simulate(edge, wl), three, simulate(three, wl)


def test_attention_runs_on_the_third_unit_at_its_own_geometry(runs):
    _, two, three, got = runs
    items = got.runs["speed"].plan.items
    attn = [it for it in items if it.op in ("attn_score", "attn_value")]
    assert attn and {it.unit for it in attn} == {SECOND.name}
    assert {it.unit for it in items} == {"array", "vector", SECOND.name}
    # each attention item costs what SCALE-Sim's folds give on the 8x8 array, not the 32x32
    plan = cost.plan(items, three)
    it = attn[-1]
    assert plan.sums[it.id].cycles == cost.gemm_cycles(it.m, it.k, it.n, it.count, three, SECOND.name)
    assert plan.sums[it.id].cycles > cost.gemm_cycles(it.m, it.k, it.n, it.count, three, "array")
    # the same work either way: items, MACs and their energy (both arrays at mac_pj)
    for name, run in got.runs.items():
        before = two.runs[name]
        assert len(run.plan.items) == len(before.plan.items)
        assert run.metrics["macs"] == before.metrics["macs"]
        assert run.metrics["energy_j"]["compute"] == before.metrics["energy_j"]["compute"]


def test_the_third_unit_is_measured_and_reported(runs):
    edge, two, three, got = runs
    m = got.summary["strategies"]["speed"]
    units = [k for k in m if k.endswith("_utilization")]
    assert units == ["array_utilization", "vector_utilization", f"{SECOND.name}_utilization",
                     "dram_bandwidth_utilization"]
    busy = got.runs["speed"].sim.roofline.unit_cycles
    assert list(busy) == [*(u.name for u in UNITS), SECOND.name]
    # useful MACs of its items over its 64 PEs
    items = got.runs["speed"].sim.items
    on = items[items["unit"] == SECOND.name]
    useful = (on["macs"] * (1 - on["wasted_fraction"])).sum()
    assert m[f"{SECOND.name}_utilization"] == pytest.approx(useful / (64 * m["cycles"]), rel=1e-12)
    assert list(m["bound_by"]) == ["dram", "array", "vector", SECOND.name, "latency"]
    assert sum(m["bound_by"].values()) == pytest.approx(1.0)
    assert list(m["energy_j"]) == list(two.summary["strategies"]["speed"]["energy_j"])
    labels = list(summary_table(got.summary).columns[0].cells)
    assert labels[labels.index("array util.") + 1:][:2] == ["vector util.", f"{SECOND.name} util."]
    assert f"{SECOND.name} util." not in list(summary_table(two.summary).columns[0].cells)


def test_placement_follows_the_units():
    p = placement("vector")
    assert (p.gemm, p.attention, p.elementwise, p.matrix) == ("array", "vector", "vector",
                                                               frozenset({"array"}))
    with pytest.raises(ValueError, match="no compute unit 'npu'"):
        placement("npu")
    with pytest.raises(ValueError, match="needs a matrix and an elementwise"):
        placement("array", UNITS[:1])

"""``speedsim list``: every shipped file, strategy, plot kind and sweep metric, one line each."""

from __future__ import annotations

from pathlib import Path

import pytest

from speedsim.cli import main
from speedsim.strategies.registry import strategy_names

ROOT = Path(__file__).resolve().parents[1]


def listed(capsys, *section: str) -> dict[str, list[str]]:
    """Section title word -> the first word of each of its lines."""
    assert main(["list", *section]) == 0
    out: dict[str, list[str]] = {}
    for line in capsys.readouterr().out.splitlines():
        if line and not line.startswith(" "):
            title = out.setdefault(line.split()[0], [])
        elif line.strip():
            title.append(line.split()[0])
    return out


def test_every_shipped_file_is_listed_with_its_first_comment(capsys):
    out = listed(capsys)
    for title, folder in (("hardware", "hw_configs"), ("workloads", "workloads"),
                          ("traffic", "traffic"), ("sweeps", "sweeps")):
        assert out[title] == sorted(p.stem for p in (ROOT / folder).glob("*.yaml")), title
    assert main(["list", "workloads"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.split()[:1] == ["llama2_7b"])
    assert "The real Llama-2-7B shape" in line


def test_strategies_plots_and_metrics_are_listed(capsys):
    out = listed(capsys)
    assert sorted(out["strategies"]) == strategy_names()
    assert out["plot"] == ["latency", "energy", "roofline", "timeline", "occupancy", "speedup-map",
                           "sweep", "load", "pareto"]
    metrics = out["sweep"]
    assert "<strategy>.decode_time_s" in metrics and "speedup.<strategy>" in metrics
    assert "silicon.cost_proxy" in metrics
    assert "<strategy>.tpot_s.p99" in metrics and "<strategy>.throughput_vs_sequential" in metrics


def test_every_line_fits_80_columns(capsys):
    assert main(["list"]) == 0
    assert max(map(len, capsys.readouterr().out.splitlines())) <= 80


@pytest.mark.parametrize("section", ["hardware", "metrics"])
def test_one_section(capsys, section):
    out = listed(capsys, section)
    assert len(out) == 1

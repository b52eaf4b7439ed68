"""Pareto fronts on hand-made cases, and the plot command."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from speedsim.cli import main
from speedsim.config.errors import ConfigError
from speedsim.report.pareto import axis_label, default_goal, pareto_front, plot_pareto


def front(rows, goals=("min", "min")):
    df = pd.DataFrame(rows, columns=["a", "b"])
    return pareto_front(df, dict(zip(["a", "b"], goals))).tolist()


def test_simple_front():
    #            on     on     dominated  on     dominated by (1, 1)
    assert front([(1, 3), (2, 1), (3, 3), (0, 5), (2, 2)]) == [True, True, False, True, False]


def test_duplicates_stay_together():
    assert front([(1, 1), (1, 1), (2, 2)]) == [True, True, False]
    assert front([(2, 2), (2, 2)]) == [True, True]


def test_a_tie_in_one_objective_is_settled_by_the_other():
    assert front([(1, 2), (1, 3), (0, 3)]) == [True, False, True]
    assert front([(1, 5), (1, 5), (1, 4)]) == [False, False, True]


def test_max_goals_flip_the_order():
    assert front([(1, 3), (2, 1), (3, 3)], goals=("max", "max")) == [False, False, True]
    assert front([(1, 3), (2, 1), (3, 3)], goals=("min", "max")) == [True, False, False]


def test_nan_rows_are_neither_on_the_front_nor_dominating():
    assert front([(np.nan, 0), (1, 1), (2, np.nan)]) == [False, True, False]


def test_one_objective_keeps_all_minima():
    df = pd.DataFrame({"t": [3.0, 1.0, 1.0, 2.0]})
    assert pareto_front(df, {"t": "min"}).tolist() == [False, True, True, False]


def test_matches_brute_force_on_random_ties():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 6, size=(300, 3)).astype(float)  # many ties and duplicates
    df = pd.DataFrame(X, columns=["x", "y", "z"])
    got = pareto_front(df, {"x": "min", "y": "max", "z": "min"})
    Y = X * np.array([1, -1, 1])
    want = [not any((Y[j] <= Y[i]).all() and (Y[j] < Y[i]).any() for j in range(len(Y)))
            for i in range(len(Y))]
    assert got.tolist() == want


def test_bad_objectives():
    df = pd.DataFrame({"a": [1.0]})
    with pytest.raises(ConfigError, match="no column 'b'"):
        pareto_front(df, {"b": "min"})
    with pytest.raises(ValueError, match="goal"):
        pareto_front(df, {"a": "least"})


def test_labels_and_goals_from_key_names():
    assert axis_label("speed.decode_time_s") == "speed.decode_time_s [s]"
    assert axis_label("speed.energy_per_token_j") == "speed.energy_per_token_j [J/token]"
    assert axis_label("speed.tokens_per_s") == "speed.tokens_per_s [tokens/s]"
    assert axis_label("hw.dram.bandwidth_gb_s") == "hw.dram.bandwidth_gb_s [GB/s]"
    assert axis_label("silicon.cost_proxy") == "silicon.cost_proxy [PEs + KiB]"
    assert axis_label("speedup.speed") == "speedup.speed [×]"
    assert axis_label("tokens_match") == "tokens_match"
    assert [default_goal(k) for k in ("speedup.speed", "speed.tokens_per_s", "speed.decode_time_s")] \
        == ["max", "max", "min"]


RESULTS = pd.DataFrame({
    "index": [0, 1, 2, 3, 4], "config_hash": list("abcde"),
    "status": ["ok", "ok", "ok", "error", "ok"], "error": ["", "", "", "boom", ""],
    "hw.array.rows": [8, 16, 32, 64, 32],
    "silicon.pes": [64, 256, 1024, 4096, 1024], "silicon.sram_kib": [448.0] * 5,
    "speed.decode_time_s": [4.0, 2.0, 1.5, np.nan, 1.0]})


def test_plot_highlights_the_front():
    fig = plot_pareto(RESULTS, "silicon.cost_proxy", "speed.decode_time_s")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "silicon.cost_proxy [PEs + KiB] (min)"
    assert ax.get_ylabel() == "speed.decode_time_s [s] (min)"
    (line,) = ax.get_lines()  # the front, joined in x order; point 2 is dominated by point 4
    assert line.get_xdata().tolist() == [512.0, 704.0, 1472.0]
    assert line.get_ydata().tolist() == [4.0, 2.0, 1.0]


def test_plot_pareto_command(tmp_path, capsys):
    csv = tmp_path / "r.csv"
    RESULTS.to_csv(csv, index=False)
    png = tmp_path / "front.png"
    assert main(["plot", "pareto", str(csv), "--x", "silicon.cost_proxy",
                 "--y", "speed.decode_time_s", "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 of 4 points on the front" in capsys.readouterr().out
    assert main(["plot", "pareto", str(csv), "--x", "silicon.cost", "--y", "speed.decode_time_s"]) == 2

"""Figures of ``speedsim.report.plots`` and the ``speedsim plot`` subcommands.

One small real run (gen.yaml, 16 new tokens, model acceptance: SPEED flushes)
feeds every figure; each test checks what the figure shows — labels with
units, the number of series / bars / points, and values tied back to the
run's own metrics — not only that it draws. The CLI tests redraw the figures
from a ``speedsim run --out`` directory of the same run.
"""

from __future__ import annotations

import io
import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from speedsim.api import simulate
from speedsim.cli import main
from speedsim.config import ConfigError, load_hardware, load_workload
from speedsim.report import plots
from speedsim.sweep.grid import speedup_grid

ROOT = Path(__file__).resolve().parents[1]
HW = ROOT / "hw_configs" / "edge.yaml"
WL = ROOT / "workloads" / "gen.yaml"
NEW_TOKENS = 16
# the trained model rarely misses in 16 tokens; a seeded Bernoulli acceptance makes
# sure the figures have flushes to show (the committed tokens stay the greedy ones)
ACCEPTANCE = {"source": "bernoulli", "rate": 0.6, "seed": 1}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def result():
    hw = load_hardware(HW)
    wl = load_workload(WL, [("generation.new_tokens", NEW_TOKENS),
                            ("strategies.speed.acceptance", ACCEPTANCE)])
    return simulate(hw, wl)


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", str(HW), str(WL), "--set", f"workload.generation.new_tokens={NEW_TOKENS}",
                 "--set", "workload.strategies.speed.acceptance={source: bernoulli, rate: 0.6, "
                 "seed: 1}", "--timeline", "full", "--out", str(out)]) == 0
    return out


def _has_unit(label: str) -> bool:
    return "[" in label and label.rstrip().endswith("]")


def _flushed(result) -> int:
    """Flushed executions (the trace marks the end of each with a flush instant)."""
    return result.summary["strategies"]["speed"]["speculation"]["flushed"]


# -- per-token latency ----------------------------------------------------------------------

def test_commit_gaps_average_to_the_time_per_token(result):
    s = result.summary["strategies"]
    ttft = {n: m["ttft_s"] for n, m in s.items()}
    gaps = plots.commit_gaps(result.tokens, result.hw.clock_hz, ttft_s=ttft)
    for name, m in s.items():
        g = gaps[gaps["strategy"] == name]
        assert len(g) == NEW_TOKENS - 1  # one gap per decoded token
        assert list(g["token"]) == list(range(1, NEW_TOKENS))
        assert g["gap_s"].mean() == pytest.approx(m["time_per_token_s"], rel=1e-9)
        assert g["gap_s"].min() > 0
    without_first = plots.commit_gaps(result.tokens, result.hw.clock_hz)
    assert len(without_first) == len(gaps) - len(s)


def test_token_latency_figure(result):
    s = result.summary["strategies"]
    fig = plots.plot_token_latency(result.tokens, result.hw.clock_hz,
                                   ttft_s={n: m["ttft_s"] for n, m in s.items()})
    ax_t, ax_c = fig.axes
    assert fig._suptitle.get_text() and ax_t.get_title() and ax_c.get_title()
    gaps = plots.commit_gaps(result.tokens, result.hw.clock_hz, ttft_s={n: m["ttft_s"] for n, m in s.items()})
    factor, unit = plots.time_scale(float(gaps["gap_s"].median()))  # the axis unit follows the data
    assert unit in ("µs", "ms")
    assert ax_t.get_ylabel() == f"inter-token latency [{unit}]"
    assert all(_has_unit(lbl) for lbl in (ax_t.get_xlabel(), ax_c.get_xlabel(), ax_c.get_ylabel()))
    assert len(ax_t.get_lines()) == len(s) == len(ax_c.get_lines())
    for line, (name, m) in zip(ax_t.get_lines(), s.items()):
        assert name in line.get_label()
        assert np.mean(line.get_ydata()) == pytest.approx(m["time_per_token_s"] * factor, rel=1e-9)
    for cdf in ax_c.get_lines():  # a CDF ends at 1
        assert cdf.get_ydata()[-1] == pytest.approx(1.0)


# -- energy ---------------------------------------------------------------------------------

def test_energy_bars_stack_to_the_total_and_mark_the_wasted_share(result):
    s = result.summary
    fig = plots.plot_energy(s)
    ax = fig.axes[0]
    assert ax.get_title().startswith("Energy breakdown")
    assert ax.get_ylabel() == "energy [mJ]" and ax.get_xlabel()
    names = list(s["strategies"])
    assert [t.get_text() for t in ax.get_xticklabels()] == names
    bars = ax.patches
    stacked = plots.energy_parts(s)
    assert stacked == ("dram", "sram", "compute", "vector", "static")
    assert len(bars) == (len(stacked) + 1) * len(names)  # parts, then a wasted overlay
    parts = np.array([b.get_height() for b in bars[:-len(names)]]).reshape(len(stacked), -1)
    for i, n in enumerate(names):
        assert parts[:, i].sum() == pytest.approx(s["strategies"][n]["energy_j"]["total"] * 1e3)
    wasted = bars[-len(names):]
    assert all(w.get_hatch() == plots.WASTED_HATCH for w in wasted)
    assert wasted[names.index("sequential")].get_height() == 0
    speed_w = wasted[names.index("speed")].get_height()
    assert speed_w == pytest.approx(s["strategies"]["speed"]["energy_j"]["wasted"] * 1e3) and speed_w > 0
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == [*stacked, "wasted (flushed work)"]


def test_energy_per_token(result):
    s = result.summary
    ax = plots.plot_energy(s, per_token=True).axes[0]
    assert ax.get_ylabel().endswith("/token]")
    top = sum(b.get_height() for b in ax.patches[:len(plots.energy_parts(s)) * 2][1::2])  # speed column
    unit = ax.get_ylabel().split("[")[1].split("/")[0]
    factor = {"J": 1.0, "mJ": 1e3, "µJ": 1e6, "nJ": 1e9}[unit]
    assert top == pytest.approx(s["strategies"]["speed"]["energy_per_token_j"] * factor)


def test_energy_rejects_a_summary_without_parts():
    with pytest.raises(ConfigError, match="energy_j"):
        plots.plot_energy({"strategies": {"x": {"energy_j": {"total": 1.0}}}})


# -- roofline -------------------------------------------------------------------------------

def test_roofline_table_partitions_the_array_timeline(result):
    for name, run in result.runs.items():
        table = plots.roofline_table(run.sim.items, "array")
        items = run.sim.items
        array = items[items["unit"] == "array"]
        assert table["macs"].sum() == array["macs"].sum()
        span = array["compute_end_cycle"].max() - array["start_cycle"].min()
        assert table["array_cycles"].sum() == pytest.approx(span, rel=0.01)  # zero-MAC items excluded


def test_roofline_points_respect_the_compute_roof_and_show_fusion(result):
    hw = result.hw
    pts = {n: plots.roofline_points(plots.roofline_table(r.sim.items, "array"), hw.clock_hz)
           for n, r in result.runs.items()}
    for p in pts.values():
        assert (p["achieved_macs_per_s"] <= hw.array.pes * hw.clock_hz).all()
        assert set(p["op"]) <= set(plots.ARRAY_OPS)
    # SPEED fuses the tokens in flight into one GEMM: more MACs per weight byte fetched
    qkv = {n: p.set_index(["phase", "op"]).loc[("decode", "qkv"), "intensity_macs_per_byte"]
           for n, p in pts.items()}
    assert qkv["speed"] > 1.5 * qkv["sequential"]


def test_roofline_figure(result):
    hw = result.hw
    tables = {n: plots.roofline_table(r.sim.items, "array") for n, r in result.runs.items()}
    fig = plots.plot_roofline(tables, hw)
    assert fig._suptitle.get_text().startswith("Roofline")
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == list(tables)
    assert axes[0].get_ylabel() == "achieved throughput [MAC/s]"
    for ax, (name, table) in zip(axes, tables.items()):
        assert ax.get_xlabel() == "operational intensity [MAC / DRAM byte]"
        assert ax.get_xscale() == ax.get_yscale() == "log"
        roof, effective = ax.get_lines()
        assert roof.get_ydata().max() == pytest.approx(hw.array.pes * hw.clock_hz)
        x, y = roof.get_data()
        low = x < hw.array.pes * hw.clock_hz / (hw.dram.bandwidth_gb_s * 1e9)
        assert y[low] == pytest.approx(x[low] * hw.dram.bandwidth_gb_s * 1e9)
        assert effective.get_ydata()[0] == pytest.approx(y[0] * hw.dram.efficiency)
        n_points = table.groupby(["phase", "op"]).ngroups
        assert len(ax.collections) == n_points


# -- speedup map ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grid():
    hw = load_hardware(HW)
    wl = load_workload(WL, [("generation.new_tokens", 8), ("model.weights", {"source": "shape_only"}),
                            ("strategies.speed.acceptance", {"source": "bernoulli", "rate": 0.5})])
    return hw, wl, speedup_grid(hw, wl, stages=[2, 4], rates=[0.0, 1.0])


def test_speedup_grid_physics_and_consistency(grid):
    hw, wl, df = grid
    assert len(df) == 4
    cell = df.set_index([plots.STAGES_KEY, plots.RATE_KEY])[plots.SPEEDUP_KEY]
    for g in (2, 4):
        assert cell[(g, 1.0)] > 1.2  # full acceptance: a real gain
        assert cell[(g, 0.0)] <= 1.0 + 1e-9  # every prediction missed: no faster than sequential
        assert cell[(g, 1.0)] > cell[(g, 0.0)]
    # simulating sequential once gives the same speedup as a full two-strategy run
    point = load_workload(WL, [("generation.new_tokens", 8), ("model.weights", {"source": "shape_only"}),
                               ("strategies.speed.stages", 4),
                               ("strategies.speed.acceptance", {"source": "bernoulli", "rate": 1.0,
                                                                "seed": 1})])
    assert cell[(4, 1.0)] == pytest.approx(simulate(hw, point).summary["speedup"]["speed"], rel=1e-12)


def test_speedup_map_figure(grid):
    _, _, df = grid
    fig = plots.plot_speedup_map(df)
    ax, cbar = fig.axes
    assert ax.get_title() == "SPEED decode speedup over sequential"
    assert _has_unit(ax.get_xlabel()) and _has_unit(ax.get_ylabel()) and _has_unit(cbar.get_ylabel())
    image = ax.get_images()[0].get_array()
    assert image.shape == (2, 2)  # stages up, rates across
    assert [t.get_text() for t in ax.get_yticklabels()] == ["2", "4"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    assert image[1, 1] == pytest.approx(df[plots.SPEEDUP_KEY].max())
    assert len(ax.texts) == 4 and all(t.get_text().endswith("×") for t in ax.texts)


def test_speedup_map_refuses_ambiguous_cells(grid):
    _, _, df = grid
    doubled = pd.concat([df.assign(**{"workload.generation.prompt_tokens": p}) for p in (16, 64)])
    with pytest.raises(ConfigError, match="workload.generation.prompt_tokens"):
        plots.plot_speedup_map(doubled)
    with pytest.raises(ConfigError, match="no column 'nope'"):
        plots.plot_speedup_map(df, value="nope")


# -- timeline -------------------------------------------------------------------------------

def test_timeline_frame_from_result_equals_the_saved_trace(result, out_dir):
    live = plots.timeline_frame(result)
    saved = plots.timeline_frame(json.loads((out_dir / "timeline.json").read_text()))
    pd.testing.assert_frame_equal(live, saved)
    assert live.attrs["clock_hz"] == result.hw.clock_hz
    tok = live[(live["strategy"] == "speed") & (live["kind"] == "exec") & (live["status"] != "prefill")]
    assert len(tok) == result.summary["strategies"]["speed"]["speculation"]["launched"]
    assert (live["kind"] == "flush").sum() == _flushed(result)


def test_timeline_figure_rows_and_flushed(result):
    frame = plots.timeline_frame(result)
    speed = frame[frame["strategy"] == "speed"]
    start, end = int(speed["start_cycle"].min()), int(speed["end_cycle"].max())
    fig = plots.plot_timeline(frame, "speed", start, end)
    ax = fig.axes[0]
    assert ax.get_title().startswith("speed: timeline")
    assert _has_unit(ax.get_xlabel()) and ax.get_ylabel()
    rows = [t.get_text() for t in ax.get_yticklabels()]
    slots = speed.loc[speed["track"] == "token", "row"].nunique()
    assert rows[:3] == ["unit: array", "unit: dram", "unit: vector"]
    assert rows[3:] == [f"token slot {i}" for i in range(slots)] and slots == result.workload.stages
    assert ax.get_xlim()[1] == pytest.approx((end - start) / result.hw.clock_hz * 1e3)  # ms
    hatched = [c for c in ax.collections if c.get_hatch() == plots.WASTED_HATCH]
    assert hatched, "flushed work must be hatched"
    markers = [c for c in ax.collections if c.get_label() == "flush"]
    assert len(markers) == 1 and len(markers[0].get_offsets()) == _flushed(result)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert {"token committed", "token flushed", "flush", "MLP", "attention"} <= set(legend)


def test_timeline_default_window_and_bad_input(result):
    frame = plots.timeline_frame(result)
    start, end = plots.default_window(frame, "sequential")
    seq = result.tokens[result.tokens["strategy"] == "sequential"].sort_values("position")
    assert (start, end) == (seq["start_cycle"].iloc[0], seq["end_cycle"].iloc[3])
    ax = plots.plot_timeline(frame, "sequential").axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()][-1] == "token slot 0"
    with pytest.raises(ConfigError, match="no strategy 'nope'"):
        plots.plot_timeline(frame, "nope")
    with pytest.raises(ConfigError, match="empty window"):
        plots.plot_timeline(frame, "speed", 100, 100)


# -- occupancy ------------------------------------------------------------------------------

def test_occupancy_panels_peaks_and_capacities(result):
    hw = result.hw
    tables = {n: r.sim.occupancy for n, r in result.runs.items()}
    fig = plots.plot_occupancy(tables, hw.clock_hz, hw=hw)
    assert fig._suptitle.get_text() == "On-chip buffer occupancy"
    buffers = sorted(set(pd.concat(tables.values())["buffer"]))
    assert len(fig.axes) == len(buffers) * len(tables)
    grid = np.array(fig.axes).reshape(len(buffers), len(tables))
    for r, buf in enumerate(buffers):
        assert grid[r, 0].get_ylabel() == f"{buf} [KiB]"
        for c, name in enumerate(tables):
            ax = grid[r, c]
            step, mean, cap = ax.get_lines()
            peak = result.summary["strategies"][name]["buffers"][buf]["peak_bytes"]
            assert step.get_ydata().max() == pytest.approx(peak / 1024)
            assert cap.get_ydata()[0] == getattr(hw.buffers, buf).size_kib
            assert 0 < mean.get_ydata()[0] <= peak / 1024
    assert all(ax.get_xlabel() == "time [ms]" for ax in grid[-1])
    assert [ax.get_title() for ax in grid[0]] == list(tables)


def test_pareto_is_the_sweep_engineers_figure():
    from speedsim.report import pareto

    assert plots.plot_pareto is pareto.plot_pareto


# -- speedsim plot ----------------------------------------------------------------------------

def _valid_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert matplotlib.image.imread(path).shape[0] > 100


def _valid_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag.endswith("svg")


@pytest.mark.parametrize("kind", ["latency", "energy", "roofline", "timeline", "occupancy"])
def test_plot_command_draws_png_from_a_run_directory(kind, out_dir, tmp_path):
    target = tmp_path / f"{kind}.png"
    assert main(["plot", kind, str(out_dir), "--out", str(target)]) == 0
    _valid_png(target)


def test_plot_command_svg_default_name_and_windows(out_dir, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(out_dir, run)
    assert main(["plot", "energy", str(run), "--format", "svg", "--per-token"]) == 0
    _valid_svg(run / "energy.svg")
    assert main(["plot", "timeline", str(run), "--strategy", "sequential", "--window-us", "400",
                 "--out", str(tmp_path / "tl")]) == 0
    _valid_png(tmp_path / "tl.png")
    assert main(["plot", "timeline", str(run), "--start", "2000000", "--end", "2600000",
                 "--out", str(tmp_path / "tl.svg")]) == 0
    _valid_svg(tmp_path / "tl.svg")
    assert main(["plot", "latency", str(run), "--strategies", "speed"]) == 0
    _valid_png(run / "latency.png")
    assert "wrote" in capsys.readouterr().out


def test_plot_command_reads_what_the_run_saved(result, out_dir):
    """The saved tables give the figures the same data as the in-memory run."""
    saved_tokens = pd.read_csv(out_dir / "tokens.csv")
    pd.testing.assert_frame_equal(plots.commit_gaps(saved_tokens, result.hw.clock_hz),
                                  plots.commit_gaps(result.tokens, result.hw.clock_hz))
    for name, run in result.runs.items():
        saved = plots.roofline_table(pd.read_csv(out_dir / f"items_{name}.csv"), "array")
        pd.testing.assert_frame_equal(saved, plots.roofline_table(run.sim.items, "array"), check_dtype=False)


def test_plot_speedup_map_from_sweep_results(grid, tmp_path):
    _, _, df = grid
    results = tmp_path / "results.csv"
    rows = pd.concat([df.assign(**{"workload.generation.prompt_tokens": p}) for p in (16, 64)])
    rows.insert(0, "status", "ok")
    rows.to_csv(results, index=False)
    assert main(["plot", "speedup-map", str(results), "--where",
                 "workload.generation.prompt_tokens=64"]) == 0
    _valid_png(tmp_path / "results.speedup.png")
    assert main(["plot", "speedup-map", str(results)]) == 2  # two rows per cell
    assert main(["plot", "speedup-map", str(results), "--where", "nope=1"]) == 2
    assert main(["plot", "speedup-map", str(results), "--value", "nope",
                 "--where", "workload.generation.prompt_tokens=64"]) == 2


@pytest.mark.parametrize("argv", [
    ["plot", "latency", "{missing}"],
    ["plot", "energy", "{missing}"],
    ["plot", "roofline", "{missing}"],
    ["plot", "timeline", "{missing}"],
    ["plot", "occupancy", "{missing}"],
    ["plot", "speedup-map", "{missing}/results.csv"],
    ["plot", "energy", "{run}", "--out", "fig.pdf"],
    ["plot", "energy", "{run}", "--out", "fig.png", "--format", "svg"],
    ["plot", "energy", "{run}", "--strategies", "nope"],
    ["plot", "timeline", "{run}", "--strategy", "nope"],
    ["plot", "timeline", "{run}", "--end", "5", "--window-us", "3"],
    ["plot", "latency", "{broken}"],
])
def test_plot_command_bad_input_is_one_line_and_exit_2(argv, out_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "summary.json").write_text("{not json")
    subst = {"missing": str(tmp_path / "nowhere"), "run": str(out_dir), "broken": str(broken)}
    assert main([a.format(**subst) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("speedsim: error:") and err.count("\n") == 1


# -- plot sweep: one metric over one swept axis -------------------------------------------------

SWEEP_CSV = ("index,config_hash,status,error,hw.dram.bandwidth_gb_s,hw.array.weight_load,"
             "sequential.decode_time_s,speed.decode_time_s,speedup.speed\n"
             "0,a,ok,,20,serial,4,2,2.0\n1,b,ok,,10,serial,8,3,2.6666\n"
             "2,c,ok,,10,overlapped,7,3.5,2.0\n3,d,ok,,20,overlapped,3,1.5,2.0\n"
             "4,e,error,boom,40,serial,,,\n")


def test_sweep_lines_per_strategy_and_other_axis():
    df = pd.read_csv(io.StringIO(SWEEP_CSV))
    lines = plots.sweep_lines(df, "hw.dram.bandwidth_gb_s", "decode_time_s")
    assert list(lines) == [f"{s}.decode_time_s, weight_load={w}" for s in ("sequential", "speed")
                           for w in ("overlapped", "serial")]
    serial = lines["speed.decode_time_s, weight_load=serial"]
    assert serial["x"].tolist() == [10, 20] and serial["value"].tolist() == [3, 2]  # sorted by x
    one = plots.sweep_lines(df[df["hw.array.weight_load"] == "serial"], "hw.dram.bandwidth_gb_s",
                            "speedup.speed")
    assert list(one) == ["speedup.speed"] and one["speedup.speed"]["value"].tolist() == [2.6666, 2.0]


def test_sweep_figure_draws_every_line_with_units(tmp_path):
    df = pd.read_csv(io.StringIO(SWEEP_CSV))
    fig = plots.plot_sweep(df, "hw.array.weight_load", "decode_time_s")
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["overlapped", "serial"]
    assert ax.get_ylabel() == "decode_time_s [s]"
    assert {line.get_linestyle() for line in ax.get_lines()} == {"-", "--"}


def test_plot_sweep_command(tmp_path, capsys):
    results = tmp_path / "s.csv"
    results.write_text(SWEEP_CSV)
    assert main(["plot", "sweep", str(results), "--x", "hw.dram.bandwidth_gb_s", "--y",
                 "decode_time_s", "--where", "hw.array.weight_load=serial"]) == 0
    _valid_png(tmp_path / "s.decode_time_s.png")
    for argv, words in ((["--y", "decode_tme_s"], "--y: no column 'decode_tme_s'"),
                        (["--y", "hw.dram.bandwidth_gb_s"], "--y: --x and --y name the same"),
                        (["--y", "decode_time_s", "--x", "hw.dram.bandwith_gb_s"],
                         "--x: no column 'hw.dram.bandwith_gb_s' (swept columns: "
                         "hw.dram.bandwidth_gb_s, hw.array.weight_load)")):
        capsys.readouterr()
        assert main(["plot", "sweep", str(results), "--x", "hw.dram.bandwidth_gb_s", *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1, err


def test_a_summary_timeline_says_where_its_unit_record_ends(result):
    from speedsim.report.timeline import SUMMARY_DECODE_TOKENS, chrome_trace

    runs = {n: (r.plan, r.sim) for n, r in result.runs.items()}
    summary = plots.timeline_frame(chrome_trace(runs, result.hw.clock_hz, "summary"))
    full = plots.timeline_frame(chrome_trace(runs, result.hw.clock_hz, "full"))
    last = plots.unit_record_end(summary, "speed")
    commits = result.tokens[(result.tokens["strategy"] == "speed")
                            & (result.tokens["status"] == "committed")].sort_values("position")
    assert commits["end_cycle"].iloc[SUMMARY_DECODE_TOKENS - 1] <= last < commits["end_cycle"].max()
    assert plots.unit_record_end(full, "speed") is None
    end = int(commits["end_cycle"].max())
    note = [t.get_text() for t in plots.plot_timeline(summary, "speed", last - 1000, end).axes[0].texts
            if "not recorded" in t.get_text()]
    assert note and f"after cycle {last:,}" in note[0] and "--timeline full" in note[0]
    for frame, window in ((full, (last - 1000, end)), (summary, (last - 2000, last))):
        texts = [t.get_text() for t in plots.plot_timeline(frame, "speed", *window).axes[0].texts]
        assert not any("not recorded" in t for t in texts)


def test_latency_legend_reads_in_human_units():
    tokens = pd.DataFrame({"strategy": ["sequential"] * 4, "exec": [1, 2, 3, 4], "sequence": 0,
                           "position": [4, 5, 6, 7], "token_id": -1, "status": "committed",
                           "start_cycle": [0, 2070e3, 4140e3, 6210e3],
                           "end_cycle": [2070e3, 4140e3, 6210e3, 8280e3]})
    fig = plots.plot_token_latency(tokens, 1e9)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["sequential (mean 2.07 ms)"]


def test_roofline_of_five_strategies_is_a_grid_not_a_strip(result):
    table = plots.roofline_table(next(iter(result.runs.values())).sim.items, "array")
    names = ["sequential", "speed", "early_exit_spec", "draft_spec", "shallow"]
    fig = plots.plot_roofline({n: table for n in names}, result.hw)
    assert [ax.get_title() for ax in fig.axes] == names
    width, height = fig.get_size_inches()
    assert width <= 16 and height < width  # 3 panels a row, 2 rows (was 26.5 in wide)
    rows = sorted({round(ax.get_position().y0, 3) for ax in fig.axes})
    assert len(rows) == 2


def test_pareto_labels_do_not_print_over_each_other():
    from speedsim.report.pareto import LABEL_GAP, spaced

    x = np.linspace(1.0, 2.0, 40)
    df = pd.DataFrame({"index": range(40), "status": "ok", "a": x, "b": 1.0 / x})  # all on the front
    fig = plots.plot_pareto(df, "a", "b")
    labelled = [t.get_text() for t in fig.axes[0].texts]
    assert 5 <= len(labelled) < 40 and labelled[0] == "0"
    kept = spaced(df, "a", "b", df)
    u, v = df.loc[kept, "a"] / 1.0, df.loc[kept, "b"] / 0.5  # the axes' spans: 1 and 0.5
    gaps = np.maximum(np.abs(np.diff(u)), np.abs(np.diff(v)))
    assert (gaps >= LABEL_GAP - 1e-12).all()


@pytest.mark.parametrize("kind", ["pareto", "sweep"])
@pytest.mark.parametrize("name, text, words", [
    ("summary.json", '{"a": 1,\n "b": 2}\n{"c": [1, 2, 3]}\n', ["not a readable results table"]),
    ("bytes.csv", b"\xff\xfe\x00", ["not a readable results table", "utf-8"]),
    ("empty.csv", "", ["results file is empty"]),
    ("results.parquet", b"PAR1 not parquet", ["results.parquet"]),
])
def test_a_file_that_is_not_a_results_table_is_one_line(tmp_path, capsys, kind, name, text, words):
    """``plot pareto`` and ``plot sweep`` read through one reader (``store.read_table``): a
    JSON, binary, empty or broken Parquet file is one line and exit 2 (pareto raised
    pandas' ParserError, and both an ImportError without pyarrow)."""
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    assert main(["plot", kind, str(path), "--x", "a", "--y", "b"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in [name, *words]), err

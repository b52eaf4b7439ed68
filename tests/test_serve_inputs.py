"""``speedsim serve`` on good and bad input: exit 2 with one line naming the file and the
key before any simulation, never a traceback; a recorded run runs again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_bad_inputs import TINY, assert_config_error, cli

EDGE = "hw_configs/edge.yaml"
TRAFFIC = """\
name: t
arrivals: {process: poisson, rate_rps: 200.0, seed: 0}
requests: 6
prompt_tokens: 4
output_tokens: {dist: uniform, low: 2, high: 4, seed: 0}
scheduler: {max_batch: 2}
slo: {ttft_s: 0.01, tpot_s: 0.01}
"""


@pytest.fixture
def files(tmp_path) -> tuple[str, str]:
    (tmp_path / "tiny.yaml").write_text(TINY)
    (tmp_path / "traffic.yaml").write_text(TRAFFIC)
    return str(tmp_path / "tiny.yaml"), str(tmp_path / "traffic.yaml")


def test_serve_writes_its_files_and_runs_again_from_them(files, tmp_path):
    wl, tr = files
    out = tmp_path / "o"
    rc, lines, err = cli("serve", EDGE, wl, tr, "--out", str(out))
    assert (rc, err) == (0, [])
    assert {p.name for p in out.iterdir()} == {"requests.csv", "summary.json", "resolved_config.yaml"}
    first = json.loads((out / "summary.json").read_text())
    assert set(first["strategies"]) == {"sequential", "speed"}
    rc, lines, err = cli("serve", str(out), "--json")
    assert (rc, err) == (0, [])
    assert json.loads("\n".join(lines)) == first


def test_traffic_overrides_change_the_run(files):
    wl, tr = files
    rc, lines, _ = cli("serve", EDGE, wl, tr, "--json", "--strategies", "sequential",
                       "--set", "traffic.requests=3")
    assert rc == 0 and json.loads("\n".join(lines))["strategies"]["sequential"]["requests"] == 3


def trace(tmp_path: Path, text: str) -> str:
    path = tmp_path / "trace.csv"
    path.write_text(text)
    return str(path)


HEADER = "arrival_s,prompt_tokens,output_tokens\n"


@pytest.mark.parametrize("override, words", [
    ("traffic.arrivals.rate_rps=-1", ["traffic.yaml", "arrivals.rate_rps", "greater than 0"]),
    ("traffic.output_tokens=0", ["traffic.yaml", "output_tokens", "at least 1"]),
    ("traffic.output_tokens.low=0", ["traffic.yaml", "output_tokens.low"]),
    ("traffic.output_tokens.high=1", ["traffic.yaml", "output_tokens.high", ">= low"]),
    ("traffic.scheduler.max_batch=0", ["traffic.yaml", "scheduler.max_batch", "greater than 0"]),
    ("traffic.scheduler.maxbatch=2", ["traffic.yaml", "scheduler.maxbatch", "did you mean 'max_batch'"]),
    ("traffic.arrival={}", ["traffic.yaml", "arrival", "unknown key"]),
    ("traffic.scheduler.policy=lifo", ["traffic.yaml", "scheduler.policy"]),
    ("traffic.slo.ttft_s=0", ["traffic.yaml", "slo.ttft_s"]),
    ("traffic.requests=two", ["traffic.yaml", "requests"]),
    ("traffic.output_tokens={dist: zipf}", ["traffic.yaml", "output_tokens", "zipf"]),
    ("traffic.arrivals.rate_rps=.inf", ["traffic.yaml", "arrivals.rate_rps"]),
    # the server's float clock would lose the cycle (it divided by a zero TPOT before)
    # a billion requests exhausted memory drawing their arrivals (killed, no message)
    ("traffic.requests=1000000000", ["traffic.yaml", "requests", "less than or equal to 1000000"]),
    ("traffic.arrivals.rate_rps=1e-300", ["traffic.yaml", "arrivals.rate_rps", "resolves one cycle"]),
    ("queue.x=1", ["--set", "hw., workload. or traffic."]),
])
def test_bad_traffic_values(files, tmp_path, override, words):
    wl, tr = files
    assert_config_error(["serve", EDGE, wl, tr, "--set", override, "--out", str(tmp_path / "o")],
                        *words, out=tmp_path / "o")


@pytest.mark.parametrize("text, words", [
    ("", ["first line must be"]),
    (HEADER, ["holds no requests"]),
    (HEADER + "0.5,4,4\n0.1,4,4\n", ["line 3", "before the previous", "sorted"]),
    (HEADER + "nan,4,4\n", ["line 2", "finite"]),
    (HEADER + "inf,4,4\n", ["line 2", "finite"]),
    (HEADER + "0,4,0\n", ["line 2", "output_tokens must be >= 1"]),
    (HEADER + "0,4\n", ["line 2", "3 values"]),
    (HEADER + "1e20,4,4\n", ["2^52 cycles", "resolves one cycle"]),
    (HEADER + "0,four,4\n", ["line 2", "not numbers"]),
])
def test_bad_traces(files, tmp_path, text, words):
    wl, tr = files
    path = trace(tmp_path, text)
    over = f"traffic.arrivals={{process: trace, path: {path}}}"
    assert_config_error(["serve", EDGE, wl, tr, "--set", over, "--set", "traffic.requests=null",
                         "--set", "traffic.prompt_tokens=null", "--set", "traffic.output_tokens=null"],
                        "traffic.yaml", "arrivals.path", *words)


def test_a_trace_gives_the_lengths_itself(files, tmp_path):
    wl, tr = files
    path = trace(tmp_path, HEADER + "0,4,3\n")
    assert_config_error(["serve", EDGE, wl, tr, "--set",
                         f"traffic.arrivals={{process: trace, path: {path}}}"],
                        "traffic.yaml", "prompt_tokens", "a trace gives")


@pytest.mark.parametrize("override, key", [("traffic.output_tokens=500", "output_tokens"),
                                           ("traffic.prompt_tokens=1000", "prompt_tokens")])
def test_requests_longer_than_the_model_context(files, override, key):
    """The key blamed is the one to lower: a prompt alone past the context is the prompt's."""
    _, tr = files
    text = assert_config_error(["serve", EDGE, "workloads/strategies.yaml", tr, "--set", override],
                               "traffic.yaml", "max_seq_len 256")
    assert f"traffic.yaml: {key}:" in text, text


@pytest.mark.parametrize("overrides, key", [
    (["workload.strategies.speed.stages=4", "workload.strategies.speed.exit_depth=2"],
     "strategies.speed.exit_depth"),
    (["workload.strategies.speed.stages=4", "workload.strategies.speed.second_depth=2"],
     "strategies.speed.second_depth"),
    (["workload.model.n_layers=5", "workload.strategies.speed.stages=null",
      "workload.model.sharing={scheme: loop, unique_layers: 2, "
      "prelude_layers: 1}"], "model.sharing.prelude_layers"),
])
def test_speed_configurations_serve_cannot_model_are_refused(files, overrides, key):
    """The served SPEED step is G equal stages with the early head after the first: a
    later exit, a second proposal or a loop model's prelude is refused, not approximated."""
    wl, tr = files
    sets = [a for o in overrides for a in ("--set", o)]
    assert_config_error(["serve", EDGE, wl, tr, *sets], "tiny.yaml", key, "speedsim serve")


def test_missing_traffic_file_and_wrong_count(files):
    wl, _ = files
    assert_config_error(["serve", EDGE, wl, "nowhere.yaml"], "nowhere.yaml", "file not found")
    assert_config_error(["serve", EDGE, wl], "CONFIG", "TRAFFIC.yaml")


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_bad_worker_count(files, workers):
    wl, tr = files
    assert_config_error(["serve", EDGE, wl, tr, "--workers", workers], "--workers")


def test_audit_memo_reports_each_iterations_error(files):
    wl, tr = files
    rc, lines, err = cli("serve", EDGE, wl, tr, "--json", "--audit-memo", "--strategies", "speed")
    assert (rc, err) == (0, [])
    memo = json.loads("\n".join(lines))["strategies"]["speed"]["memo"]
    audit = memo["audit"]
    assert audit["iterations"] == memo["iterations"] and memo["exact"] is False  # memo drives
    assert set(audit["summary_rel_error"]) >= {"ttft_s.p99", "tpot_s.p50", "energy_per_token_j"}
    assert memo["replays"] == audit["iterations"] + audit["corner_replays"]
    assert 0 <= audit["mean_abs_rel_error"] <= audit["max_abs_rel_error"] < 0.05
    assert abs(audit["mean_rel_error"]) <= audit["mean_abs_rel_error"]


# -- load sweeps and the load plot ------------------------------------------------------------

def sweep_file(tmp_path: Path, wl: str, tr: str, axes: str) -> str:
    path = tmp_path / "load.yaml"
    path.write_text(f"name: load\nhw: {Path(EDGE).resolve()}\nworkload: {wl}\ntraffic: {tr}\n"
                    f"strategies: [sequential, speed]\naxes:\n  {axes}\n")
    return str(path)


def test_a_serving_sweep_over_traffic_keys_and_its_load_plot(files, tmp_path):
    import pandas as pd

    wl, tr = files
    sweep = sweep_file(tmp_path, wl, tr, "traffic.arrivals.rate_rps: [50.0, 5000.0]")
    rc, _, err = cli("sweep", sweep, "--out", str(tmp_path / "load.csv"), "--workers", "1")
    assert rc == 0, err
    df = pd.read_csv(tmp_path / "load.csv")
    assert df["status"].tolist() == ["ok", "ok"]
    assert df["traffic.arrivals.rate_rps"].tolist() == [50.0, 5000.0]
    # more load, more throughput: a tiny request stream is served as it comes at 50 rps
    assert df["sequential.throughput_tokens_per_s"].is_monotonic_increasing
    assert {"speed.tpot_s.p99", "speed.throughput_vs_sequential", "speed.tpot_speedup_p50"} <= set(df)
    rc, out, err = cli("plot", "load", str(tmp_path / "load.csv"), "--out", str(tmp_path / "l.png"))
    assert (rc, err) == (0, []) and (tmp_path / "l.png").stat().st_size > 0
    assert out[0].startswith("speed: throughput = sequential's at")


def test_traffic_axes_need_a_traffic_file(files, tmp_path):
    wl, tr = files
    sweep = sweep_file(tmp_path, wl, tr, "traffic.requests: [2, 3]")
    text = Path(sweep).read_text().replace(f"traffic: {tr}\n", "")
    Path(sweep).write_text(text)
    assert_config_error(["sweep", sweep, "--out", str(tmp_path / "x.csv")],
                        "axes.traffic.requests", "need a base traffic file")
    Path(sweep).write_text(text.replace("traffic.requests", "traffic.requestz") + f"traffic: {tr}\n")
    assert_config_error(["sweep", sweep, "--out", str(tmp_path / "x.csv")],
                        "axes.traffic.requestz", "did you mean 'requests'")


def test_crossovers_interpolate_where_the_advantage_falls_through_one():
    import numpy as np

    from speedsim.report.load_plot import crossovers

    load = np.array([1.0, 2.0, 4.0, 8.0])
    assert crossovers(load, np.array([1.5, 1.2, 0.9, 0.8])) == [pytest.approx(2 + 2 * 0.2 / 0.3)]
    assert crossovers(load, np.array([1.5, 1.2, 1.1, 1.0])) == []  # touching 1.0 is not below
    assert crossovers(load, np.array([0.9, 1.1, 0.95, 1.2])) == [pytest.approx(2 + 2 * 0.1 / 0.15)]

"""Running sweeps: executors agree, failures are rows, the store survives kills and resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.sweep_fakes, inherited by spawned workers

from speedsim.cli import main  # noqa: E402
from speedsim.config.errors import ConfigError  # noqa: E402
from speedsim.sweep.runner import run_sweep  # noqa: E402
from speedsim.sweep.spec import load_sweep  # noqa: E402
from speedsim.report.store import load_results  # noqa: E402
from tests.sweep_fakes import write_sweep  # noqa: E402

FAKE = "tests.sweep_fakes:point"
SPEC = {"axes": {"hw.array.rows": [7, 16, 32],  # rows 7: the fake crashes
                 "hw.dram.bandwidth_gb_s": [12.8, 25.6],
                 "workload.generation.prompt_tokens": [13, 16]}}  # 13: the fake's ConfigError


def run(tmp_path, name="r.csv", spec=SPEC, **kw):
    sweep = load_sweep(write_sweep(tmp_path, spec))
    out = tmp_path / name
    summary = run_sweep(sweep, out, point_fn=kw.pop("point_fn", FAKE), progress=False, **kw)
    return summary, out


@pytest.fixture(scope="module")
def inline(tmp_path_factory):
    summary, out = run(tmp_path_factory.mktemp("inline"))
    return summary, load_results(out), out.read_bytes()


def test_inline_rows_in_order_with_readable_errors(inline):
    summary, df, _ = inline
    assert (summary.total, summary.ok, summary.failed, summary.skipped) == (12, 4, 8, 0)
    assert list(df["index"]) == list(range(12))
    assert list(df.columns[:7]) == ["index", "config_hash", "status", "error", "hw.array.rows",
                                    "hw.dram.bandwidth_gb_s", "workload.generation.prompt_tokens"]
    crashed = df[df["hw.array.rows"] == 7]
    assert set(crashed["error"]) == {
        "RuntimeError: fake simulator crashed with a second line",
        "generation.prompt_tokens: 13 prompt tokens is the fake's marked invalid value"}
    invalid = df[(df["workload.generation.prompt_tokens"] == 13) & (df["hw.array.rows"] != 7)]
    assert set(invalid["status"]) == {"error"} and invalid["speed.decode_time_s"].isna().all()
    ok = df[df["status"] == "ok"]
    assert list(ok["hw.array.rows"]) == [16, 16, 32, 32]
    assert (ok["error"] == "").all() and ok["speedup.speed"].gt(1).all()
    assert list(ok["silicon.pes"]) == [16 * 32, 16 * 32, 32 * 32, 32 * 32]


def test_two_worker_processes_give_identical_rows(tmp_path, inline):
    summary, out = run(tmp_path, workers=2)
    pd.testing.assert_frame_equal(load_results(out), inline[1])
    assert out.read_bytes() == inline[2]  # the finished file is sorted by index


def test_dask_local_cluster_gives_identical_rows(tmp_path, inline):
    pytest.importorskip("distributed")
    summary, out = run(tmp_path, workers=2, scheduler="local")
    pd.testing.assert_frame_equal(load_results(out), inline[1])
    assert out.read_bytes() == inline[2]


def test_resume_keeps_ok_rows_reruns_errors_and_drops_a_partial_line(tmp_path, inline):
    _, out = run(tmp_path)
    lines = out.read_text().splitlines(keepends=True)
    kept = [lines[0]] + [ln for ln in lines[1:] if int(ln.split(",")[0]) in (4, 5, 6, 7)]
    out.write_text("".join(kept) + lines[7][:25])  # 5 and 7 ok, 4 and 6 errors, then half a row
    summary, _ = run(tmp_path, resume=True)
    assert (summary.skipped, summary.ok + summary.failed) == (2, 10)
    df = load_results(out)
    assert sorted(df["index"]) == list(range(12))  # every point exactly once
    pd.testing.assert_frame_equal(df, inline[1])


def test_existing_results_need_resume_or_overwrite(tmp_path):
    run(tmp_path)
    with pytest.raises(ConfigError, match="--resume"):
        run(tmp_path)
    summary, out = run(tmp_path, overwrite=True)
    assert summary.skipped == 0 and len(load_results(out)) == 12


def test_resume_refuses_results_of_another_sweep(tmp_path):
    run(tmp_path)
    other = {"axes": {**SPEC["axes"], "hw.array.rows": [7, 16, 64]}}
    with pytest.raises(ConfigError, match="not of this sweep"):
        run(tmp_path, spec=other, resume=True)
    with pytest.raises(ConfigError, match="columns"):
        run(tmp_path, spec={**SPEC, "metrics": ["speed.decode_time_s"]}, resume=True)


def test_a_metric_the_point_function_lacks_is_an_error_row(tmp_path):
    # a real metric name (checked when the spec loads) that the fake does not compute
    _, out = run(tmp_path, spec={"axes": {"hw.array.rows": [16]}, "metrics": ["speed.macs"]})
    (row,) = load_results(out).to_dict("records")
    assert row["status"] == "error"
    assert row["error"].startswith("point function returned no metric speed.macs")


@pytest.mark.parametrize("metric, words", [
    ("speed.decode_tme_s", "did you mean speed.decode_time_s"),
    ("draft_spec.decode_time_s", "not one of this sweep's strategies"),
    ("speedup.shallow", "speedup.<strategy> needs one of"),
])
def test_a_misspelt_metric_is_bad_input_before_the_first_point(tmp_path, metric, words):
    spec = write_sweep(tmp_path, {"axes": {"hw.array.rows": [16]}, "metrics": [metric]})
    with pytest.raises(ConfigError, match="metrics\\[0\\]") as exc:
        load_sweep(spec)
    assert words in str(exc.value)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "r.csv"), "--quiet"]) == 2
    assert not (tmp_path / "r.csv").exists()


def test_a_strategy_the_workload_does_not_configure_is_bad_input(tmp_path):
    spec = write_sweep(tmp_path, {"strategies": ["sequential", "draft_spec"],
                                  "axes": {"hw.array.rows": [16]}})
    with pytest.raises(ConfigError, match=r"strategies\[1\]: strategy 'draft_spec' is not "
                                          "configured in the workload wl.yaml"):
        load_sweep(spec)
    configured = write_sweep(tmp_path, {"strategies": ["sequential", "shallow"],
                                        "fixed": {"workload.strategies.shallow": {}},
                                        "axes": {"hw.array.rows": [16]}}, name="ok.yaml")
    assert load_sweep(configured).spec.strategies == ["sequential", "shallow"]
    replaced = write_sweep(tmp_path, {"strategies": ["sequential", "speed"],
                                      "fixed": {"workload.strategies": {"sequential": {}}},
                                      "axes": {"hw.array.rows": [16]}}, name="replaced.yaml")
    with pytest.raises(ConfigError, match=r"strategies\[1\]: strategy 'speed' is not configured"):
        load_sweep(replaced)
    dropped = write_sweep(tmp_path, {"fixed": {"workload.strategies.speed": None},
                                     "axes": {"hw.array.rows": [16]}}, name="dropped.yaml")
    with pytest.raises(ConfigError, match=r"strategies\[1\]: strategy 'speed'"):
        load_sweep(dropped)


def test_a_sweep_with_failed_points_exits_3_and_says_how_many(tmp_path, capsys):
    spec = write_sweep(tmp_path, {"axes": {"hw.array.rows": [7, 16]}})  # rows 7: the fake crashes
    out = tmp_path / "r.csv"
    argv = ["sweep", str(spec), "--out", str(out), "--point-fn", FAKE, "--quiet"]
    assert main(argv) == 3
    assert "1 of 2 points failed" in capsys.readouterr().err
    ok = write_sweep(tmp_path, {"axes": {"hw.array.rows": [8, 16]}}, name="ok.yaml")
    assert main(["sweep", str(ok), "--out", str(tmp_path / "ok.csv"), "--point-fn", FAKE,
                 "--quiet"]) == 0


def test_unloadable_point_function_is_bad_input(tmp_path):
    with pytest.raises(ConfigError, match="cannot be loaded"):
        run(tmp_path, point_fn="tests.sweep_fakes:nope")


def test_parquet_needs_pyarrow_or_round_trips(tmp_path, inline):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="pyarrow"):
            run(tmp_path, name="r.parquet")
        return
    _, out = run(tmp_path, name="r.parquet")
    assert not (tmp_path / "r.parquet.journal.csv").exists()
    pd.testing.assert_frame_equal(load_results(out), inline[1], check_dtype=False)


def test_cli_bad_spec_exits_2_and_dry_run_lists_points(tmp_path, capsys):
    bad = write_sweep(tmp_path, {"axes": {"hw.aray.rows": [1]}}, name="bad.yaml")
    assert main(["sweep", str(bad)]) == 2
    assert "axes.hw.aray.rows: 'aray' is not a key of hw (did you mean 'array'?)" in capsys.readouterr().err
    good = write_sweep(tmp_path, SPEC)
    assert main(["sweep", str(good), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "12 points; roughly 14 s with 1 worker"  # 12 · 9408 items
    assert "hw.array.rows=7 hw.dram.bandwidth_gb_s=12.8 workload.generation.prompt_tokens=13" in out
    too_few = write_sweep(tmp_path, {"axes": {"workload.model.n_layers": [12, 10]}}, name="few.yaml")
    assert main(["sweep", str(too_few), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "2 points, 1 invalid; roughly 1 s with 1 worker"
    assert lines[1].endswith("workload.model.n_layers=10  INVALID workload: strategies.speed.stages: "
                             "n_layers=10 is not a multiple of unique_layers=4; set stages explicitly")


def _data_rows(path: Path) -> int:
    return path.read_text().count("\n") - 1 if path.exists() else 0


def _pool_pids_of(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_killed_sweep_resumes_with_every_point_exactly_once(tmp_path):
    spec = write_sweep(tmp_path, {"axes": {"hw.array.rows": [7, 8, 16, 32],
                                           "workload.generation.prompt_tokens": [13, 16, 24, 32, 48]}})
    out = tmp_path / "r.csv"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SPEEDSIM_SWEEP_POINT_FN": "tests.sweep_fakes:slow_point",
           "SPEEDSIM_FAKE_SLEEP_S": "0.1"}
    cmd = [sys.executable, "-m", "speedsim.cli", "sweep", str(spec), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd + ["--workers", "2"], env=env, cwd=tmp_path)
    deadline = time.monotonic() + 30
    while _data_rows(out) < 4 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    children = _pool_pids_of(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)  # the driver only: its pool workers must notice and leave
    proc.wait()
    landed = _data_rows(out)
    assert 4 <= landed < 20, "the sweep should be killed midway"
    done = subprocess.run(cmd + ["--resume"], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr  # finished, with failed points
    assert "points failed" in done.stderr
    df = load_results(out)
    assert sorted(df["index"]) == list(range(20))
    assert df["config_hash"].is_unique
    assert set(df.loc[df["status"] == "error", "workload.generation.prompt_tokens"]) <= {13, 16, 24, 32, 48}
    assert (df["status"] == "ok").sum() == 3 * 4  # rows 7 crash, prompt 13 is invalid
    deadline = time.monotonic() + 5
    while any(map(_alive, children)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert children and not any(map(_alive, children)), "orphaned pool workers"


def test_a_sweep_that_never_delivers_a_row_leaves_no_file(tmp_path):
    from speedsim.report.store import ResultStore

    store = ResultStore(tmp_path / "r.csv", ["index", "config_hash", "status", "error"])
    assert store.open(resume=False, overwrite=False, expected={}) == set()
    store.close()
    assert not (tmp_path / "r.csv").exists()


def test_point_function_may_be_passed_as_a_top_level_function(tmp_path, inline):
    from tests.sweep_fakes import point

    _, out = run(tmp_path, point_fn=point, workers=2)
    pd.testing.assert_frame_equal(load_results(out), inline[1])
    with pytest.raises(ConfigError, match="not a top-level function"):
        run(tmp_path, name="other.csv", point_fn=lambda hw, wl, s: {})


def test_progress_lines_off_a_terminal(tmp_path, capsys):
    """stderr is not a terminal here: plain lines, the last one with the final counts."""
    sweep = load_sweep(write_sweep(tmp_path, SPEC))
    run_sweep(sweep, tmp_path / "p.csv", point_fn=FAKE, progress=None)
    lines = capsys.readouterr().err.splitlines()
    assert lines and lines[-1].startswith("sweep: 12/12 points, 8 failed, ")
    run_sweep(sweep, tmp_path / "q.csv", point_fn=FAKE, progress=False)
    assert capsys.readouterr().err == ""


def test_the_estimate_before_a_sweep_is_its_work_items_at_the_nominal_rate(tmp_path):
    from speedsim.sweep.runner import ITEMS_PER_S, estimate_s
    from tests.sweep_fakes import BASE_WORKLOAD

    m, g = BASE_WORKLOAD["model"], BASE_WORKLOAD["generation"]
    items = (12 * m["n_layers"] + 3) * g["new_tokens"] * 2  # budget.work_items, 2 strategies
    bad = {**BASE_WORKLOAD, "generation": {**g, "new_tokens": 0}}  # invalid: an error row, free
    assert estimate_s([BASE_WORKLOAD] * 3 + [bad], 2, 1, str(tmp_path)) == 3 * items / ITEMS_PER_S
    assert estimate_s([BASE_WORKLOAD] * 3, 2, 2, str(tmp_path)) == 3 * items / ITEMS_PER_S / 2
    assert estimate_s([BASE_WORKLOAD], 2, 8, str(tmp_path)) == items / ITEMS_PER_S  # one point


def test_progress_lines_carry_an_eta_from_the_points_run_so_far(monkeypatch, capsys):
    from speedsim.sweep import runner

    clock = iter([100.0, 110.0, 120.0, 150.0])  # start, then after each point
    monkeypatch.setattr(runner.time, "monotonic", lambda: next(clock))
    bar = runner._Progress(total=5, done=2, mode="lines", every_s=0)  # 2 stored (--resume)
    bar.advance(True)
    bar.advance(False)
    bar.advance(True)
    assert capsys.readouterr().err.splitlines() == [
        "sweep: 3/5 points, 0 failed, 10 s elapsed, ETA 20 s",  # 10 s a point, 2 left
        "sweep: 4/5 points, 1 failed, 20 s elapsed, ETA 10 s",
        "sweep: 5/5 points, 1 failed, 50 s elapsed"]


def test_durations_read_in_the_unit_that_fits():
    from speedsim.sweep.runner import duration
    assert [duration(s) for s in (42, 89.6, 90, 5399, 5400, 9000)] == \
        ["42 s", "90 s", "1.5 min", "90.0 min", "1.5 h", "2.5 h"]

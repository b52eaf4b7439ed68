"""Strategies on worker processes: the same result as one after another, errors intact."""

import os
import time

import pandas as pd
import pytest

from speedsim.api import simulate
from speedsim.cli.io import write_run
from speedsim.config import load_hardware, load_workload
from speedsim.config.errors import ConfigError
from speedsim.forking import Ahead, deal, default_workers, run_forked


def test_jobs_come_back_in_order_from_every_worker():
    jobs = [lambda i=i: (i, os.getpid()) for i in range(5)]
    results = run_forked(jobs, 2)
    assert [i for i, _ in results] == list(range(5))
    pids = {pid for _, pid in results}
    assert len(pids) == 2 and os.getpid() in pids  # worker 0 is this process
    assert [pid for _, pid in results[0::2]] == [os.getpid()] * 3


def test_weights_deal_the_heaviest_first_to_the_lightest_share():
    # serving's five strategies (speedsim.serve.WORK): sequential, draft_spec, shallow here
    assert deal(5, 2, [1, 2, 6, 7, 1]) == [[0, 3, 4], [1, 2]]
    assert deal(5, 3, [1, 2, 6, 7, 1]) == [[3], [2], [0, 1, 4]]
    assert deal(4, 2, [1, 1, 1, 1]) == [[0, 2], [1, 3]]  # ties: the earlier job, worker
    assert deal(5, 2) == [[0, 2, 4], [1, 3]]  # no weights: i mod workers
    with pytest.raises(ValueError, match="2 weights for 3 jobs"):
        deal(3, 2, [1, 1])


def test_weighted_jobs_come_back_in_order():
    jobs = [lambda i=i: (i, os.getpid()) for i in range(4)]
    results = run_forked(jobs, 2, weights=[5, 1, 1, 1])
    assert [i for i, _ in results] == [0, 1, 2, 3]
    here = [i for i, pid in results if pid == os.getpid()]
    assert here in ([0], [1, 2, 3]) and len({pid for _, pid in results}) == 2


def test_one_worker_runs_everything_here():
    assert {pid for pid in run_forked([os.getpid] * 3, 1)} == {os.getpid()}


def test_a_workers_config_error_keeps_its_file_and_key():
    def bad():
        raise ConfigError("too big", file="hw.yaml", key="buffers.weight.size_kib")
    with pytest.raises(ConfigError) as exc:
        run_forked([lambda: 1, bad], 2)
    assert (exc.value.file, exc.value.key, str(exc.value)) == \
        ("hw.yaml", "buffers.weight.size_kib", "hw.yaml: buffers.weight.size_kib: too big")


def test_a_worker_that_dies_is_an_error_not_a_missing_result():
    with pytest.raises(RuntimeError, match="exit code 3"):
        run_forked([lambda: 1, lambda: os._exit(3)], 2)


def test_an_error_here_stops_the_workers(tmp_path):
    flag = tmp_path / "worker finished"

    def bad():
        raise ValueError("bad here")

    def slow():
        time.sleep(1.0)
        flag.write_text("done")
    with pytest.raises(ValueError, match="bad here"):
        run_forked([bad, slow], 2)
    time.sleep(1.5)
    assert not flag.exists()  # terminated, not left to run on


def test_default_workers_never_exceeds_the_jobs_or_the_cores():
    assert default_workers(1) == 1
    assert 1 <= default_workers(64) <= (os.cpu_count() or 1)


def test_simulate_gives_the_same_result_on_two_workers():
    hw = load_hardware("hw_configs/edge.yaml")
    wl = load_workload("workloads/gen.yaml", [("generation.new_tokens", 6)])
    one, two = simulate(hw, wl, workers=1), simulate(hw, wl, workers=2)
    assert one.summary == two.summary
    for name in one.runs:
        pd.testing.assert_frame_equal(one.runs[name].sim.items, two.runs[name].sim.items)
        pd.testing.assert_frame_equal(one.runs[name].sim.log, two.runs[name].sim.log)
        assert one.runs[name].plan == two.runs[name].plan


def test_a_write_that_fails_on_a_worker_names_its_file_and_leaves_no_directory(
        tmp_path, monkeypatch):
    """A strategy's items table is written by the worker that ran it (``speedsim run``):
    its failure there reaches the caller with the file's name, and the staged files and
    the folders made for them are gone."""
    import speedsim.cli.io as io
    hw = load_hardware("hw_configs/edge.yaml")
    wl = load_workload("workloads/gen.yaml", [("generation.new_tokens", 4)])
    result = simulate(hw, wl)
    write_csv = io.write_csv_atomic

    def full_disk(frame, path):
        if path.name.startswith("items_"):
            raise OSError(28, "No space left on device")
        write_csv(frame, path)
    monkeypatch.setattr(io, "write_csv_atomic", full_disk)
    out = tmp_path / "new" / "out"
    with io.run_files(out, "summary") as files:
        with pytest.raises(ConfigError, match="items_speed.csv: cannot write .No space left"):
            run_forked([lambda: None, lambda: files.strategy("speed", 1, result.runs["speed"])], 2)
        assert list(files.staging.iterdir()) == []
        files.abandon()
    assert not (tmp_path / "new").exists()


def test_run_directory_from_the_command_is_the_one_of_the_whole_result(tmp_path):
    """``speedsim run --out`` writes each strategy's files in the worker that ran it and
    keeps only ``summary_only`` runs: byte for byte the files ``write_run`` makes from the
    whole result, on one worker or two."""
    from speedsim.cli import main
    args = ["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--set",
            "workload.generation.new_tokens=6"]
    for w in (1, 2):
        assert main([*args, "--workers", str(w), "--out", str(tmp_path / f"cli{w}")]) == 0
    hw = load_hardware("hw_configs/edge.yaml")
    wl = load_workload("workloads/gen.yaml", [("generation.new_tokens", 6)])
    write_run(simulate(hw, wl), tmp_path / "api")
    files = {d: {p.name: p.read_bytes() for p in (tmp_path / d).iterdir()}
             for d in ("cli1", "cli2", "api")}
    assert files["cli1"] == files["cli2"] == files["api"]
    assert len(files["api"]) == 9  # four contract files, acceptance.csv, items and occupancy of both


def test_a_run_that_fails_leaves_no_directory(tmp_path, capsys):
    from speedsim.cli import main
    out = tmp_path / "new" / "out"
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--out", str(out),
                 "--max-work-items", "10"]) == 2  # refused inside the simulation
    assert "work items" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_a_summary_only_run_gives_the_same_summary_and_token_table():
    from speedsim.report.summary import build_summary, token_table
    hw = load_hardware("hw_configs/edge.yaml")
    wl = load_workload("workloads/gen.yaml", [("generation.new_tokens", 6)])
    runs = simulate(hw, wl).runs
    light = {n: r.summary_only() for n, r in runs.items()}
    assert build_summary(hw, wl, light) == build_summary(hw, wl, runs)
    pd.testing.assert_frame_equal(token_table(light, 1, wl.generation.prompt_tokens),
                                  token_table(runs, 1, wl.generation.prompt_tokens))
    assert all(not r.plan.items and r.sim.log.empty for r in light.values())


# -- a job started ahead (``speedsim run``'s reference decode) ------------------------------------

def test_a_job_started_ahead_runs_elsewhere_and_gives_its_result_or_its_error():
    assert Ahead(os.getpid)() != os.getpid()

    def bad():
        raise ConfigError("prompt too long", key="generation.prompt_tokens")
    with pytest.raises(ConfigError, match="prompt too long"):
        Ahead(bad)()


def test_a_job_started_ahead_and_not_wanted_is_stopped(tmp_path):
    flag = tmp_path / "finished"

    def slow():
        time.sleep(1.0)
        flag.write_text("done")
    Ahead(slow).close()
    time.sleep(1.5)
    assert not flag.exists()


def test_the_reference_started_ahead_is_the_one_computed_here():
    from speedsim.cli.run import reference_ahead, run_limits
    from speedsim.model.reference_cache import cached_generate

    wl = load_workload("workloads/gen.yaml", [("generation.new_tokens", 6)])
    limits = run_limits(10**9, 64.0)
    ahead = reference_ahead(wl, None, limits, None, None)
    if default_workers(2) < 2:  # one core: nothing is forked
        assert ahead is None
        return
    got, here = ahead(), cached_generate(wl, None)
    assert got.tokens.tobytes() == here.tokens.tobytes() and got.early.tobytes() == here.early.tobytes()
    assert got.exit_layer == here.exit_layer
    # one worker asked for, shape-only weights, or a run the budget refuses: computed in the run
    assert reference_ahead(wl, None, limits, None, 1) is None
    shape = load_workload("workloads/gen.yaml", [("model.weights", {"source": "shape_only"}), (
        "strategies.speed.acceptance", {"source": "bernoulli", "rate": 0.9})])
    assert reference_ahead(shape, None, limits, None, None) is None
    assert reference_ahead(wl, None, run_limits(1, 64.0), None, None) is None


def test_the_command_line_loads_no_simulator_before_a_command_runs():
    """``speedsim run`` starts the reference decode before pandas, the engine and the
    strategies load (``speedsim.cli.run``): importing the command line loads none of them."""
    import subprocess
    import sys
    code = ("import sys, speedsim.cli; print(sorted(m for m in ('pandas', 'matplotlib', 'simpy', "
            "'speedsim.api', 'speedsim.sim', 'speedsim.serve', 'speedsim.strategies', "
            "'speedsim.trace', 'speedsim.metrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    # and a whole run draws no figure: matplotlib never loads
    run = ("import sys; from speedsim.cli import main; main(['run', 'hw_configs/edge.yaml', "
           "'workloads/gen.yaml', '--set', 'workload.generation.new_tokens=4', '--json']); "
           "print('matplotlib' in sys.modules, file=sys.stderr)")
    out = subprocess.run([sys.executable, "-c", run], capture_output=True, text=True, check=True)
    assert out.stderr.strip() == "False"

"""``speedsim run``: the output contract of DESIGN §9 and the error contract of §8."""

import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from speedsim.cli import main

SUMMARY_KEYS = {"decode_time_s", "time_per_token_s", "ttft_s", "tokens_per_s", "cycles",
                "array_utilization", "dram_bandwidth_utilization", "energy_j",
                "energy_per_token_j", "dram_bytes", "macs", "committed_tokens"}
ENERGY_KEYS = {"total", "dram", "sram", "compute", "vector", "static"}
SHORT = ["--set", "workload.generation.new_tokens=12", "--set", "workload.generation.prompt_tokens=8",
         "--set", "workload.generation.prompt=null"]


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--out", str(out), *SHORT]) == 0
    return out


def test_run_writes_the_four_files(out_dir):
    for name in ("summary.json", "tokens.csv", "timeline.json", "resolved_config.yaml"):
        assert (out_dir / name).is_file(), name


def test_summary_timeline_keeps_the_first_decode_steps_and_none_writes_none(out_dir, tmp_path):
    full_dir, none_dir = tmp_path / "full", tmp_path / "none"
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--out", str(full_dir),
                 "--timeline", "full", *SHORT]) == 0
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--out", str(none_dir),
                 "--timeline", "none", *SHORT]) == 0
    assert not (none_dir / "timeline.json").exists()
    full = json.loads((full_dir / "timeline.json").read_text())["traceEvents"]
    summary = json.loads((out_dir / "timeline.json").read_text())["traceEvents"]
    tokens = lambda evs: [e for e in evs if e["pid"] % 2 == 0]
    assert tokens(summary) == tokens(full)  # token tracks whole
    units = lambda evs: [e for e in evs if e["pid"] % 2 == 1 and e["ph"] == "X"]
    assert 0 < len(units(summary)) < len(units(full))
    assert all(e in units(full) for e in units(summary))


def test_summary_has_every_contract_key(out_dir):
    s = json.loads((out_dir / "summary.json").read_text())
    assert set(s["strategies"]) == {"sequential", "speed"}
    for name, m in s["strategies"].items():
        assert SUMMARY_KEYS <= set(m), SUMMARY_KEYS - set(m)
        assert ENERGY_KEYS <= set(m["energy_j"])
        assert m["energy_j"]["total"] == pytest.approx(sum(m["energy_j"][k] for k in ENERGY_KEYS
                                                           if k != "total"))
        assert m["committed_tokens"] == 12
    spec = s["strategies"]["speed"]["speculation"]
    assert {"launched", "committed", "flushed", "acceptance_rate"} <= set(spec)
    assert spec["launched"] == spec["committed"] + spec["flushed"]
    assert set(s["speedup"]) == {"sequential", "speed"} and s["speedup"]["sequential"] == 1.0
    assert set(s["roofline"]) == {"sequential", "speed"}
    assert s["tokens_match"] is True
    assert s["config"]["workload"]["generation"]["new_tokens"] == 12  # the resolved config


def test_tokens_csv_has_one_row_per_execution(out_dir):
    s = json.loads((out_dir / "summary.json").read_text())
    t = pd.read_csv(out_dir / "tokens.csv")
    assert list(t.columns[:2]) == ["strategy", "exec"]
    assert {"strategy", "position", "token_id", "status", "start_cycle", "end_cycle"} <= set(t.columns)
    assert set(t["status"]) <= {"committed", "flushed"}
    for name in ("sequential", "speed"):
        rows = t[t["strategy"] == name]
        committed = rows[rows["status"] == "committed"].sort_values("position")
        assert list(committed["position"]) == list(range(8, 8 + 11))
        assert (rows["end_cycle"] > rows["start_cycle"]).all()
    spec = s["strategies"]["speed"]["speculation"]
    assert (t[t["strategy"] == "speed"]["status"] == "flushed").sum() == spec["flushed"]
    # each committed row's next token is the next committed row's input; the last one's is
    # the last generated token, which no row takes in
    for name in ("sequential", "speed"):
        done = t[(t["strategy"] == name) & (t["status"] == "committed")].sort_values("position")
        assert done["next_token_id"].tolist()[:-1] == done["token_id"].tolist()[1:]
        assert done["next_token_id"].iloc[-1] >= 0
    assert (t.loc[t["status"] == "flushed", "next_token_id"] == -1).all()
    # sequential and SPEED commit the same token ids at the same positions
    seq = t[(t["strategy"] == "sequential")].sort_values("position")["token_id"].tolist()
    spd = t[(t["strategy"] == "speed") & (t["status"] == "committed")].sort_values("position")
    assert spd["token_id"].tolist() == seq


def test_timeline_is_valid_chrome_trace(out_dir):
    """Required fields of the Trace Event Format (JSON object form): every event has
    ph, pid, tid, name; X events have numeric ts >= 0 and dur >= 0; M events name
    processes/threads; i events have a scope."""
    doc = json.loads((out_dir / "timeline.json").read_text())
    assert isinstance(doc["traceEvents"], list) and doc["traceEvents"]
    phases = set()
    for ev in doc["traceEvents"]:
        assert {"ph", "pid", "tid", "name"} <= set(ev), ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int)
        phases.add(ev["ph"])
        if ev["ph"] == "X":
            assert isinstance(ev["ts"], (int, float)) and ev["ts"] >= 0
            assert isinstance(ev["dur"], (int, float)) and ev["dur"] >= 0
        elif ev["ph"] == "M":
            assert ev["name"] in ("process_name", "thread_name") and "name" in ev["args"]
        elif ev["ph"] == "i":
            assert ev["s"] in ("g", "p", "t") and ev["ts"] >= 0
        else:
            pytest.fail(f"unexpected phase {ev['ph']}")
    assert {"X", "M"} <= phases
    names = {ev["args"]["name"] for ev in doc["traceEvents"] if ev["name"] == "thread_name"}
    assert {"array", "vector", "dram"} <= names  # one track per unit
    assert any(n.startswith("slot ") for n in names)  # and per token slot


def test_json_flag_prints_the_summary(capsys):
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--json",
                 "--strategies", "sequential", *SHORT]) == 0
    s = json.loads(capsys.readouterr().out)
    assert list(s["strategies"]) == ["sequential"]


@pytest.mark.parametrize("args, message", [
    (["--set", "hw.dram.bandwith_gb_s=10"], "--set: hw.dram.bandwith_gb_s: unknown key"),
    (["--set", "hw.dram.bandwidth_gb_s=0"], "--set: hw.dram.bandwidth_gb_s: Input should be greater than or equal to 0.01"),
    (["--set", "workload.model.n_heads=5"], "--set: workload.model.n_heads:"),
    (["--set", "nothing=1"], "--set: override 'nothing=1' must start with hw. or workload."),
    (["--strategies", "sped"], "unknown strategy 'sped'; valid: draft_spec, early_exit_spec, "
                               "sequential, shallow, speed"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--out", str(out), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not out.exists()  # nothing half-written


def test_malformed_yaml_file_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: {d_model: 64\n")
    proc = subprocess.run([sys.executable, "-m", "speedsim.cli", "run", "hw_configs/edge.yaml",
                           str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "bad.yaml: malformed YAML at line" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("module", ["speedsim", "speedsim.cli"])
def test_python_m_entry_points_reach_every_command(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "{run,serve,trace,sweep,plot,list}" in proc.stdout


@pytest.mark.parametrize("module", ["speedsim", "speedsim.cli"])
def test_the_executable_leaves_fast_with_all_its_output_and_files(module, tmp_path):
    # ``speedsim.cli.console`` ends with os._exit: stdout (buffered, into a pipe) is flushed
    # first, files are closed
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    proc = subprocess.run([sys.executable, "-m", module, "run", "hw_configs/edge.yaml",
                           "workloads/gen.yaml", "--set", "workload.generation.new_tokens=4",
                           "--json", "--out", str(out)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary == json.loads((out / "summary.json").read_text())
    assert (out / "items_speed.csv").read_text().endswith("\n")


def test_the_collector_resumes_with_what_the_pause_made_counted_old():
    """After ``collector_paused`` the objects it made are in the oldest generation, not all
    young: the first collection after a run would otherwise walk every one of them."""
    import gc

    from speedsim.api import collector_paused

    with collector_paused():
        made = [[i] for i in range(1000)]
    assert gc.isenabled()
    young = {id(o) for o in gc.get_objects(generation=0)}
    assert not any(id(o) in young for o in made)
    old = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(o) in old for o in made)


def test_the_run_command_runs_with_the_collector_paused_and_resumes_it(monkeypatch):
    """``speedsim run`` pauses the cyclic collector from its first step (importing the
    simulator took ~9 % less CPU without collections of its new objects) to its end."""
    import gc

    import speedsim.cli.run as run_cli
    from speedsim.cli import main

    seen = []
    monkeypatch.setattr(run_cli, "_run", lambda args: seen.append(gc.isenabled()) or 0)
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml"]) == 0
    assert seen == [False] and gc.isenabled()


def test_the_run_command_leaves_its_result_for_the_executable_to_keep(tmp_path):
    """``speedsim.cli.console`` keeps the parsed arguments alive until ``os._exit``:
    ``cmd_run`` leaves its result there, so that the run's objects are never freed one
    by one (~0.15 s after a 7B run)."""
    from speedsim.api import RunResult
    from speedsim.cli import _command

    code, args = _command(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--set",
                           "workload.generation.new_tokens=2", "--json"])
    assert code == 0 and isinstance(args.result, RunResult)


def test_sampled_run_writes_the_acceptance_profile(tmp_path):
    """acceptance.csv: one row per speculative strategy and checked token; its means are the
    summary's realized and expected rates; tokens flushed by a rejection carried the draft."""
    out = tmp_path / "o"
    assert main(["run", "hw_configs/edge.yaml", "workloads/gen.yaml", "--out", str(out), *SHORT,
                 "--set", "workload.generation.sampling={temperature: 1.0, top_p: 0.9}",
                 "--timeline", "none"]) == 0
    s = json.loads((out / "summary.json").read_text())
    a = pd.read_csv(out / "acceptance.csv")
    assert list(a.columns) == ["strategy", "position", "expected", "realized"]
    assert set(a["strategy"]) == {"speed"} and list(a["position"]) == list(range(9, 8 + 11))
    spec = s["strategies"]["speed"]["speculation"]
    assert spec["acceptance_positions"] == len(a) == 10
    assert a["realized"].mean() == pytest.approx(spec["acceptance_rate"], abs=1e-15)
    assert a["expected"].mean() == pytest.approx(spec["expected_acceptance_rate"], abs=1e-15)
    assert 0 < a["expected"].min() and a["expected"].max() <= 1 and spec["acceptance_stderr"] > 0
    assert s["tokens_match"] is True and spec["flushes"] == 10 - a["realized"].sum()

"""Bad and extreme inputs a newcomer types: never a traceback.

Every case runs the command line in-process (``speedsim.cli.main``) and asserts
the contract of DESIGN §8/§9: exit status 0 or 2 (never 1, the status of a
bug), at most three lines of error, the error names the file or option and the
key path, and an error leaves no result file behind. Cases that simulate use a
tiny workload (or the shipped one cut to a few tokens), so the whole suite
runs in seconds.
"""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from speedsim.cli import main
from speedsim.config.hw import hardware_from_dict

EDGE, GEN = "hw_configs/edge.yaml", "workloads/gen.yaml"
TINY = """\
name: tiny
model:
  d_model: 32
  n_heads: 2
  d_ff: 64
  n_layers: 4
  vocab_size: 64
  sharing: {scheme: cycle, unique_layers: 2}
  weights: {source: random, seed: 0}
generation: {prompt_tokens: 4, new_tokens: 4}
strategies:
  sequential: {}
  speed: {stages: 2, acceptance: {source: bernoulli, rate: 0.5, seed: 1}}
"""


def cli(*argv: str) -> tuple[int, list[str], list[str]]:
    """(exit status, stdout lines, stderr lines) of ``speedsim ARGV``; 1 for an exception."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = main(list(argv))
        except SystemExit as exc:  # argparse
            rc = exc.code if isinstance(exc.code, int) else 1
        except Exception as exc:  # a traceback: exactly what this suite forbids
            rc, _ = 1, err.write(f"{type(exc).__name__}: {exc}\n")
    return rc, out.getvalue().splitlines(), err.getvalue().splitlines()


def assert_config_error(argv, *words: str, out: Path | None = None) -> str:
    rc, _, err = cli(*argv)
    assert rc == 2, err
    assert 1 <= len(err) <= 3, err
    text = "\n".join(err)
    for w in words:
        assert w in text, text
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), "an error left result files"
    return text


@pytest.fixture
def tiny(tmp_path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY)
    return path


def test_tiny_workload_runs(tiny, tmp_path):
    rc, out, err = cli("run", EDGE, str(tiny), "--out", str(tmp_path / "o"))
    assert (rc, err) == (0, [])
    assert (tmp_path / "o" / "summary.json").is_file()


# -- files -----------------------------------------------------------------------------------

def test_missing_hw_file(tiny):
    assert_config_error(["run", "nope.yaml", str(tiny)], "nope.yaml", "file not found")


def test_missing_workload_file():
    assert_config_error(["run", EDGE, "nope.yaml"], "nope.yaml", "file not found")


def test_directory_as_config(tiny, tmp_path):
    assert_config_error(["run", str(tmp_path), str(tiny)], str(tmp_path), "cannot read")


@pytest.mark.parametrize("text, words", [
    ("a: [1, 2\n", "malformed YAML at line"),
    ("- 1\n- 2\n", "top level must be a mapping"),
    ("", "top level must be a mapping"),
    ("a: 1\na: 2\n", "duplicate key 'a'"),
    ("? [1]\n: 2\n", "malformed YAML at line 1, column 3: a list as a key"),  # was a traceback
    ("array:\n\trows: 8\n", "found character '\\t' that cannot start any token"),
])
def test_malformed_hw_yaml(tmp_path, tiny, text, words):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_config_error(["run", str(bad), str(tiny)], "bad.yaml", words)


def test_binary_file(tmp_path, tiny):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage\x80")
    assert_config_error(["run", str(bad), str(tiny)], "bad.yaml", "UTF-8")


# -- keys ------------------------------------------------------------------------------------

def test_misspelt_required_key_in_yaml_names_what_was_typed(tmp_path, tiny):
    hw = tmp_path / "hw.yaml"
    hw.write_text(Path(EDGE).read_text().replace("bandwidth_gb_s", "bandwith_gb_s"))
    text = assert_config_error(["run", str(hw), str(tiny)])
    assert text == (f"speedsim: error: {hw}: dram.bandwith_gb_s: unknown key 'bandwith_gb_s' "
                    "(did you mean 'bandwidth_gb_s'?)")


def test_bad_pick_in_yaml_names_the_file_and_key(tmp_path, tiny):
    hw = tmp_path / "hw.yaml"
    hw.write_text(Path("hw_configs/h100.yaml").read_text().replace("pick: kernel", "pick: argmax"))
    text = assert_config_error(["run", str(hw), str(tiny)])
    assert text.startswith(f"speedsim: error: {hw}: pick: "), text
    assert "'fused' or 'kernel'" in text and "'argmax'" in text, text


def test_a_pick_cost_without_a_pick_item_is_refused(tiny):
    """``vector.cycles_per_element.pick`` changes nothing where the pick is fused (edge):
    refused, naming the key; with ``pick: kernel`` it is accepted."""
    text = assert_config_error(["run", EDGE, str(tiny), "--set",
                                "hw.vector.cycles_per_element.pick=2"])
    assert "vector.cycles_per_element.pick" in text and "pick: fused" in text, text
    data = yaml.safe_load(Path(EDGE).read_text())
    data["pick"] = "kernel"
    data["vector"].setdefault("cycles_per_element", {})["pick"] = 2.0
    assert hardware_from_dict(data).vector.cycles_per_element.pick == 2.0


@pytest.mark.parametrize("override, words", [
    ("hw.dram.bandwith_gb_s=3", ["dram.bandwith_gb_s", "did you mean 'bandwidth_gb_s'"]),
    ("hw.dramm.bandwidth_gb_s=3", ["dramm", "did you mean 'dram'"]),
    ("workload.model.weights.sed=3", ["model.weights.sed", "did you mean 'seed'"]),
    ("workload.strategies.speed.acceptance.rat=0.5", ["acceptance.rat", "did you mean 'rate'"]),
    ("workload.generaton.new_tokens=8", ["generaton", "did you mean 'generation'"]),
    ("dram.bandwidth_gb_s=3", ["--set", "must start with hw. or workload."]),
    ("novalue", ["--set", "key.path=value"]),
    ("hw.dram.bandwidth_gb_s.x=1", ["dram.bandwidth_gb_s is not a mapping"]),
    ("hw.array.rows=abc", ["array.rows", "valid integer", "'abc'"]),
    ("hw.array.rows=true", ["array.rows", "valid integer"]),
    ("workload.model.n_layers=1e12", ["model.n_layers", "valid integer"]),
    ("hw.precision=int9", ["precision", "'int8'"]),
    ("hw.attention_on=gpu", ["attention_on", "'array' or 'vector'"]),
    ("hw.buffers.activation.kind=cache", ["buffers.activation.kind", "only the weight buffer"]),
    ("hw.buffers.weight.kind=l2", ["buffers.weight.kind", "'scratchpad' or 'cache'"]),
    ("hw.sustained_clock_hz=9e9", ["sustained_clock_hz", "above clock_hz"]),
    ("hw.pick=kernal", ["pick", "'fused' or 'kernel'", "'kernal'"]),
    ("hw.pick=true", ["pick", "'fused' or 'kernel'"]),
    ("hw.vector.cycles_per_element.pik=1", ["vector.cycles_per_element.pik", "did you mean 'pick'"]),
    ("workload.model.weights.source=pakaged", ["model.weights", "pakaged"]),
])
def test_bad_override(tiny, override, words):
    assert_config_error(["run", EDGE, str(tiny), "--set", override], *words)


# -- impossible values -----------------------------------------------------------------------

@pytest.mark.parametrize("override, words", [
    ("hw.dram.bandwidth_gb_s=.inf", ["dram.bandwidth_gb_s", "finite"]),
    ("hw.dram.latency_ns=.nan", ["dram.latency_ns", "finite"]),
    ("hw.dram.bandwidth_gb_s=0", ["dram.bandwidth_gb_s", "greater than or equal to 0.01"]),
    ("hw.dram.efficiency=1.5", ["dram.efficiency", "less than or equal to 1"]),
    ("hw.array.rows=-4", ["array.rows", "greater than 0"]),
    ("hw.buffers.weight.size_kib=1", ["buffers.weight.size_kib", "cannot hold 2 32x32 int8"]),
    ("hw.buffers.accumulator.size_kib=0.5", ["buffers.accumulator.size_kib", "cannot hold 1"]),
    ("hw.vector.cycles_per_element.pick=0", ["vector.cycles_per_element.pick", "greater than 0"]),
    ("workload.generation.new_tokens=1", ["generation.new_tokens", "greater than or equal to 2"]),
    ("workload.generation.batch=0", ["generation.batch"]),
    ("workload.strategies.speed.stages=3", ["strategies.speed.stages", "must divide n_layers=4"]),
    ("workload.model.n_heads=3", ["model.n_heads", "must divide d_model=32"]),
    ("workload.strategies.speed.acceptance.rate=1.5", ["acceptance.rate"]),
    ("workload.model.weights={source: npz, path: missing.npz}", ["model.weights.path", "not found"]),
    ("workload.model.weights={source: packaged, name: nope}", ["model.weights.name", "nope"]),
    ("workload.strategies.speed.acceptance={source: file, path: x.csv}", ["acceptance.path"]),
    ("workload.strategies={sequential: null}", ["strategies", "at least one strategy"]),
])
def test_impossible_value(tiny, tmp_path, override, words):
    out = tmp_path / "out"
    assert_config_error(["run", EDGE, str(tiny), "--set", override, "--out", str(out)], *words, out=out)


@pytest.mark.parametrize("override, words", [
    ("workload.generation.sampling.temperature=-0.5",
     ["generation.sampling.temperature", "greater than or equal to 0"]),
    ("workload.generation.sampling.temperature=.inf", ["generation.sampling.temperature", "finite"]),
    ("workload.generation.sampling.temperature=.nan", ["generation.sampling.temperature", "finite"]),
    ("workload.generation.sampling={temperature: 0.7, top_p: 0}",
     ["generation.sampling.top_p", "greater than 0"]),
    ("workload.generation.sampling={temperature: 0.7, top_p: 1.5}",
     ["generation.sampling.top_p", "less than or equal to 1"]),
    ("workload.generation.sampling={temperature: 0.7, top_k: 0}",
     ["generation.sampling.top_k", "greater than 0"]),
    ("workload.generation.sampling={temperature: 0, top_p: 0.9}",
     ["generation.sampling.top_p", "changes nothing at temperature 0"]),
    ("workload.generation.sampling={top_k: 5, seed: 3}",
     ["generation.sampling.seed", "changes nothing at temperature 0"]),
    ("workload.generation.sampling={temperature: 0.7, top_k: 65}",
     ["generation.sampling.top_k", "exceeds vocab_size=64"]),
    ("workload.generation.sampling={temperature: 0.7, top_q: 0.9}",
     ["generation.sampling.top_q", "did you mean 'top_p'"]),
    ("workload.generation.sampling.temperature=hot", ["generation.sampling.temperature"]),
])
def test_bad_sampling(tiny, tmp_path, override, words):
    out = tmp_path / "out"
    assert_config_error(["run", EDGE, str(tiny), "--set", override, "--out", str(out)], *words, out=out)


def test_sampling_a_shape_only_model_needs_an_acceptance_source(tiny, tmp_path):
    out = tmp_path / "out"
    shape_only = ["--set", "workload.model.weights={source: shape_only}",
                  "--set", "workload.generation.sampling.temperature=0.7"]
    assert_config_error(["run", EDGE, str(tiny), *shape_only, "--set",
                         "workload.strategies.speed=null", "--out", str(out)],
                        "generation.sampling", "shape-only", out=out)
    assert_config_error(["run", EDGE, str(tiny), *shape_only, "--set",
                         "workload.strategies.speed.acceptance={source: model}",
                         "--out", str(out)], "generation.sampling",
                        "strategies.speed.acceptance {source: bernoulli", out=out)
    rc, _, err = cli("run", EDGE, str(tiny), *shape_only)  # bernoulli: the rate under sampling
    assert (rc, err) == (0, [])


LOOP = "workload.model.sharing={scheme: loop, unique_layers: 2, prelude_layers: 1, coda_layers: 1}"


@pytest.mark.parametrize("overrides, words", [
    # N = 4 - P - C = 2 core layers of U = 2: R = 1 (fine); with n_layers 5, 3 / 2 is no integer
    (["workload.model.n_layers=5"], ["model.sharing:", "recurrence count R",
                                     "n_layers - prelude_layers - coda_layers", "(5 - 1 - 1) / 2"]),
    (["workload.model.n_layers=8", "workload.model.sharing.coda_layers=2"],
     ["model.sharing:", "(8 - 1 - 2) / 2"]),
    (["workload.model.n_layers=8"], ["strategies.speed.stages", "R=3 core passes"]),
    (["workload.model.n_layers=8", "workload.strategies.speed.stages=null",
      "workload.strategies.speed.exit_depth=3"], ["strategies.speed.exit_depth", "exit_depth=3",
                                                  "stage count G=3"]),
    (["workload.model.n_layers=8", "workload.strategies.speed.stages=null",
      "workload.strategies.speed.second_depth=1"], ["strategies.speed.second_depth",
                                                    "between exit_depth=1"]),
    (["workload.model.n_layers=8", "workload.strategies.speed.stages=null",
      "workload.strategies.speed.second_acceptance={source: accepted_length, mean: 3}"],
     ["strategies.speed.second_acceptance", "needs strategies.speed.second_depth"]),
    (["workload.model.n_layers=8", "workload.strategies.speed.stages=null",
      "workload.strategies.speed.acceptance={source: accepted_length, mean: 0.5}"],
     ["strategies.speed.acceptance.mean", "greater than or equal to 1"]),
])
def test_loop_and_exit_depth_errors_name_their_keys(tiny, tmp_path, overrides, words):
    out = tmp_path / "out"
    sets = [a for o in [LOOP, *overrides] for a in ("--set", o)]
    assert_config_error(["run", EDGE, str(tiny), *sets, "--out", str(out)], *words, out=out)


def test_prelude_without_loop_names_the_key(tiny):
    assert_config_error(["run", EDGE, str(tiny), "--set", "workload.model.sharing.prelude_layers=1"],
                        "model.sharing.prelude_layers", "needs sharing.scheme loop")


def test_exit_depth_at_the_stage_count_names_the_key(tiny):
    assert_config_error(["run", EDGE, str(tiny), "--set", "workload.strategies.speed.exit_depth=2"],
                        "strategies.speed.exit_depth", "must be below the stage count G=2")


def test_second_proposal_under_sampling_names_the_key(tiny, tmp_path):
    out = tmp_path / "out"
    sets = [a for o in [LOOP, "workload.model.n_layers=8", "workload.strategies.speed.stages=null",
                        "workload.strategies.speed.second_depth=2",
                        "workload.generation.sampling.temperature=0.7"] for a in ("--set", o)]
    assert_config_error(["run", EDGE, str(tiny), *sets, "--out", str(out)],
                        "strategies.speed.second_depth", "greedy decoding only", out=out)
    rc, _, err = cli("run", EDGE, str(tiny), *sets[:-2])  # greedy: the same config runs
    assert (rc, err) == (0, [])


def test_activation_buffer_that_cannot_hold_one_fold(tmp_path):
    out = tmp_path / "out"
    assert_config_error(["run", EDGE, GEN, "--set", "hw.buffers.activation.size_kib=2",
                         "--set", "workload.generation.new_tokens=4", "--out", str(out)],
                        "buffers.activation.size_kib", "needs at least 4 KiB", out=out)


@pytest.mark.parametrize("override", ["workload.model.n_layers=1000000000000",
                                      "workload.generation.new_tokens=1000000000"])
def test_absurd_sizes_are_refused_before_anything_is_built(tiny, override):
    assert_config_error(["run", EDGE, str(tiny), "--set", override, "--set",
                         "workload.model.weights={source: shape_only}"],
                        "work items", "--max-work-items")


@pytest.mark.parametrize("override, words", [
    ("hw.clock_hz=1e30", ["hw.clock_hz", "less than or equal to 100000000000"]),
    ("hw.sustained_clock_hz=1e30", ["hw.sustained_clock_hz", "less than or equal"]),
    ("hw.dram.latency_ns=1e25", ["hw.dram.latency_ns", "less than or equal to 1000000"]),
    ("hw.array.op_overhead_ns=1e25", ["hw.array.op_overhead_ns", "less than or equal"]),
    ("hw.vector.op_overhead_ns=1e7", ["hw.vector.op_overhead_ns", "less than or equal"]),
    ("hw.vector.cycles_per_element.norm=1e20", ["cycles_per_element.norm", "less than or equal"]),
    ("hw.dram.bandwidth_gb_s=1e-12", ["hw.dram.bandwidth_gb_s", "greater than or equal to 0.01"]),
])
def test_absurd_timings_are_refused_by_name(override, words):
    """Each once overflowed int64 cycles in the replay (a traceback minutes in)."""
    assert_config_error(["run", EDGE, GEN, "--set", override], *words)


def test_the_slowest_accepted_timings_still_run(tiny):
    """Every timing bound at once, on the edge of what is accepted: a run, not an overflow."""
    sets = ["hw.clock_hz=1e11", "hw.dram.latency_ns=1e6", "hw.array.op_overhead_ns=1e6",
            "hw.vector.op_overhead_ns=1e6", "hw.dram.bandwidth_gb_s=0.01",
            "hw.vector.cycles_per_element.norm=1e6"]
    rc, _, err = cli("run", EDGE, str(tiny), *[a for s in sets for a in ("--set", s)])
    assert (rc, err) == (0, [])


def test_absurd_vocabulary_is_refused_for_memory(tiny):
    assert_config_error(["run", EDGE, str(tiny), "--set", "workload.model.vocab_size=10000000000"],
                        "GiB", "--max-memory-gib")


# -- dead ends: one round of changes -----------------------------------------------------------

def test_longer_prompt_on_the_default_workload_lists_every_change():
    text = assert_config_error(["run", EDGE, GEN, "--set", "workload.generation.prompt_tokens=256"],
                               "generation.prompt=null", "model.max_seq_len to 384",
                               "model.weights={source: random}")
    assert text.count("\n") == 0


def test_the_listed_changes_make_it_run():
    rc, _, err = cli("run", EDGE, GEN, "--set", "workload.generation.prompt_tokens=256",
                     "--set", "workload.generation.new_tokens=4",
                     "--set", "workload.generation.prompt=null",
                     "--set", "workload.model.max_seq_len=384",
                     "--set", "workload.model.weights.source=random")
    assert (rc, err) == (0, [])


def test_switching_weights_to_shape_only_says_what_else_to_change():
    assert_config_error(["run", EDGE, GEN, "--set", "workload.model.weights.source=shape_only"],
                        "strategies.speed.acceptance={source: bernoulli")


# -- options ---------------------------------------------------------------------------------

def test_attention_on_the_vector_unit_runs(tiny):
    rc, out, err = cli("run", EDGE, str(tiny), "--set", "hw.attention_on=vector")
    assert (rc, err) == (0, [])


def test_speed_alone_has_no_speedup_but_a_table(tiny):
    rc, out, err = cli("run", EDGE, str(tiny), "--strategies", "speed")
    assert (rc, err) == (0, [])
    assert any("speedup" in line and "—" in line for line in out)


@pytest.mark.parametrize("names, words", [("medusa", "unknown strategy"),
                                          ("sequential,", "--strategies")])
def test_bad_strategy_list(tiny, names, words):
    assert_config_error(["run", EDGE, str(tiny), "--strategies", names], words)


@pytest.mark.parametrize("workers", ["0", "-2", "two"])
def test_bad_worker_count(tiny, workers):
    assert_config_error(["run", EDGE, str(tiny), "--workers", workers], "--workers")


def test_out_naming_an_existing_file_fails_before_simulating(tiny, tmp_path):
    target = tmp_path / "taken"
    target.write_text("mine")
    assert_config_error(["run", EDGE, str(tiny), "--out", str(target)], "--out", "not a directory")
    assert target.read_text() == "mine"


def test_out_below_a_file(tiny, tmp_path):
    (tmp_path / "f").write_text("")
    assert_config_error(["run", EDGE, str(tiny), "--out", str(tmp_path / "f" / "o")], "--out")


def test_trace_accepts_the_workload_prefix_like_run(tiny, tmp_path):
    for key in ("workload.generation.new_tokens=3", "generation.new_tokens=3"):
        rc, out, err = cli("trace", str(tiny), "--set", key, "--out", str(tmp_path / "t.csv"))
        assert (rc, err) == (0, [])


def test_trace_with_a_misspelt_key(tiny):
    assert_config_error(["trace", str(tiny), "--set", "workload.generation.new_tokns=3"],
                        "did you mean 'new_tokens'")


def test_version(capsys):
    from speedsim import __version__
    rc, out, _ = cli("--version")
    assert (rc, out) == (0, [f"speedsim {__version__}"])


def test_sweep_with_a_missing_spec():
    assert_config_error(["sweep", "nope.yaml"], "nope.yaml", "file not found")


def test_plot_of_a_missing_run(tmp_path):
    assert_config_error(["plot", "latency", str(tmp_path / "none"), "--out", str(tmp_path / "f.png")],
                        "none")


# -- outputs others can read -----------------------------------------------------------------

@pytest.fixture
def run_dir(tiny, tmp_path) -> Path:
    out = tmp_path / "run"
    assert cli("run", EDGE, str(tiny), "--out", str(out))[0] == 0
    return out


def test_result_files_are_world_readable_and_respect_the_umask(tiny, tmp_path, run_dir):
    import os
    assert {f.name: f.stat().st_mode & 0o777 for f in run_dir.iterdir()} == \
        {f.name: 0o644 for f in run_dir.iterdir()}
    old = os.umask(0o077)
    try:
        assert cli("trace", str(tiny), "--out", str(tmp_path / "t.csv"))[0] == 0
    finally:
        os.umask(old)
    assert (tmp_path / "t.csv").stat().st_mode & 0o777 == 0o600


def test_summary_is_strict_json(run_dir):
    import json

    def refuse(name):
        raise AssertionError(f"non-standard JSON constant {name}")
    json.loads((run_dir / "summary.json").read_text(), parse_constant=refuse)
    json.loads((run_dir / "timeline.json").read_text(), parse_constant=refuse)


def test_json_writer_turns_non_finite_numbers_into_null():
    import numpy as np

    from speedsim.report.io import json_text
    assert json_text({"a": float("inf"), "b": [np.float64("nan"), 1.5], "c": np.int64(3)}) == \
        '{\n  "a": null,\n  "b": [\n    null,\n    1.5\n  ],\n  "c": 3\n}'


def test_a_recorded_run_runs_again_from_anywhere_with_the_same_results(run_dir, tmp_path,
                                                                       monkeypatch):
    import json
    run_dir = run_dir.resolve()
    monkeypatch.chdir(tmp_path)
    again = tmp_path / "again"
    rc, _, err = cli("run", str(run_dir / "resolved_config.yaml"), "--out", str(again))
    assert (rc, err) == (0, [])
    assert json.loads((again / "summary.json").read_text()) == \
        json.loads((run_dir / "summary.json").read_text())
    assert cli("run", str(run_dir), "--strategies", "speed")[0] == 0  # the directory works too


def test_a_recorded_run_takes_overrides_with_full_key_paths(run_dir):
    assert_config_error(["run", str(run_dir), "--set", "hw.dram.bandwith_gb_s=1"],
                        "--set: hw.dram.bandwith_gb_s: unknown key")  # the option, not the file


def test_one_yaml_that_is_not_a_recorded_run(tiny):
    assert_config_error(["run", str(tiny)], "give HW.yaml WORKLOAD.yaml")


@pytest.mark.parametrize("argv, words", [
    (["run", GEN, EDGE], "this is a workload file, not a hardware file"),
    (["run", EDGE, "sweeps/speed_space.yaml"], "this is a sweep file"),
    (["trace", EDGE], "this is a hardware file"),
])
def test_files_in_the_wrong_place(argv, words):
    assert_config_error(argv, words)


def test_syntax_errors_are_two_lines():
    assert_config_error(["trace", GEN, "--precision", "int4"], "invalid choice", "speedsim trace -h")
    assert_config_error(["run"], "the following arguments are required")


def test_plot_below_a_file_and_with_an_unknown_suffix(run_dir, tmp_path):
    assert_config_error(["plot", "latency", str(run_dir), "--out",
                         str(run_dir / "summary.json" / "x.png")], "--out", "not a directory")
    assert_config_error(["plot", "latency", str(run_dir), "--out", str(tmp_path / "x.jpg")],
                        "--out", ".png or .svg")


def test_sweep_out_checked_before_the_sweep(tmp_path):
    assert_config_error(["sweep", "sweeps/speed_space.yaml", "--out", str(tmp_path)], "--out",
                        "must end with .csv")
    (tmp_path / "d.csv").mkdir()
    assert_config_error(["sweep", "sweeps/speed_space.yaml", "--out", str(tmp_path / "d.csv")],
                        "is a directory")


# -- the few cases that need a real process --------------------------------------------------

def _speedsim(*argv: str, **kw):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "speedsim", *argv], capture_output=True,
                          text=True, timeout=120, **kw)


def test_python_dash_m_speedsim():
    from speedsim import __version__
    done = _speedsim("--version")
    assert (done.returncode, done.stdout.strip()) == (0, f"speedsim {__version__}")


def _big_sweep(tmp_path: Path) -> Path:
    """A 2,000-point grid: its --dry-run listing (200 kB) is far more than a pipe buffers."""
    root = Path(__file__).resolve().parents[1]
    spec = tmp_path / "big.yaml"
    spec.write_text(f"name: big\nhw: {root / EDGE}\nworkload: {root / GEN}\naxes:\n"
                    f"  hw.array.rows: {list(range(8, 58))}\n"
                    f"  hw.dram.bandwidth_gb_s: {[float(x) for x in range(1, 41)]}\n")
    return spec


@pytest.mark.parametrize("command", ["sweep", "trace"])
def test_a_reader_that_stops_early_ends_the_command_quietly(command, tmp_path):
    """``speedsim sweep --dry-run … | head -1`` and ``speedsim trace … | head -1``: no
    BrokenPipeError traceback, status 0."""
    import subprocess
    import sys
    argv = (["sweep", str(_big_sweep(tmp_path)), "--dry-run"] if command == "sweep"
            else ["trace", "workloads/llama7b_cycle_u8.yaml"])
    producer = subprocess.Popen([sys.executable, "-m", "speedsim", *argv],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    producer.stdout.readline()
    producer.stdout.close()  # the reader goes away after one line
    _, err = producer.communicate(timeout=120)
    assert (producer.returncode, err.decode()) == (0, "")


@pytest.mark.parametrize("address", ["bogus", "tcp://host", "tcp://:x"])
def test_a_scheduler_address_that_cannot_be_one(tmp_path, address):
    out = tmp_path / "r.csv"
    assert_config_error(["sweep", "sweeps/speed_space.yaml", "--out", str(out), "--scheduler",
                         address], "--scheduler", "tcp://HOST:PORT")
    assert not out.exists()


# -- what a newcomer tripped on (issue 31): each once a traceback ------------------------------

def test_pareto_of_a_run_directory_names_it(run_dir):
    assert_config_error(["plot", "pareto", str(run_dir), "--x", "speed.decode_time_s",
                         "--y", "speed.energy_per_token_j"], str(run_dir), "is a directory",
                        "sweep result file")


@pytest.mark.parametrize("where, words", [
    ("file", ["--cache-dir", "exists and is not a directory"]),
    ("/proc/nope/cache", ["--cache-dir", "cannot create /proc/nope/cache"]),
])
def test_a_cache_dir_that_cannot_be_one_is_refused_before_simulating(tiny, tmp_path, monkeypatch,
                                                                     where, words):
    import speedsim.cli.run

    def no_simulation(*a, **k):
        raise AssertionError("simulated before checking --cache-dir")
    monkeypatch.setattr(speedsim.cli.run, "simulate", no_simulation)
    (tmp_path / "file").write_text("x")
    path = str(tmp_path / "file") if where == "file" else where
    assert_config_error(["run", EDGE, str(tiny), "--cache-dir", path, "--out", str(tmp_path / "o")],
                        *words, out=tmp_path / "o")


def test_a_sweep_with_a_cache_dir_that_cannot_be_one_runs_no_point(tmp_path):
    (tmp_path / "file").write_text("x")
    assert_config_error(["sweep", "sweeps/speed_space.yaml", "--out", str(tmp_path / "r.csv"),
                         "--cache-dir", str(tmp_path / "file")], "--cache-dir")
    assert not (tmp_path / "r.csv").exists()


@pytest.fixture
def text_axis_results(tmp_path) -> Path:
    """A sweep result table with a numeric and a text-valued axis."""
    path = tmp_path / "s.csv"
    path.write_text("index,config_hash,status,error,hw.dram.bandwidth_gb_s,hw.array.weight_load,"
                    "speedup.speed,speed.decode_time_s\n"
                    "0,a,ok,,10,serial,1.5,2e-3\n1,b,ok,,10,overlapped,1.25,1e-3\n"
                    "2,c,ok,,20,serial,1.75,2.5e-3\n3,d,ok,,20,overlapped,0.5,1.5e-3\n")
    return path


@pytest.mark.parametrize("x, y", [("hw.dram.bandwidth_gb_s", "hw.array.weight_load"),
                                  ("hw.array.weight_load", "hw.dram.bandwidth_gb_s")])
def test_speedup_map_with_a_text_axis_on_either_side(text_axis_results, tmp_path, x, y):
    from matplotlib.figure import Figure

    out = tmp_path / "m.png"
    rc, lines, err = cli("plot", "speedup-map", str(text_axis_results), "--x", x, "--y", y,
                         "--out", str(out))
    assert (rc, err, lines) == (0, [], [f"wrote {out}"])
    import pandas as pd

    from speedsim.report.plots import plot_speedup_map
    fig = plot_speedup_map(pd.read_csv(text_axis_results), x=x, y=y)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    text_ticks = ax.get_yticklabels() if y == "hw.array.weight_load" else ax.get_xticklabels()
    assert [t.get_text() for t in text_ticks] == ["overlapped", "serial"]
    assert sorted(t.get_text() for t in ax.texts) == ["0.50×", "1.25×", "1.50×", "1.75×"]


def test_speedup_map_of_another_metric_says_so(text_axis_results):
    import pandas as pd

    from speedsim.report.plots import plot_speedup_map
    fig = plot_speedup_map(pd.read_csv(text_axis_results), x="hw.dram.bandwidth_gb_s",
                           y="hw.array.weight_load", value="speed.decode_time_s")
    ax, cbar = fig.axes
    assert ax.get_title() == "speed.decode_time_s" and cbar.get_ylabel() == "speed.decode_time_s"
    assert sorted(t.get_text() for t in ax.texts) == ["0.001", "0.0015", "0.002", "0.0025"]
    assert ax.get_images()[0].cmap.name == "viridis"  # not a diverging map centred on 1


def test_speedup_map_with_one_column_on_both_axes(text_axis_results):
    assert_config_error(["plot", "speedup-map", str(text_axis_results), "--x",
                         "hw.dram.bandwidth_gb_s", "--y", "hw.dram.bandwidth_gb_s"],
                        "--y", "same column")


@pytest.mark.parametrize("override, where", [
    ("hw.array.rows=-4", "--set: hw.array.rows: Input should be greater than 0"),
    ("hw.array.rowz=4", "--set: hw.array.rowz: unknown key 'rowz'"),
    ("workload.generation.new_tokens=abc", "--set: workload.generation.new_tokens: Input should"),
    ("workload.strategies.speed.acceptance={source: bernoulli, rate: 2}",
     "--set: workload.strategies.speed.acceptance.rate"),
])
def test_an_override_error_names_the_set_option_not_the_file(tiny, override, where):
    text = assert_config_error(["run", EDGE, str(tiny), "--set", override], where)
    assert EDGE not in text and str(tiny) not in text


def test_a_file_error_beside_an_override_still_names_the_file(tiny, tmp_path):
    hw = tmp_path / "hw.yaml"
    hw.write_text(Path(EDGE).read_text().replace("rows: ", "rows: -", 1))
    text = assert_config_error(["run", str(hw), str(tiny), "--set", "hw.array.cols=8"],
                               f"{hw}: array.rows")
    assert "--set" not in text


def test_an_override_of_a_recorded_run_names_the_set_option(run_dir):
    assert_config_error(["run", str(run_dir), "--set", "hw.array.rows=0"],
                        "--set: hw.array.rows: Input should be greater than 0")


@pytest.mark.parametrize("option, value", [("--max-memory-gib", "-1"), ("--max-memory-gib", "0"),
                                           ("--max-memory-gib", "nan"), ("--max-work-items", "0")])
def test_a_limit_that_refuses_everything_is_bad_input(tiny, option, value):
    assert_config_error(["run", EDGE, str(tiny), option, value], option)


def test_yaml_merge_keys_are_yaml(tiny, tmp_path):
    wl = tmp_path / "merged.yaml"
    wl.write_text(TINY.replace("generation: {prompt_tokens: 4, new_tokens: 4}",
                               "generation:\n  <<: {prompt_tokens: 4, new_tokens: 8}\n  new_tokens: 4"))
    rc, out, err = cli("run", EDGE, str(wl), "--json")
    assert (rc, err) == (0, [])
    import json
    assert json.loads("\n".join(out))["config"]["workload"]["generation"]["new_tokens"] == 4
    wl.write_text(TINY.replace("new_tokens: 4}", "new_tokens: 4, new_tokens: 5}"))
    assert_config_error(["run", EDGE, str(wl)], "duplicate key 'new_tokens'")


def test_nothing_checked_is_no_acceptance_rate(tiny):
    import json
    rc, out, err = cli("run", EDGE, str(tiny), "--json", "--set", "workload.generation.new_tokens=2")
    assert (rc, err) == (0, [])
    assert json.loads("\n".join(out))["strategies"]["speed"]["speculation"]["acceptance_rate"] is None
    rc, out, err = cli("run", EDGE, str(tiny), "--json", "--set", "workload.generation.new_tokens=3")
    assert json.loads("\n".join(out))["strategies"]["speed"]["speculation"]["acceptance_rate"] in (0, 1)


def test_out_into_an_earlier_run_leaves_none_of_its_files(tiny, tmp_path):
    out = tmp_path / "o"
    wl = tmp_path / "three.yaml"
    wl.write_text(TINY.replace("  speed:", "  shallow: {exit_layer: 2}\n  speed:"))
    assert cli("run", EDGE, str(wl), "--out", str(out))[0] == 0
    assert (out / "items_shallow.csv").is_file()
    (out / "notes.txt").write_text("mine")
    rc, _, err = cli("run", EDGE, str(tiny), "--out", str(out), "--timeline", "none")
    assert rc == 0
    assert err == [f"speedsim: {out} held an earlier run; removed its timeline.json, "
                   "items_shallow.csv, occupancy_shallow.csv"]
    assert sorted(p.name for p in out.iterdir()) == [
        "acceptance.csv", "items_sequential.csv", "items_speed.csv", "notes.txt", "occupancy_sequential.csv",
        "occupancy_speed.csv", "resolved_config.yaml", "summary.json", "tokens.csv"]


def test_pick_lanes_need_a_pick_item_and_fit_in_the_lanes(tiny):
    """``vector.pick_lanes`` changes nothing under ``pick: fused`` (edge): refused, naming
    the key; more than the unit's lanes is impossible: refused, naming both."""
    text = assert_config_error(["run", EDGE, str(tiny), "--set", "hw.vector.pick_lanes=8"])
    assert "vector.pick_lanes" in text and "pick: fused" in text, text
    text = assert_config_error(["run", "hw_configs/h100.yaml", str(tiny), "--set",
                                "hw.vector.pick_lanes=20000"])
    assert "vector.pick_lanes" in text and "20000 is more than lanes (16896)" in text, text


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_unreadable_weights_file_is_refused_before_any_replay(tiny, tmp_path, monkeypatch,
                                                                  workers):
    """With two workers the reference decode runs ahead on its own process, which loads
    the weights: its error is still reported before the first replay."""
    import speedsim.api as api

    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip archive")
    monkeypatch.setattr(api, "replay", lambda *a, **k: pytest.fail("replayed before the check"))
    out = tmp_path / "out"
    assert_config_error(["run", EDGE, str(tiny), "--workers", workers, "--out", str(out),
                         "--set", f"workload.model.weights={{source: npz, path: {bad}}}"],
                        "model.weights.path", "not a readable .npz file", out=out)

"""Sweep spec validation: every mistake is a ConfigError naming the sweep file and key path."""

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.sweep_fakes, also for workers

from speedsim.config.errors import ConfigError  # noqa: E402
from speedsim.sweep.spec import load_sweep, schema_key_problem  # noqa: E402
from tests.sweep_fakes import write_sweep  # noqa: E402

GOOD_AXES = {"hw.array.rows": [16, 32]}


def error_of(tmp_path, spec):
    path = write_sweep(tmp_path, spec)
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    return info.value, str(path)


@pytest.mark.parametrize("spec, key, words", [
    ({"axes": {"hw.array.rwos": [1, 2]}}, "axes.hw.array.rwos", "did you mean 'rows'"),
    ({"axes": {"workload.strategies.speed.acceptance.rat": [0.5]}},
     "axes.workload.strategies.speed.acceptance.rat", "did you mean 'rate'"),
    ({"axes": {"hw.array.rows.deep": [1]}}, "axes.hw.array.rows.deep", "hw.array.rows is a value"),
    ({"axes": {"array.rows": [1]}}, "axes.array.rows", "must start with hw., workload. or traffic."),
    ({"axes": GOOD_AXES, "fixed": {"workload.generation.new_tokns": 8}},
     "fixed.workload.generation.new_tokns", "did you mean 'new_tokens'"),
    ({"axes": GOOD_AXES, "fixed": {"hw.array.rows": 8}}, "fixed.hw.array.rows", "also an axis"),
    ({"axes": {"hw.array.rows": {"range": {"start": 8, "stop": 64, "step": 0}}}},
     "axes.hw.array.rows.range.step", "never goes"),
    ({"axes": {"hw.array.rows": {"range": {"start": 8, "stop": 64}}}},
     "axes.hw.array.rows.range.step", "required key is missing"),
    ({"axes": {"hw.array.rows": {"stride": 2}}}, "axes.hw.array.rows", "an axis is a list"),
    ({"axes": {"hw.array.rows": {"values": [16], "extra": 1}}}, "axes.hw.array.rows.extra", "unknown key"),
    ({"axes": {"hw.array.rows": {"low": 8, "high": 64}}}, "axes.hw.array.rows", "needs mode random or lhs"),
    ({"axes": {"hw.array.rows": [16, 16]}}, "axes.hw.array.rows", "repeats a value"),
    ({"mode": "zip", "axes": {"hw.array.rows": [16, 32], "hw.array.cols": [16]}},
     "axes.hw.array.cols", "zip needs equal lengths"),
    ({"mode": "lhs", "axes": GOOD_AXES}, "samples", "required for mode lhs"),
    ({"mode": "grid", "samples": 4, "axes": GOOD_AXES}, "samples", "only random and lhs"),
    ({"mode": "random", "samples": 4, "axes": {"hw.array.rows": {"low": 0, "high": 8, "log": True}}},
     "axes.hw.array.rows.low", "log sampling needs low > 0"),
    ({"mode": "sobol", "axes": GOOD_AXES}, "mode", "grid"),
    ({"strategies": ["sequential", "medusa"], "axes": GOOD_AXES}, "strategies[1]", "unknown strategy"),
    ({"metrics": ["speed.decode_time_s", "speed.decode_time_s"], "axes": GOOD_AXES}, "metrics", "twice"),
    ({"axis": GOOD_AXES}, "axis", "unknown key 'axis' (did you mean 'axes'?)"),
    ({"axes": {}}, "axes", "at least 1"),
])
def test_spec_errors_name_the_key_path(tmp_path, spec, key, words):
    err, file = error_of(tmp_path, spec)
    assert err.file == file
    assert err.key == key
    assert words in err.message


def test_missing_base_config_names_the_sweep_key(tmp_path):
    path = write_sweep(tmp_path, {"axes": GOOD_AXES})
    (tmp_path / "wl.yaml").unlink()
    with pytest.raises(ConfigError) as info:
        load_sweep(path)
    assert (info.value.file, info.value.key) == (str(path), "workload")


def test_axis_key_absent_from_base_file_is_allowed_when_the_schema_has_it(tmp_path):
    # BASE_HW sets no dram.channels and no dma section; both are schema keys
    sweep = load_sweep(write_sweep(tmp_path, {"axes": {"hw.dram.channels": [1, 2],
                                                       "hw.dma.engines": [1, 4]}}))
    assert list(sweep.spec.axes) == ["hw.dram.channels", "hw.dma.engines"]


@pytest.mark.parametrize("key", ["workload.model.weights.path",  # in one member of a tagged union
                                 "workload.strategies.speed.acceptance.seed",
                                 "hw.buffers.kv.size_kib"])  # under an Optional section
def test_schema_keys_through_unions_and_optionals(key):
    assert schema_key_problem(key) is None


def test_set_adds_fixed_overrides_and_is_checked(tmp_path):
    path = write_sweep(tmp_path, {"axes": GOOD_AXES})
    assert load_sweep(path, [("workload.generation.new_tokens", 8)]).spec.fixed == {
        "workload.generation.new_tokens": 8}
    with pytest.raises(ConfigError) as info:
        load_sweep(path, [("hw.clock", 1)])
    assert (info.value.file, info.value.key) == ("--set", "hw.clock")  # the option, not the file


def test_default_metrics_follow_the_strategies(tmp_path):
    sweep = load_sweep(write_sweep(tmp_path, {"strategies": ["sequential"], "axes": GOOD_AXES}))
    assert sweep.spec.kept_metrics() == [
        "sequential.decode_time_s", "sequential.time_per_token_s", "sequential.tokens_per_s",
        "sequential.energy_per_token_j", "tokens_match", "silicon.pes", "silicon.sram_kib",
        "silicon.cost_proxy"]


def test_the_metric_catalogue_is_exactly_what_a_real_row_of_every_strategy_has():
    """``metric_problem`` accepts every column a real point of all five strategies (SPEED
    with a second proposal, and a KV buffer) returns, and the per-strategy catalogue holds nothing such a row lacks but
    the buffers that hardware has not."""
    import yaml

    from speedsim.sweep.flatten import STRATEGY_METRICS, metric_problem
    from speedsim.sweep.point import simulate_point

    hw = yaml.safe_load(Path("hw_configs/edge.yaml").read_text())
    wl = yaml.safe_load(Path("workloads/strategies.yaml").read_text())
    wl["generation"]["new_tokens"] = 3
    wl["strategies"]["speed"]["second_depth"] = 2  # SPEED's second-proposal metrics too
    strategies = list(wl["strategies"])
    row = simulate_point(hw, wl, base_dir="workloads")
    assert [c for c in row if metric_problem(c, strategies)] == []
    produced = {c.partition(".")[2] for c in row if c.partition(".")[0] in strategies}
    unused_buffers = {m for m in STRATEGY_METRICS - produced if m.startswith("buffers.")}
    assert STRATEGY_METRICS - produced == unused_buffers
    assert {m.split(".")[1] for m in unused_buffers} == {"accumulator", "kv"}


def test_a_set_error_names_the_option_not_the_sweep_file(tmp_path):
    path = write_sweep(tmp_path, {"axes": GOOD_AXES})
    with pytest.raises(ConfigError) as info:
        load_sweep(path, [("workload.generation.new_tokns", 3)])
    assert str(info.value) == ("--set: workload.generation.new_tokns: 'new_tokns' is not a key of "
                               "workload.generation (did you mean 'new_tokens'?)")


TRAFFIC = {"name": "t", "arrivals": {"process": "poisson", "rate_rps": 100.0, "seed": 0},
           "requests": 3, "prompt_tokens": 4, "output_tokens": 4, "scheduler": {"max_batch": 2},
           "slo": {"ttft_s": 0.01, "tpot_s": 0.01}}


def serving_error_of(tmp_path, spec):
    (tmp_path / "traffic.yaml").write_text(yaml.safe_dump(TRAFFIC))
    return error_of(tmp_path, {"traffic": "traffic.yaml", "axes": {"traffic.requests": [2, 3]},
                               **spec})


@pytest.mark.parametrize("spec, words", [
    ({"metrics": ["speed.decode_time_s"]}, "'decode_time_s' is not a serving metric"),
    ({"metrics": ["speed.tpot_s.p98"]}, "did you mean speed.tpot_s.p9"),
    ({"metrics": ["speedup.speed"]}, "'speedup' is not one of this sweep's strategies"),
    ({"metrics": ["silicon.pes"]}, "'silicon' is not one of this sweep's strategies"),
    ({"metrics": ["speed.throughput_vs_sequential"], "strategies": ["speed"]}, "needs sequential"),
])
def test_a_serving_sweeps_metrics_are_checked_against_the_serving_columns(tmp_path, spec, words):
    err, file = serving_error_of(tmp_path, spec)
    assert (err.file, err.key) == (file, "metrics[0]")
    assert words in err.message


def test_a_serving_metric_in_a_sweep_without_traffic_says_what_it_needs(tmp_path):
    err, _ = error_of(tmp_path, {"metrics": ["speed.tpot_s.p99"], "axes": GOOD_AXES})
    assert err.key == "metrics[0]"
    assert "'tpot_s.p99' is a serving metric" in err.message and "traffic:" in err.message


def test_a_serving_sweeps_named_and_default_metrics_pass(tmp_path):
    (tmp_path / "traffic.yaml").write_text(yaml.safe_dump(TRAFFIC))
    metrics = ["sequential.tpot_s.p99", "speed.throughput_vs_sequential", "speed.memo.replays"]
    spec = {"traffic": "traffic.yaml", "axes": {"traffic.requests": [2, 3]}}
    assert load_sweep(write_sweep(tmp_path, {**spec, "metrics": metrics})).spec.kept_metrics() == metrics
    default = load_sweep(write_sweep(tmp_path, spec)).spec.kept_metrics()
    assert "speed.tpot_s.p99" in default and "speed.throughput_vs_sequential" in default


def test_the_serving_metric_catalogue_is_exactly_what_a_served_row_of_every_strategy_has():
    """A serving sweep's point (``traffic``) of all five strategies: every column passes
    ``metric_problem(serving=True)``, and ``SERVE_METRICS`` holds nothing the row lacks."""
    from speedsim.sweep.flatten import SERVE_METRICS, metric_problem
    from speedsim.sweep.point import simulate_point

    hw = yaml.safe_load(Path("hw_configs/edge.yaml").read_text())
    wl = yaml.safe_load(Path("workloads/strategies.yaml").read_text())
    strategies = list(wl["strategies"])
    row = simulate_point(hw, wl, base_dir="workloads", traffic=TRAFFIC)
    assert [c for c in row if metric_problem(c, strategies, serving=True)] == []
    for s in strategies:
        assert {c.partition(".")[2] for c in row if c.partition(".")[0] == s} == SERVE_METRICS, s
    assert metric_problem("speed.decode_time_s", strategies, serving=True)

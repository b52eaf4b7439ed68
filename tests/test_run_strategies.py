"""All five strategies through the public API on the trained model (workloads/strategies.yaml)."""

import io
import numpy as np
import pytest

from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload
from speedsim.model.decoder import generate
from speedsim.model.spec_exec import run_early_exit_spec, run_shallow
from speedsim.model.weights import load_params
from speedsim.strategies.spec_schedule import derive_spec_schedule

T = 24


@pytest.fixture(scope="module")
def result():
    wl = load_workload("workloads/strategies.yaml", [("generation.new_tokens", T)])
    return simulate(load_hardware("hw_configs/edge.yaml"), wl)


def test_every_strategy_runs_and_lossless_ones_commit_the_greedy_tokens(result):
    s = result.summary
    assert list(s["strategies"]) == ["sequential", "speed", "early_exit_spec", "draft_spec",
                                     "shallow"]
    assert s["tokens_match"] is True and s["positions_match"] is True
    for name in ("speed", "early_exit_spec", "draft_spec"):
        np.testing.assert_array_equal(result.runs[name].committed, result.record.committed)
        assert "speculation" in s["strategies"][name]
    assert "speculation" not in s["strategies"]["shallow"]


def test_early_exit_follows_the_numeric_run(result):
    wl = result.workload
    params = load_params(wl)
    spec = result.summary["strategies"]["early_exit_spec"]["speculation"]
    K, E = wl.strategies.early_exit_spec.draft_tokens, wl.exit_layers("early_exit_spec")
    assert E == wl.model.n_layers // wl.stages  # SPEED's exit: the record's early predictions
    run = run_early_exit_spec(params, wl.model, result.record.prompt, T, K, E)
    np.testing.assert_array_equal(run.tokens, result.record.committed)
    assert run.schedule == derive_spec_schedule(result.record.accepted, K)
    assert spec["verify_steps"] == len(run.schedule.steps)
    assert spec["accepted_drafts"] == run.schedule.accepted
    # the first rejected row of a step carried the exit head's (wrong) guess
    tok = result.tokens[result.tokens["strategy"] == "early_exit_spec"]
    for step, guesses in zip(run.schedule.steps, run.drafts):
        if step.accepted < step.drafted:
            rows = tok[tok["position"] == wl.generation.prompt_tokens + step.start + step.accepted + 1]
            flushed = rows[rows["status"] == "flushed"]
            assert guesses[0, step.accepted] in flushed["token_id"].tolist()


def test_shallow_reports_its_own_tokens_and_how_many_differ(result):
    wl = result.workload
    ref = generate(wl, params=load_params(wl))
    own = run_shallow(load_params(wl), wl.model, ref, wl.exit_layers("shallow"))
    q = result.summary["strategies"]["shallow"]["quality"]
    assert q["differing_tokens"] == own.differing > 0
    assert q["first_difference"] == own.first_difference
    np.testing.assert_array_equal(result.runs["shallow"].committed, own.tokens)


def test_the_table_of_five_strategies_fits_80_columns_and_says_what_the_bound_means(result):
    from rich.console import Console

    from speedsim.report.table import print_summary
    console = Console(width=80, record=True, file=io.StringIO())
    print_summary(result.summary, console)
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "…" not in text  # nothing cut
    header = " ".join(lines[2:4])
    for name in result.summary["strategies"]:
        assert all(word in header for word in name.split("_")), name
    assert "achieved" in text and "= bound / decode time" in " ".join(text.split())
    fraction = result.summary["roofline_fraction"]["speed"]
    assert next(line for line in lines if "achieved" in line).split()[3] == f"{fraction * 100:.1f}"

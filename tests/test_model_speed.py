"""SPEED executed numerically is lossless, and its schedule is ``derive_schedule``'s.

Random weights with a large init_std make early exits miss often, so these
cases exercise flushes, chained speculation and KV rollback heavily.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedsim.model.decoder import generate, prompt_ids
from speedsim.model.speed_exec import run_speed, run_speed_workload
from speedsim.strategies.speed_schedule import derive_schedule
from speedsim.model.weights import load_params

# (seed, N, scheme, U, G, batch, init_std, extra model keys)
CASES = [
    (0, 4, "cycle", 2, 2, 1, 0.5, {}),
    (1, 4, "cycle", 2, 2, 2, 0.5, {}),
    (2, 6, "cycle", 2, 3, 1, 0.5, {"n_kv_heads": 2}),
    (3, 6, "cycle", 3, 2, 1, 0.5, {}),
    (4, 6, "cycle_rev", 3, 2, 2, 0.5, {"mlp": "gated_gelu"}),
    (5, 8, "cycle", 2, 4, 1, 0.5, {}),
    (6, 8, "cycle", 4, 2, 1, 0.5, {"n_kv_heads": 1}),
    (7, 8, "sequence", 4, 4, 1, 0.5, {}),
    (8, 6, "none", 6, 3, 1, 0.5, {}),
    (9, 6, "none", 6, 2, 2, 0.5, {}),
    (10, 12, "cycle", 3, 4, 1, 0.5, {}),
    (11, 12, "cycle", 4, 3, 1, 0.5, {"mlp": "gated_gelu"}),
    (12, 12, "cycle_rev", 4, 3, 2, 0.5, {"n_kv_heads": 2}),
    (13, 4, "sequence", 2, 2, 1, 0.3, {}),
    (14, 6, "sequence", 3, 3, 1, 0.3, {}),
    (15, 8, "cycle_rev", 2, 4, 1, 0.3, {}),
    (16, 4, "cycle", 1, 4, 1, 0.5, {}),  # U = 1: all in-flight tokens in one fused call
    (17, 9, "cycle", 3, 3, 2, 1.0, {}),
    (18, 8, "none", 8, 4, 2, 0.3, {}),
    (19, 8, "cycle", 2, 2, 1, 0.05, {}),  # mostly accepted
    (20, 6, "cycle", 2, 3, 1, 0.05, {}),
    (21, 4, "cycle", 4, 2, 1, 0.5, {"n_kv_heads": 2, "mlp": "gated_gelu"}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"s{c[0]}-N{c[1]}-{c[2]}{c[3]}-G{c[4]}-B{c[5]}"
                                             for c in CASES])
def test_speed_commits_greedy_tokens_with_the_derived_schedule(tiny_workload, case):
    seed, N, scheme, U, G, B, std, extra = case
    sharing = {"scheme": scheme} if scheme == "none" else {"scheme": scheme, "unique_layers": U}
    w = tiny_workload(model__n_layers=N, model__sharing=sharing,
                      model__weights={"source": "random", "seed": seed, "init_std": std},
                      generation__batch=B, generation__seed=seed, generation__new_tokens=24,
                      strategies__speed={"stages": G},
                      **{f"model__{k}": v for k, v in extra.items()})
    params = load_params(w)
    seq = generate(w, params=params)
    run = run_speed_workload(w, params)

    np.testing.assert_array_equal(run.tokens, seq.tokens)
    derived = derive_schedule(seq.accepted, G)
    assert run.schedule == derived
    assert run.launched == len(derived.execs)
    misses = int((~seq.accepted[1:-1]).sum())
    assert len(run.flush_events) == derived.flushes == misses
    assert all(len(row) <= G for row in run.in_flight)
    if std >= 0.3:
        assert misses >= 1


def test_flush_log_uses_absolute_positions(tiny_workload):
    w = tiny_workload(model__n_layers=6, model__sharing={"scheme": "cycle", "unique_layers": 2},
                      strategies__speed={"stages": 3})
    run = run_speed_workload(w)
    P = w.generation.prompt_tokens
    derived = derive_schedule(generate(w).accepted, 3)
    assert run.flush_events == [(f.step, P + f.index) for f in derived.flush_events]
    assert run.flush_events, "init_std 0.5 should miss"
    assert run.in_flight[0] == [(P, 0)]


def test_one_stage_is_plain_sequential_decoding(tiny_workload):
    w = tiny_workload()
    params = load_params(w)
    prompts = prompt_ids(w.generation, w.model.vocab_size)
    run = run_speed(params, w.model, prompts, 12, stages=1)
    np.testing.assert_array_equal(run.tokens, generate(w, params=params).tokens)
    assert run.schedule.flushes == 0 and run.schedule.n_steps == 11


def test_single_token_needs_no_decode(tiny_workload):
    w = tiny_workload()
    run = run_speed(load_params(w), w.model, prompt_ids(w.generation, 64), 1, stages=2)
    assert run.tokens.shape == (1, 1) and run.schedule.n_steps == 0 and run.launched == 0


# ---------------------------------------------------------------- derive_schedule

def test_hand_written_schedule():
    # G = 3, tokens 0..5 -> decode executions 0..4; token 2 and token 3 mispredicted
    s = derive_schedule([True, True, False, False, True, True], 3)
    assert [(e.exec_id, e.index, e.launch_step, e.status, e.steps, e.speculative)
            for e in s.execs] == [
        (0, 0, 0, "committed", (0, 1, 2), False),
        (1, 1, 1, "committed", (1, 2, 3), True),
        (2, 2, 2, "flushed", (2, 3), True),
        (3, 3, 3, "flushed", (3,), True),
        (4, 2, 4, "committed", (4, 5, 6), False),
        (5, 3, 5, "flushed", (5, 6), True),
        (6, 4, 6, "flushed", (6,), True),
        (7, 3, 7, "committed", (7, 8, 9), False),
        (8, 4, 8, "committed", (8, 9, 10), True),
    ]
    assert [(f.step, f.index, f.flushed) for f in s.flush_events] == [(3, 2, (2, 3)),
                                                                      (6, 3, (5, 6))]
    assert s.steps[3] == ((3, 0), (2, 1), (1, 2))
    assert s.n_steps == 11 and s.committed == (0, 1, 2, 3, 4)


acceptance = st.lists(st.booleans(), min_size=1, max_size=60)
stages = st.integers(min_value=1, max_value=6)


@settings(max_examples=300, deadline=None)
@given(acceptance, stages)
def test_schedule_properties(acc, G):
    s = derive_schedule(acc, G)
    n = len(acc) - 1
    assert s.committed == tuple(range(n))
    committed = {e.index: e for e in s.execs if e.status == "committed"}
    # ids follow launch order, at most one launch per step
    assert [e.exec_id for e in s.execs] == list(range(len(s.execs)))
    assert all(a.launch_step < b.launch_step for a, b in zip(s.execs, s.execs[1:]))
    # committed executions run all G stages in consecutive steps; flushed ones fewer
    for e in s.execs:
        assert e.steps == tuple(range(e.launch_step, e.launch_step + len(e.steps)))
        assert (len(e.steps) == G) == (e.status == "committed")
    # every flushed execution is younger than a mismatch found when its elder committed
    by_id = {e.exec_id: e for e in s.execs}
    flushed_ids = set()
    for f in s.flush_events:
        assert G > 1 and not acc[f.index] and 1 <= f.index < n
        assert committed[f.index - 1].last_step == f.step
        for i in f.flushed:
            e = by_id[i]
            assert e.status == "flushed" and e.index >= f.index and e.last_step == f.step
            assert e.launch_step > committed[f.index - 1].launch_step
        flushed_ids |= set(f.flushed)
        assert committed[f.index].launch_step == f.step + 1 and not committed[f.index].speculative
    assert flushed_ids == {e.exec_id for e in s.execs if e.status == "flushed"}
    # flushes are exactly the consulted misses
    assert s.flushes == (0 if G == 1 else sum(not a for a in acc[1:n]))
    # the step table: at most one execution per stage, consistent with the executions
    for step, row in enumerate(s.steps):
        assert [g for _, g in row] == sorted({g for _, g in row}) and len(row) <= G
        for i, g in row:
            assert by_id[i].steps[g] == step
    assert sum(len(r) for r in s.steps) == sum(len(e.steps) for e in s.execs)
    assert s.n_steps == (max(e.last_step for e in s.execs) + 1 if n else 0)


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=1, max_value=80), stages)
def test_all_accepted_and_none_accepted(n, G):
    full = derive_schedule([True] * (n + 1), G)
    assert full.flushes == 0 and full.n_steps == n + G - 1 and full.launched == n
    none = derive_schedule([False] * (n + 1), G)
    assert none.n_steps == n * G
    assert [e.launch_step for e in none.execs if e.status == "committed"] == \
        [k * G for k in range(n)]


def test_first_and_last_entries_are_not_consulted():
    for G in (2, 3, 4):
        a = derive_schedule([False, True, True, False], G)
        b = derive_schedule([True, True, True, True], G)
        assert a == b


def test_bad_arguments():
    with pytest.raises(ValueError):
        derive_schedule([], 2)
    with pytest.raises(ValueError):
        derive_schedule([True], 0)


def test_long_schedule_is_cheap():
    rng = np.random.default_rng(0)
    s = derive_schedule(rng.random(20_001) < 0.7, 4)
    assert s.committed == tuple(range(20_000))


def test_carried_tokens(tiny_workload):
    """Committed executions carry the greedy token; the first flushed one of each flush
    carries the (wrong) early prediction it was launched with."""
    w = tiny_workload(model__n_layers=6, model__sharing={"scheme": "cycle", "unique_layers": 2},
                      strategies__speed={"stages": 3})
    params = load_params(w)
    rec, run = generate(w, params=params), run_speed_workload(w, params)
    for e in run.schedule.execs:
        if e.status == "committed":
            np.testing.assert_array_equal(run.carried[e.exec_id], rec.tokens[:, e.index])
    for f in run.schedule.flush_events:
        first = f.flushed[0]
        np.testing.assert_array_equal(run.carried[first], rec.early[:, f.index])
        assert (run.carried[first] != rec.tokens[:, f.index]).any()


def test_numpy_speed_is_what_the_simulator_replayed(tiny_workload):
    """The oracle ``simulate`` once ran on every call: the NumPy pipeline commits the
    greedy tokens, follows the schedule the simulator replayed, and carried exactly the
    tokens the run's token table reports (where it reports one)."""
    from speedsim.api import simulate
    from speedsim.config import load_hardware

    w = tiny_workload(model__n_layers=6, model__sharing={"scheme": "cycle", "unique_layers": 2},
                      strategies__speed={"stages": 3})
    result = simulate(load_hardware("hw_configs/tiny.yaml"), w)
    run = run_speed_workload(w)
    plan = result.runs["speed"].plan
    assert (run.schedule.launched, run.schedule.flushes) == (plan.launched, plan.flushes)
    assert run.schedule.flushes > 0, "the case must exercise a flush"
    np.testing.assert_array_equal(run.tokens, result.runs["speed"].committed)
    table = result.runs["speed"].carried
    known = table[:, 0] >= 0
    np.testing.assert_array_equal(table[known], run.carried[known])
    flushed_first = [f.flushed[0] for f in run.schedule.flush_events]
    assert known[flushed_first].all()

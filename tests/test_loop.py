"""Looped models (sharing scheme ``loop``) and SPEED generalized to them.

A loop is P prelude layers, a core of U weight sets applied R times, and C coda
layers. SPEED's stages are the R core passes (the prelude runs in the first, the
coda in the last); the early prediction comes after d1 passes (``exit_depth``).
"""

import json

import numpy as np
import pytest

from make_golden import ROOT, SHIPPED, measured
from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload
from speedsim.model.decoder import generate
from speedsim.model.sharing import layer_to_set
from speedsim.model.spec_exec import teacher_forced_guesses
from speedsim.model.speed_exec import run_speed_workload
from speedsim.model.stages import StageLayout
from speedsim.model.weights import load_params
from speedsim.config.workload import AcceptedLengthAcceptance, Sampling
from speedsim.model.decoder import prompt_ids
from speedsim.model.speed_exec import run_speed
from speedsim.strategies.acceptance import SOURCES, acceptance, accepted_length_vector
from speedsim.strategies.speed_schedule import derive_schedule

PINNED = json.loads(SHIPPED.read_text())


def loop(U, P=0, C=0):
    return {"scheme": "loop", "unique_layers": U, "prelude_layers": P, "coda_layers": C}


# ---------------------------------------------------------------- the sharing map and the stages

def test_loop_map_has_its_own_prelude_and_coda_sets():
    assert layer_to_set("loop", 6, 2, 1, 1) == (0, 1, 2, 1, 2, 3)
    assert layer_to_set("loop", 8, 2, 2, 0) == (0, 1, 2, 3, 2, 3, 2, 3)
    assert layer_to_set("loop", 7, 1, 1, 2) == (0, 1, 1, 1, 1, 2, 3)


@pytest.mark.parametrize("N,U", [(4, 2), (6, 3), (12, 3), (8, 1), (5, 5)])
def test_loop_without_prelude_and_coda_is_cycle(N, U):
    assert layer_to_set("loop", N, U) == layer_to_set("cycle", N, U)


def test_loop_map_rejects_a_fractional_recurrence():
    with pytest.raises(ValueError, match="multiple of unique_layers=2"):
        layer_to_set("loop", 7, 2, 1, 1)


def test_stage_layout_of_a_loop():
    """P = 2, U = 4, C = 2, R = 3: the prelude on slots 0-1 of stage 0, the core on slots
    2-5 of every stage, the coda on slots 6-7 of the last; exits after d passes."""
    lay = StageLayout(n_layers=16, stages=3, prelude=2, coda=2, exit_depth=1, second_depth=2)
    assert lay.per_stage == 4 and lay.slots == 8
    assert lay.stage_layers(0) == ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5))
    assert lay.stage_layers(1) == ((2, 6), (3, 7), (4, 8), (5, 9))
    assert lay.stage_layers(2) == ((2, 10), (3, 11), (4, 12), (5, 13), (6, 14), (7, 15))
    assert lay.early_exit_layer == 5 and lay.second_exit_layer == 9


def test_workload_stages_are_the_recurrences(tiny_workload):
    w = tiny_workload(model__n_layers=10, model__sharing=loop(2, 1, 1),
                      strategies__speed={"exit_depth": 2})
    assert w.model.recurrences == 4 and w.stages == 4 and w.model.weight_sets == 4
    assert w.speed_exit_layers == 1 + 2 * 2  # the prelude and two core passes
    assert StageLayout.of(w).early_exit_layer == 4


# ---------------------------------------------------------------- numeric SPEED on a loop

# (seed, P, U, C, R, d1, batch, extra model keys)
CASES = [
    (0, 1, 2, 1, 3, 1, 1, {}),
    (1, 1, 2, 1, 4, 2, 1, {}),
    (2, 2, 1, 1, 4, 3, 2, {"n_kv_heads": 2}),
    (3, 0, 2, 0, 3, 2, 1, {"mlp": "gated_gelu"}),
    (4, 1, 1, 0, 5, 2, 1, {}),
    (5, 0, 2, 2, 3, 1, 2, {"mlp": "gated_gelu", "n_kv_heads": 1}),
]


@pytest.mark.parametrize("case", CASES, ids=[f"s{c[0]}-P{c[1]}U{c[2]}C{c[3]}-R{c[4]}-d{c[5]}"
                                             for c in CASES])
def test_loop_speed_commits_greedy_tokens_with_the_derived_schedule(tiny_workload, case):
    seed, P, U, C, R, d1, B, extra = case
    w = tiny_workload(model__n_layers=P + U * R + C, model__sharing=loop(U, P, C),
                      model__weights={"source": "random", "seed": seed, "init_std": 0.5},
                      generation__batch=B, generation__seed=seed, generation__new_tokens=20,
                      strategies__speed={"exit_depth": d1},
                      **{f"model__{k}": v for k, v in extra.items()})
    params = load_params(w)
    seq = generate(w, params=params)
    assert seq.exit_layer == P + d1 * U - 1
    run = run_speed_workload(w, params)

    np.testing.assert_array_equal(run.tokens, seq.tokens)
    derived = derive_schedule(seq.accepted, R, d1)
    assert run.schedule == derived
    assert len(run.flush_events) == int((~seq.accepted[1:-1]).sum()) >= 1
    assert all(len(row) <= -(-R // d1) for row in run.in_flight)


# (seed, P, U, C, R, d1, d2, batch)
SECOND = [(1, 1, 2, 1, 4, 1, 2, 1), (2, 1, 2, 1, 5, 1, 3, 1), (3, 2, 1, 1, 6, 2, 4, 2),
          (4, 0, 2, 0, 4, 1, 3, 1)]


@pytest.mark.parametrize("case", SECOND, ids=[f"s{c[0]}-R{c[4]}-d{c[5]}-d{c[6]}-B{c[7]}"
                                              for c in SECOND])
def test_loop_speed_with_second_proposal_commits_greedy_tokens(tiny_workload, case):
    """The NumPy pipeline with a second proposal at d2 commits the greedy tokens, and its
    committed executions run exactly when the derived schedule says (from the model's own
    outcomes: the guess after d2 passes, teacher-forced, against the first and the final
    one); second proposals of executions flushed later are outside the schedule."""
    seed, P, U, C, R, d1, d2, B = case
    w = tiny_workload(model__n_layers=P + U * R + C, model__sharing=loop(U, P, C),
                      model__weights={"source": "random", "seed": seed, "init_std": 0.5},
                      generation__batch=B, generation__seed=seed, generation__new_tokens=24,
                      strategies__speed={"exit_depth": d1, "second_depth": d2})
    params = load_params(w)
    seq = generate(w, params=params)
    run = run_speed_workload(w, params)
    np.testing.assert_array_equal(run.tokens, seq.tokens)

    second = teacher_forced_guesses(params, w.model, seq, P + d2 * U - 1)
    relaunch = (second != seq.early).any(axis=0)
    right = (second == seq.tokens).all(axis=0)
    derived = derive_schedule(seq.accepted, R, d1, d2, (relaunch, right))
    committed = lambda s: [(e.index, e.launch_step, e.steps, e.speculative)  # noqa: E731
                           for e in s.execs if e.status == "committed"]
    assert committed(run.schedule) == committed(derived)
    assert run.schedule.n_steps == derived.n_steps
    assert (relaunch & right)[1:-1].any()


# ---------------------------------------------------------------- the schedule at exit depth d1

def test_hand_written_schedule_at_exit_depth_two():
    """G = 4, d1 = 2: a successor enters two steps after its predecessor; token 3's early
    guess misses, found when execution 2 commits at step 2 + 3 = 5."""
    s = derive_schedule([True, True, True, False, True, True], 4, exit_depth=2)
    assert [(e.exec_id, e.index, e.launch_step, e.status, e.steps, e.speculative)
            for e in s.execs] == [
        (0, 0, 0, "committed", (0, 1, 2, 3), False),
        (1, 1, 2, "committed", (2, 3, 4, 5), True),
        (2, 2, 4, "committed", (4, 5, 6, 7), True),
        (3, 3, 6, "flushed", (6, 7), True),
        (4, 3, 8, "committed", (8, 9, 10, 11), False),
        (5, 4, 10, "committed", (10, 11, 12, 13), True),
    ]
    assert [(f.step, f.index, f.flushed) for f in s.flush_events] == [(7, 3, (3,))]
    assert s.n_steps == 14


@pytest.mark.parametrize("G,d1", [(4, 1), (4, 2), (4, 3), (6, 4), (32, 8)])
def test_exit_depth_step_counts(G, d1):
    """All accepted: d1·(n - 1) + G steps; none: each miss costs G - d1 steps more and
    flushes floor((G - 1) / d1) executions (fewer near the end)."""
    T = 40
    n = T - 1
    assert derive_schedule(np.ones(T, bool), G, d1).n_steps == d1 * (n - 1) + G
    none = derive_schedule(np.zeros(T, bool), G, d1)
    assert none.n_steps == G * n
    assert [len(f.flushed) for f in none.flush_events][:3] == [(G - 1) // d1] * 3


def test_second_proposal_restarts_the_successor_early():
    """G = 6, d1 = 1, d2 = 3. Token 2: the first guess misses, the second (after stage 2 of
    execution 1, launched at step 1) differs and is right: executions launched on the first
    (at steps 2 and 3) are flushed at the end of step 3, and 2 restarts at step 4, two
    steps before its predecessor's commit would have revealed the miss. Token 4: the
    second differs but is wrong, so 4 restarts on it and is flushed again when 3 commits."""
    acc = np.array([True, True, False, True, False, True, True])
    relaunch = np.array([False, False, True, False, True, False, False])
    right = np.array([False, False, True, False, False, False, False])
    s = derive_schedule(acc, 6, 1, 3, (relaunch, right))
    got = [(e.index, e.launch_step, e.status, e.steps[-1]) for e in s.execs]
    assert got[:5] == [(0, 0, "committed", 5), (1, 1, "committed", 6), (2, 2, "flushed", 3),
                       (3, 3, "flushed", 3), (2, 4, "committed", 9)]
    # token 3 launched at 5 on 2's first guess (right); token 4 at 6, flushed by the second
    # proposal at the end of 5 + 3 - 1 = 7, restarted at 8, flushed again when 3 commits (10)
    assert got[5:] == [(3, 5, "committed", 10), (4, 6, "flushed", 7), (5, 7, "flushed", 7),
                       (4, 8, "flushed", 10), (5, 9, "flushed", 10),
                       (4, 11, "committed", 16), (5, 12, "committed", 17)]
    assert [(f.step, f.index) for f in s.flush_events] == [(3, 2), (7, 4), (10, 4)]
    assert s.n_steps == 18


def test_second_proposal_that_is_never_different_changes_nothing():
    acc = np.random.default_rng(3).random(30) < 0.6
    none = np.zeros(30, bool)
    assert derive_schedule(acc, 8, 2, 5, (none, none)) == derive_schedule(acc, 8, 2)


# ---------------------------------------------------------------- loop with P = C = 0 is cycle

CYCLE_WORKLOADS = ["gen", "strategies", "batch4", "long_context", "low_acceptance"]


@pytest.mark.parametrize("name", CYCLE_WORKLOADS)
def test_loop_without_prelude_and_coda_gives_the_pinned_cycle_results(name):
    """Every shipped cycle workload with G = N / U, rewritten as a loop with P = C = 0 (G
    is then R, stages not set): the pinned cycles and energy of every strategy, exactly."""
    wl = load_workload(ROOT / f"workloads/{name}.yaml")
    U = wl.model.sharing.unique_layers
    assert wl.model.sharing.scheme == "cycle" and wl.stages == wl.model.n_layers // U
    got = measured("hw_configs/edge.yaml", f"workloads/{name}.yaml",
                   [("model.sharing", loop(U)), ("strategies.speed.stages", None)])
    assert got == {n: tuple(v) for n, v in PINNED[f"hw_configs/edge.yaml|workloads/{name}.yaml"]
                   .items()}


# ---------------------------------------------------------------- mean accepted length

def test_accepted_length_vector_by_hand():
    assert accepted_length_vector(3, 10).tolist() == \
        [True, True, True, False, True, True, False, True, True, False]
    assert not accepted_length_vector(1, 6)[1:].any()


@pytest.mark.parametrize("gamma", [1.0, 2.0, 2.5, 3.0, 8.0, 14.0, 15.3])
def test_accepted_length_has_mean_gamma(gamma):
    """n proposals hold floor(n / γ) rejections, so the mean run — tokens committed per
    rejection, the rejected proposal's corrected token included — is γ."""
    acc = accepted_length_vector(gamma, 2001)[1:]
    for n in (1, 7, 100, 2000):
        assert int((~acc[:n]).sum()) == int(n // gamma)
    if gamma == int(gamma):
        runs = np.diff(np.flatnonzero(~acc), prepend=-1)
        assert (runs == gamma).all()


def test_accepted_length_is_a_registered_source_with_nothing_expected():
    """One entrance: the registry gives the vector; a fixed pattern has no per-draft
    probability, so nothing is expected (as for ``file``)."""
    cfg = AcceptedLengthAcceptance(source="accepted_length", mean=3)
    got = acceptance(cfg, 10, None, "strategies.speed.acceptance")
    assert "accepted_length" in SOURCES
    assert got.accepted.tolist() == accepted_length_vector(3, 10).tolist()
    assert got.expected is None and got.guesses is None


def test_accepted_length_summary_realizes_its_rate_and_expects_nothing(tiny_workload):
    """γ = 2 over 10 tokens: tokens 1 .. 8 alternate kept, rejected: a rate of exactly 1/2,
    and no expected rate (nor its s.e.)."""
    w = _loop_workload(tiny_workload, acceptance={"source": "accepted_length", "mean": 2})
    res = simulate(load_hardware(ROOT / "hw_configs/tiny.yaml"), w, ["speed"])
    spec = res.summary["strategies"]["speed"]["speculation"]
    assert spec["acceptance_positions"] == 8 and spec["acceptance_rate"] == 0.5
    assert spec["expected_acceptance_rate"] is None and spec["acceptance_stderr"] is None


def test_numeric_speed_refuses_a_second_proposal_under_sampling(tiny_workload):
    """A restart on a second draft has no speculative-sampling rule here: refused (config
    validation says so first, ``tests/test_bad_inputs.py``); greedy, the same layout runs."""
    w = _loop_workload(tiny_workload, second_depth=2)
    params, lay = load_params(w), StageLayout.of(w)
    prompts = prompt_ids(w.generation, w.model.vocab_size)
    with pytest.raises(ValueError, match="greedy decoding only"):
        run_speed(params, w.model, prompts, 6, lay, Sampling(temperature=0.7))
    greedy = run_speed(params, w.model, prompts, 6, lay, Sampling(temperature=0.0))
    np.testing.assert_array_equal(greedy.tokens, generate(w, params=params).tokens[:, :6])


# ---------------------------------------------------------------- plans and runs on a loop

def _loop_workload(tiny_workload, seed=0, new_tokens=10, **speed):
    return tiny_workload(model__n_layers=8, model__sharing=loop(2, 1, 1),
                         model__weights={"source": "random", "seed": seed, "init_std": 0.5},
                         generation__new_tokens=new_tokens,
                         strategies={"sequential": {}, "speed": speed,
                                     "early_exit_spec": {"draft_tokens": 3},
                                     "shallow": {}})


def test_loop_plan_fuses_only_core_passes(tiny_workload):
    """R = 3, all accepted: prelude (set 0) and coda (set 3) items serve one token, core
    items (sets 1, 2) up to R tokens, each with its weights once."""
    w = _loop_workload(tiny_workload)
    res = simulate(load_hardware(ROOT / "hw_configs/tiny.yaml"), w, ["speed"])
    items = res.runs["speed"].plan.items
    dense = [it for it in items if it.phase == "decode" and it.op in ("qkv", "mlp_down")]
    by_set = {}
    for it in dense:
        by_set.setdefault(it.weight_key[1], set()).add(len(it.tokens))
    assert by_set[0] == {1} and by_set[3] == {1}
    assert max(by_set[1]) == max(by_set[2]) == 3


@pytest.mark.parametrize("speed", [{}, {"exit_depth": 2}, {"second_depth": 2},
                                   {"second_depth": 2, "second_acceptance": {
                                       "source": "accepted_length", "mean": 2}}])
def test_every_strategy_on_a_loop_commits_the_greedy_tokens(tiny_workload, speed):
    w = _loop_workload(tiny_workload, **speed)
    res = simulate(load_hardware(ROOT / "hw_configs/tiny.yaml"), w)
    assert res.summary["tokens_match"] is True
    seq = generate(w)
    for name in ("speed", "early_exit_spec"):
        np.testing.assert_array_equal(res.runs[name].committed, seq.tokens)
    assert res.summary["strategies"]["speed"]["speculation"]["flushed"] >= 1


def test_second_proposal_from_the_model_follows_the_exit_guesses(tiny_workload):
    """The second proposal's outcomes are the model's own: the guess after d2 passes
    against the first and the final one."""
    w = _loop_workload(tiny_workload, seed=1, new_tokens=24, second_depth=2)
    params = load_params(w)
    rec = generate(w, params=params)
    second = teacher_forced_guesses(params, w.model, rec, 1 + 2 * 2 - 1)
    res = simulate(load_hardware(ROOT / "hw_configs/tiny.yaml"), w, ["speed"])
    relaunch = (second != rec.early).any(axis=0)
    right = (second == rec.tokens).all(axis=0)
    assert (relaunch & right)[1:-1].any() and (relaunch & ~right)[1:-1].any()
    np.testing.assert_array_equal(res.runs["speed"].committed, rec.tokens)
    expected = derive_schedule(rec.accepted, 3, 1, 2, (relaunch, right))
    assert res.runs["speed"].plan.launched == expected.launched
    assert res.runs["speed"].plan.flushes == expected.flushes
    spec = res.summary["strategies"]["speed"]["speculation"]
    assert spec["second_restarts"] == int(relaunch[1:-1].sum())
    assert spec["second_rescued"] == int((relaunch & right)[1:-1].sum()) >= 1

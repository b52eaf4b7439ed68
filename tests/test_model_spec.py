"""Draft-and-verify decoding in NumPy is lossless, and its schedule is the derived one.

Random weights with a large init_std make drafts miss often (partial
acceptance, KV rollback, the draft model's catch-up); small init_std makes
them mostly right (long accepted runs, the end-of-generation clamp).
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speedsim.config.workload import ModelShape
from speedsim.model.decoder import generate, greedy_decode, prompt_ids
from speedsim.contracts.schedule import VerifyStep, draft_count
from speedsim.model.spec_exec import (draft_acceptance, run_draft_spec, run_early_exit_spec,
                                      run_shallow, truncated)
from speedsim.strategies.spec_schedule import derive_spec_schedule
from speedsim.model.weights import load_params, random_params

# (seed, N, scheme, U, E, K, batch, init_std, extra model keys)
CASES = [
    (0, 4, "cycle", 2, 2, 3, 1, 0.5, {}),
    (1, 4, "cycle", 2, 1, 2, 2, 0.5, {}),
    (2, 6, "cycle", 2, 3, 4, 1, 0.5, {"n_kv_heads": 2}),
    (3, 6, "cycle", 3, 2, 1, 1, 0.5, {}),
    (4, 6, "cycle_rev", 3, 4, 3, 2, 0.5, {"mlp": "gated_gelu"}),
    (5, 8, "cycle", 2, 2, 5, 1, 0.5, {}),
    (6, 8, "cycle", 4, 6, 2, 1, 0.5, {"n_kv_heads": 1}),
    (7, 8, "sequence", 4, 4, 4, 1, 0.5, {}),
    (8, 6, "none", 6, 3, 3, 1, 0.5, {}),
    (9, 6, "none", 6, 5, 2, 2, 0.5, {}),
    (10, 12, "cycle", 3, 4, 6, 1, 0.5, {}),
    (11, 12, "cycle", 4, 3, 3, 1, 0.5, {"mlp": "gated_gelu"}),
    (12, 12, "cycle_rev", 4, 9, 2, 2, 0.5, {"n_kv_heads": 2}),
    (13, 4, "sequence", 2, 2, 4, 1, 0.3, {}),
    (14, 6, "sequence", 3, 1, 3, 1, 0.3, {}),
    (15, 8, "cycle_rev", 2, 2, 8, 1, 0.3, {}),
    (16, 4, "cycle", 1, 1, 3, 1, 0.5, {}),
    (17, 9, "cycle", 3, 3, 4, 2, 1.0, {}),
    (18, 8, "none", 8, 4, 3, 2, 0.3, {}),
    (19, 8, "cycle", 2, 2, 4, 1, 0.05, {}),  # mostly accepted
    (20, 6, "cycle", 2, 3, 7, 1, 0.05, {}),
    (21, 4, "cycle", 4, 3, 2, 1, 0.5, {"n_kv_heads": 2, "mlp": "gated_gelu"}),
]
IDS = [f"s{c[0]}-N{c[1]}-{c[2]}{c[3]}-E{c[4]}-K{c[5]}-B{c[6]}" for c in CASES]


def _workload(tiny_workload, case):
    seed, N, scheme, U, E, K, B, std, extra = case
    sharing = {"scheme": scheme} if scheme == "none" else {"scheme": scheme, "unique_layers": U}
    return tiny_workload(model__n_layers=N, model__sharing=sharing,
                         model__weights={"source": "random", "seed": seed, "init_std": std},
                         generation__batch=B, generation__seed=seed, generation__new_tokens=24,
                         strategies__speed=None, **{f"model__{k}": v for k, v in extra.items()})


def _prompts(w):
    return prompt_ids(w.generation, w.model.vocab_size)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_early_exit_spec_commits_greedy_tokens_with_the_derived_schedule(tiny_workload, case):
    E, K = case[4], case[5]
    w = _workload(tiny_workload, case)
    params = load_params(w)
    seq = generate(w, exit_layer=E - 1, params=params)
    run = run_early_exit_spec(params, w.model, _prompts(w), 24, K, E)

    np.testing.assert_array_equal(run.tokens, seq.tokens)
    assert run.schedule == derive_spec_schedule(seq.accepted, K)
    for step, guesses in zip(run.schedule.steps, run.drafts):
        assert guesses.shape == (w.generation.batch, step.drafted)
        # accepted guesses are the greedy tokens; the first rejected one is not
        c, a = step.start, step.accepted
        np.testing.assert_array_equal(guesses[:, :a], seq.tokens[:, c + 1:c + 1 + a])
        if a < step.drafted:
            assert (guesses[:, a] != seq.tokens[:, c + 1 + a]).any()
    if case[7] >= 0.3:
        assert any(s.accepted < s.drafted for s in run.schedule.steps)


def _draft_shape(w, seed):
    """A smaller draft: 2 layers, no sharing, half the heads' width kept, own seed."""
    m = w.model.model_dump()
    m.update(n_layers=2, sharing={"scheme": "none", "unique_layers": None}, d_ff=48,
             weights={"source": "random", "seed": 100 + seed, "init_std": 0.5})
    return ModelShape.model_validate(m)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_draft_spec_commits_greedy_tokens_with_the_derived_schedule(tiny_workload, case):
    seed, K = case[0], case[5]
    w = _workload(tiny_workload, case)
    params = load_params(w)
    dshape = _draft_shape(w, seed)
    dparams = random_params(dshape, 100 + seed, 0.5, params.max_seq_len)
    seq = generate(w, exit_layer=None, params=params)
    run = run_draft_spec(params, w.model, dparams, dshape, _prompts(w), 24, K)

    np.testing.assert_array_equal(run.tokens, seq.tokens)
    accepted = draft_acceptance(dparams, dshape, seq)
    assert run.schedule == derive_spec_schedule(accepted, K, catch_up=True)


def test_a_draft_equal_to_the_target_is_always_accepted_and_catches_up(tiny_workload):
    w = tiny_workload(strategies__speed=None)
    params = load_params(w)
    run = run_draft_spec(params, w.model, params, w.model, _prompts(w), 12, 3)
    seq = generate(w, params=params)
    np.testing.assert_array_equal(run.tokens, seq.tokens)
    # T = 12: 11 tokens to commit, 4 per full step; the last step drafts only T - 2 - c
    assert [(s.start, s.drafted, s.accepted, s.catch_up) for s in run.schedule.steps] == [
        (0, 3, 3, False), (4, 3, 3, True), (8, 2, 2, True)]
    assert run.schedule.mean_accepted_per_step == 8 / 3


def test_early_exit_on_the_trained_model(trained_workload):
    w = trained_workload
    params = load_params(w)
    seq = generate(w, exit_layer=1, params=params)
    for K in (1, 3, 6):
        run = run_early_exit_spec(params, w.model, _prompts(w), w.generation.new_tokens, K, 2)
        np.testing.assert_array_equal(run.tokens, seq.tokens)
        assert run.schedule == derive_spec_schedule(seq.accepted, K)
        assert 0 < run.schedule.accepted < run.schedule.drafted  # a trained, imperfect exit


def test_draft_model_on_the_trained_target(trained_workload):
    """The target's own first two layers (a trained 2-layer model) as the draft."""
    w = trained_workload
    params = load_params(w)
    dshape = truncated(w.model, 2)
    seq = generate(w, exit_layer=1, params=params)
    run = run_draft_spec(params, w.model, params, dshape, _prompts(w), w.generation.new_tokens, 4)
    np.testing.assert_array_equal(run.tokens, seq.tokens)
    accepted = draft_acceptance(params, dshape, seq)
    # a draft that is the first E layers + head guesses what the early exit guesses
    np.testing.assert_array_equal(accepted[1:], seq.accepted[1:])
    assert run.schedule == derive_spec_schedule(accepted, 4, catch_up=True)


@pytest.fixture
def trained_workload(tiny_workload):
    return tiny_workload(
        model={"d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": 8, "vocab_size": 256,
               "max_seq_len": 256, "sharing": {"scheme": "cycle", "unique_layers": 2},
               "weights": {"source": "packaged", "name": "speed_cycle_n8u2"}},
        generation={"prompt": "Return a new sorted list from the items in iterable.",
                    "prompt_tokens": 52, "new_tokens": 48},
        strategies={"sequential": {}})


# ---------------------------------------------------------------- shallow baseline

def test_shallow_is_greedy_decoding_of_the_first_layers(tiny_workload):
    w = tiny_workload(model__n_layers=6, strategies__speed=None)
    params = load_params(w)
    seq = generate(w, params=params)
    run = run_shallow(params, w.model, seq, 2)
    alone = greedy_decode(params, truncated(w.model, 2), seq.prompt, 12)
    np.testing.assert_array_equal(run.tokens, alone.tokens)
    assert run.differing == int((alone.tokens != seq.tokens).sum()) > 0
    assert run.first_difference == int(np.flatnonzero(alone.tokens[0] != seq.tokens[0])[0])
    # the first token is the early prediction of the prefill
    assert run.tokens[0, 0] == generate(w, exit_layer=1, params=params).early[0, 0]


def test_shallow_with_every_layer_is_the_target(tiny_workload):
    w = tiny_workload(strategies__speed=None)
    params = load_params(w)
    seq = generate(w, params=params)
    run = run_shallow(params, w.model, seq, 4)
    assert run.differing == 0 and run.first_difference is None


# ---------------------------------------------------------------- derive_spec_schedule

def test_hand_written_spec_schedule():
    # T = 10 -> tokens 1..9 to commit; K = 3
    acc = [False, True, False, True, True, True, True, True, False, True]
    s = derive_spec_schedule(acc, 3, catch_up=True)
    assert s.steps == (
        VerifyStep(0, 3, 1, False),  # guesses 1, 2, 3: 1 right, 2 wrong -> commits 1, 2
        VerifyStep(2, 3, 3, False),  # guesses 3, 4, 5 right -> commits 3..6
        VerifyStep(6, 2, 1, True),  # k = min(3, 10-2-6) = 2: 7 right, 8 wrong -> 7, 8
        VerifyStep(8, 0, 0, False),  # the last token: no guesses, a plain pass
    )
    assert s.drafted == 8 and s.accepted == 5
    assert derive_spec_schedule(acc, 3).steps[2].catch_up is False


acceptance = st.lists(st.booleans(), min_size=1, max_size=60)
draft_tokens = st.integers(min_value=1, max_value=8)


@settings(max_examples=300, deadline=None)
@given(acceptance, draft_tokens, st.booleans())
def test_spec_schedule_properties(acc, K, catch_up):
    s = derive_spec_schedule(acc, K, catch_up)
    T = len(acc)
    # steps tile the generated tokens 1..T-1 exactly, each committing a + 1 of them
    assert [x.start for x in s.steps] == list(np.cumsum([0] + [x.committed for x in s.steps]))[:-1]
    assert sum(x.committed for x in s.steps) == T - 1
    for x in s.steps:
        assert x.drafted == draft_count(K, x.start, T) and 0 <= x.accepted <= x.drafted
        assert all(acc[x.start + 1:x.start + 1 + x.accepted])
        if x.accepted < x.drafted:
            assert not acc[x.start + 1 + x.accepted]
    # only full acceptance followed by more guesses leaves the draft behind
    behind = [False][:len(s.steps)] + [p.accepted == p.drafted > 0 and x.drafted > 0
                        for p, x in zip(s.steps, s.steps[1:])]
    assert [x.catch_up for x in s.steps] == [b and catch_up for b in behind]


@settings(max_examples=50, deadline=None)
@given(st.integers(min_value=2, max_value=80), draft_tokens)
def test_all_accepted_and_none_accepted(T, K):
    full = derive_spec_schedule([True] * T, K)
    assert len(full.steps) == -(-(T - 1) // (K + 1))  # ceil((T-1) / (K+1)) verify passes
    none = derive_spec_schedule([False] * T, K)
    assert len(none.steps) == T - 1 and none.accepted == 0


def test_bad_draft_tokens():
    with pytest.raises(ValueError):
        derive_spec_schedule([True, True], 0)


def test_the_shipped_draft_model_on_the_shipped_target():
    """speedsim/data/draft_n2_d256.npz drafting for speed_cycle_n12u3 (workloads/strategies.yaml)."""
    from speedsim.config.workload import load_workload
    from speedsim.model.weights import load_shape_params

    w = load_workload("workloads/strategies.yaml", [("generation.new_tokens", 40)])
    params = load_params(w)
    dshape = w.strategies.draft_spec.draft_model
    dparams = load_shape_params(dshape, 104, "strategies.draft_spec.draft_model.weights")
    seq = generate(w, exit_layer=None, params=params)
    run = run_draft_spec(params, w.model, dparams, dshape, _prompts(w), 40, 4)
    np.testing.assert_array_equal(run.tokens, seq.tokens)
    accepted = draft_acceptance(dparams, dshape, seq)
    assert run.schedule == derive_spec_schedule(accepted, 4, catch_up=True)
    assert 0.5 < accepted[1:-1].mean() < 1.0  # a trained draft of another, smaller model
    assert any(s.catch_up for s in run.schedule.steps)

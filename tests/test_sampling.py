"""Sampled decoding: the distributions, the coupling, and speculative sampling proved lossless.

Exactness. The NumPy executors (SPEED, early-exit and draft-model speculation)
take every random choice from a ``Draws``; ``_enumerate`` runs an executor once
per path of choices (each token draw branches over the tokens of nonzero
probability, each keep test over kept / rejected) and adds up each path's
probability: the exact distribution of the committed tokens, with no sampling
noise. It must equal the target's own distribution of token sequences under
plain sequential sampling (every token drawn from p; ``run_speed`` with G = 1,
nothing speculative) to float64 rounding: total variation < SAME = 1e-12
(measured ~2e-16). That sequential law is in turn checked against one computed
from uncached ``forward_full`` passes (Π_i p(y_i | prefix)); the tiny model's
weights are float64 but the KV cache holds K and V in float32, so those two
differ by float32 rounding of K and V (~1e-8 measured): TOL = 1e-7. Replacing
the rule by "keep the draft if it is the target's argmax" is off by more than
0.5 (``test_the_argmax_rule_is_not_lossless``).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict

import numpy as np
import pytest

from speedsim.config.workload import Sampling
from speedsim.model import sampling as sm
from speedsim.model.decoder import forward_full
from speedsim.model.spec_exec import run_draft_spec, run_early_exit_spec
from speedsim.model.speed_exec import run_speed
from speedsim.model.stages import StageLayout
from speedsim.model.weights import random_params

TOL = 1e-7
SAME = 1e-12


# ---------------------------------------------------------------- distributions

def test_distribution_temperature_top_k_top_p_by_hand():
    logits = np.log(np.array([0.1, 0.4, 0.2, 0.3]))
    assert sm.distribution(logits, Sampling(temperature=1.0)) == pytest.approx([.1, .4, .2, .3])
    # top_k 2 keeps 0.4 and 0.3; top_p 0.65 keeps 0.4 and 0.3 (0.4 < 0.65 <= 0.7)
    assert sm.distribution(logits, Sampling(temperature=1.0, top_k=2)) == \
        pytest.approx([0, 4 / 7, 0, 3 / 7])
    assert sm.distribution(logits, Sampling(temperature=1.0, top_p=0.65)) == \
        pytest.approx([0, 4 / 7, 0, 3 / 7])
    assert sm.distribution(logits, Sampling(temperature=1.0, top_p=0.7)) == \
        pytest.approx([0, 4 / 7, 0, 3 / 7])  # the set reaching exactly top_p
    assert sm.distribution(logits, Sampling(temperature=1.0, top_p=0.71)) == \
        pytest.approx([0, 4 / 9, 2 / 9, 3 / 9])
    # temperature 0.5 squares the probabilities before normalizing
    sq = np.array([.01, .16, .04, .09])
    assert sm.distribution(logits, Sampling(temperature=0.5)) == pytest.approx(sq / sq.sum())


def test_greedy_is_the_one_hot_argmax_ties_to_the_first():
    logits = np.array([[0.0, 2.0, 2.0, 1.0], [5.0, 0.0, 0.0, 0.0]])
    for s in (None, Sampling(temperature=0.0), Sampling.model_construct(temperature=0.0, top_p=0.5)):
        assert sm.distribution(logits, s).tolist() == [[0, 1, 0, 0], [1, 0, 0, 0]]


def test_inverse_cdf_picks_the_first_id_whose_mass_exceeds_u():
    probs = np.array([[0.0, 0.25, 0.0, 0.75]] * 4)
    assert sm.inverse_cdf(probs, np.array([0.0, 0.2499, 0.25, 0.9999])).tolist() == [1, 1, 3, 3]


# ---------------------------------------------------------------- the coupling's law

def _coupled_law(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Exact joint P(x, y) of ``coupled_draft`` with y ~ p: it is piecewise constant in its
    two uniforms, so evaluating it at the midpoints between its breakpoints, weighted by
    the interval lengths, integrates it exactly."""
    V = p.size
    law = np.zeros((V, V))
    r = np.cumsum(sm.residual(q, p))
    for y in np.flatnonzero(p):
        us = np.unique(np.clip([0.0, min(p[y], q[y]) / p[y], 1.0], 0, 1))
        vs = np.unique(np.clip(np.concatenate([[0.0, 1.0], r]), 0, 1))
        for (u0, u1), (v0, v1) in itertools.product(zip(us, us[1:]), zip(vs, vs[1:])):
            uv = np.array([[(u0 + u1) / 2, (v0 + v1) / 2]])
            x = sm.coupled_draft(np.array([y]), p[None], q[None], uv)[0]
            law[x, y] += p[y] * (u1 - u0) * (v1 - v0)
    return law


def _rule_law(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Joint P(draft x, committed y) of speculative sampling: x ~ q, kept w.p.
    min(1, p(x)/q(x)), else y from normalize(max(0, p - q))."""
    keep = np.where(q > 0, np.minimum(1.0, p / np.where(q > 0, q, 1.0)), 0.0)
    return np.diag(q * keep) + np.outer(q * (1 - keep), sm.residual(p, q))


@pytest.mark.parametrize("seed", range(6))
def test_the_coupling_has_the_joint_law_of_speculative_sampling(seed):
    rng = np.random.default_rng(seed)
    p, q = rng.dirichlet(np.ones(5) * 0.7), rng.dirichlet(np.ones(5) * 0.7)
    if seed % 2:  # truncated supports: q has mass where p has none, and the other way
        p[0], q[1] = 0.0, 0.0
        p, q = p / p.sum(), q / q.sum()
    law = _coupled_law(p, q)
    assert np.abs(law - _rule_law(p, q)).max() < 1e-12
    assert law.sum(0) == pytest.approx(p, abs=1e-12)  # committed y ~ p
    assert law.sum(1) == pytest.approx(q, abs=1e-12)  # draft x ~ q
    assert np.trace(law) == pytest.approx(sm.expected_acceptance(p, q), abs=1e-12)


# ---------------------------------------------------------------- enumeration of executors

class _PathDraws:
    """Draws that follow ``path`` (one option index per choice, then the first option),
    recording the options of each choice and the path's probability."""

    def __init__(self, path: list[int]):
        self.path, self.taken, self.widths, self.prob = path, [], [], 1.0

    def _choose(self, options: list) -> object:
        i = len(self.taken)
        c = self.path[i] if i < len(self.path) else 0
        self.taken.append(c)
        self.widths.append(len(options))
        value, pr = options[c]
        self.prob *= pr
        return value

    def token(self, probs: np.ndarray) -> np.ndarray:
        assert probs.shape[0] == 1, "enumeration runs one sequence"
        return np.array([self._choose([(v, probs[0, v]) for v in np.flatnonzero(probs[0])])])

    def accept(self, prob: np.ndarray) -> np.ndarray:
        options = [(o, w) for o, w in ((True, prob[0]), (False, 1.0 - prob[0])) if w > 0]
        return np.array([self._choose(options)])


def _enumerate(run) -> dict[tuple[int, ...], float]:
    """Exact distribution of ``run(draws)`` (a tuple) over every path of draws."""
    dist: dict[tuple[int, ...], float] = defaultdict(float)
    path: list[int] = []
    while True:
        d = _PathDraws(path)
        dist[run(d)] += d.prob
        i = len(d.taken) - 1
        while i >= 0 and d.taken[i] + 1 >= d.widths[i]:
            i -= 1
        if i < 0:
            return dist
        path = d.taken[:i] + [d.taken[i] + 1]


def _f64(params):
    """The same weights in float64 (the decoder computes in its inputs' precision)."""
    cast = {f.name: getattr(params, f.name) for f in dataclasses.fields(params)}
    sets = tuple(dataclasses.replace(s, **{f.name: getattr(s, f.name).astype(np.float64)
                                           for f in dataclasses.fields(s)}) for s in cast.pop("sets"))
    return dataclasses.replace(params, sets=sets, **{k: v.astype(np.float64) for k, v in cast.items()})


V, T, PROMPT = 3, 4, np.array([[0, 2]])


@pytest.fixture(scope="module")
def target():
    from speedsim.config.workload import ModelShape

    shape = ModelShape.model_validate({"d_model": 8, "n_heads": 2, "d_ff": 16, "n_layers": 4,
                                       "vocab_size": V, "sharing": {"scheme": "cycle",
                                                                    "unique_layers": 2}})
    return shape, _f64(random_params(shape, seed=4, init_std=0.3, max_seq_len=8))


@pytest.fixture(scope="module")
def draft():
    from speedsim.config.workload import ModelShape

    shape = ModelShape.model_validate({"d_model": 8, "n_heads": 2, "d_ff": 16, "n_layers": 1,
                                       "vocab_size": V})
    return shape, _f64(random_params(shape, seed=11, init_std=0.3, max_seq_len=8))


SAMPLINGS = [Sampling(temperature=1.0), Sampling(temperature=0.7, top_p=0.8)]


def _target_law(target, sampling) -> dict[tuple[int, ...], float]:
    """P(y_0 .. y_{T-1}) = Π_i p(y_i | prompt, y_<i), from one uncached pass per sequence."""
    shape, params = target
    law = {}
    for ys in itertools.product(range(V), repeat=T):
        seq = np.concatenate([PROMPT, [ys[:-1]]], 1)
        final, _ = forward_full(params, shape, seq)
        p = sm.distribution(final[0, PROMPT.shape[1] - 1:], sampling)  # [T, V]
        pr = float(np.prod(p[np.arange(T), ys]))
        if pr > 0:
            law[ys] = pr
    return law


def _sequential_law(target, sampling) -> dict[tuple[int, ...], float]:
    """Sequential sampling's law: G = 1 drafts nothing, every token is drawn from p."""
    shape, params = target
    return _enumerate(lambda d: tuple(int(t) for t in
                                      run_speed(params, shape, PROMPT, T, 1, sampling, d).tokens[0]))


def _runs(target, draft, sampling):
    shape, params = target
    dshape, dparams = draft
    return {
        "speed G=2": lambda d: run_speed(params, shape, PROMPT, T, 2, sampling, d),
        "speed G=4": lambda d: run_speed(params, shape, PROMPT, T, 4, sampling, d),
        "speed G=4 d1=2": lambda d: run_speed(params, shape, PROMPT, T,
                                              StageLayout(4, 4, exit_depth=2), sampling, d),
        "early_exit_spec K=2 E=1": lambda d: run_early_exit_spec(
            params, shape, PROMPT, T, 2, 1, sampling, d),
        "draft_spec K=2": lambda d: run_draft_spec(params, shape, dparams, dshape, PROMPT, T, 2,
                                                   sampling, d),
    }


def _tv(a: dict, b: dict) -> float:
    return 0.5 * sum(abs(a.get(k, 0.0) - b.get(k, 0.0)) for k in set(a) | set(b))


@pytest.mark.parametrize("s", range(len(SAMPLINGS)))
@pytest.mark.parametrize("name", ["speed G=2", "speed G=4", "speed G=4 d1=2",
                                  "early_exit_spec K=2 E=1",
                                  "draft_spec K=2"])
def test_committed_tokens_are_distributed_as_the_target_exactly(target, draft, name, s):
    run = _runs(target, draft, SAMPLINGS[s])[name]
    law = _enumerate(lambda d: tuple(int(t) for t in run(d).tokens[0]))
    assert sum(law.values()) == pytest.approx(1.0, abs=SAME)
    assert _tv(law, _sequential_law(target, SAMPLINGS[s])) < SAME


@pytest.mark.parametrize("s", range(len(SAMPLINGS)))
def test_sequential_sampling_law_is_the_targets(target, s):
    """The reference law itself: ancestral sampling through the cached decoder against
    Π_i p(y_i | prefix) from uncached passes (float32 K/V rounding apart)."""
    assert _tv(_sequential_law(target, SAMPLINGS[s]), _target_law(target, SAMPLINGS[s])) < TOL


def _argmax_rule(draws, x, p, q):
    """The wrong rule: keep the draft iff it is the target's argmax, else commit the argmax."""
    kept = x == p.argmax(-1)
    return kept, np.where(kept, x, p.argmax(-1))


@pytest.mark.parametrize("name", ["speed G=2", "early_exit_spec K=2 E=1", "draft_spec K=2"])
def test_the_argmax_rule_is_not_lossless(target, draft, name, monkeypatch):
    """The exactness test can fail: with "accept if argmax matches" the committed tokens
    are far from the target's distribution."""
    monkeypatch.setattr(sm, "speculative_verify", _argmax_rule)
    run = _runs(target, draft, SAMPLINGS[0])[name]
    law = _enumerate(lambda d: tuple(int(t) for t in run(d).tokens[0]))
    assert _tv(law, _sequential_law(target, SAMPLINGS[0])) > 0.5


def test_enumeration_of_the_greedy_runs_is_one_path(target, draft):
    """Greedy (one-hot distributions) takes no random choice: one path of probability 1."""
    for name, run in _runs(target, draft, None).items():
        law = _enumerate(lambda d: tuple(int(t) for t in run(d).tokens[0]))
        assert list(law.values()) == [1.0], name


# ---------------------------------------------------------------- sampled schedules

def test_a_sampled_speed_run_follows_the_schedule_of_its_own_acceptance(target):
    """Sampled, the pure schedule still follows from one bool per token: the executor's
    flushes say which drafts were rejected, and ``derive_schedule`` of that vector is the
    executor's own schedule."""
    from speedsim.strategies.speed_schedule import derive_schedule

    shape, params = target
    prompts = np.array([[0, 2], [1, 1]])
    rejected = 0
    for seed in range(4):
        run = run_speed(params, shape, prompts, 6, 2, Sampling(temperature=1.0, seed=seed))
        accepted = np.ones(6, bool)
        accepted[[f.index for f in run.schedule.flush_events]] = False
        assert run.schedule == derive_schedule(accepted, 2)
        rejected += int((~accepted).sum())
    assert rejected > 0


@pytest.mark.parametrize("draft_model", [False, True])
def test_a_sampled_verify_run_follows_the_schedule_of_its_own_acceptance(target, draft,
                                                                          draft_model):
    from speedsim.strategies.spec_schedule import derive_spec_schedule

    shape, params = target
    prompts = np.array([[0, 2]])
    rejected = 0
    for seed in range(4):
        s = Sampling(temperature=1.0, seed=seed)
        run = run_draft_spec(params, shape, draft[1], draft[0], prompts, 6, 2, s) \
            if draft_model else run_early_exit_spec(params, shape, prompts, 6, 2, 1, s)
        accepted = np.ones(6, bool)
        for st in run.schedule.steps:
            if st.accepted < st.drafted:
                accepted[st.start + st.accepted + 1] = False
        assert run.schedule == derive_spec_schedule(accepted, 2, catch_up=draft_model)
        rejected += int((~accepted).sum())
    assert rejected > 0

"""Sampled decoding on the shipped trained model: statistics with tolerances from sample size.

Seeded, so every number here is the same on every run; the tolerances say how far
an honest implementation may land from the exact value at this sample size
(4 standard errors, or a chi-square quantile at significance 1e-4).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from speedsim.api import simulate
from speedsim.config.hw import load_hardware
from speedsim.config.workload import Sampling, load_workload
from speedsim.model import sampling as sm
from speedsim.model.decoder import forward_full, generate
from speedsim.model.spec_exec import model_drafts
from speedsim.model.speed_exec import run_speed
from speedsim.model.weights import load_params, load_shape_params

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES = ROOT / "workloads" / "strategies.yaml"
TOP_P = 0.9


def _workload(temperature: float, new_tokens: int, **more):
    sampling = {"temperature": temperature, "top_p": TOP_P, **more}
    return load_workload(STRATEGIES, [("generation.sampling", sampling),
                                      ("generation.new_tokens", new_tokens)])


@pytest.fixture(scope="module", params=[0.7, 1.0])
def long_run(request):
    """192 sampled tokens (the positional table's length less the prompt)."""
    wl = _workload(request.param, 192)
    return wl, generate(wl)


def _within(accepted: np.ndarray, expected: np.ndarray) -> tuple[float, float, float]:
    """(realized, expected, standard error) over tokens 1 .. T-2, as the summary counts them."""
    a, e = accepted[1:-1].astype(float), expected[1:-1]
    return a.mean(), e.mean(), math.sqrt((e * (1 - e)).sum()) / e.size


def test_speed_realized_acceptance_is_within_the_error_of_the_expected(long_run):
    wl, record = long_run
    realized, expected, stderr = _within(record.accepted, record.expected)
    assert 0.02 < stderr < 0.05  # 190 positions, e far from 0 and 1: the test has teeth
    assert abs(realized - expected) < 4 * stderr


def test_draft_model_realized_acceptance_is_within_the_error_of_the_expected(long_run):
    wl, record = long_run
    dm = wl.strategies.draft_spec.draft_model
    dparams = load_shape_params(dm, 256, "draft_model.weights")
    drafts = model_drafts(dparams, dm, record, wl.generation.sampled)
    realized, expected, stderr = _within(drafts.accepted, drafts.expected)
    assert abs(realized - expected) < 4 * stderr


def _exact_pairs(params, shape, prompt: np.ndarray, sampling) -> dict[tuple[int, int], float]:
    """P(token 0, token 1) of the target from uncached passes."""
    p0 = sm.distribution(forward_full(params, shape, prompt[None])[0][0, -1], sampling)
    law = {}
    for y0 in np.flatnonzero(p0):
        final, _ = forward_full(params, shape, np.append(prompt, y0)[None])
        p1 = sm.distribution(final[0, -1], sampling)
        law.update({(int(y0), int(y1)): p0[y0] * p1[y1] for y1 in np.flatnonzero(p1)})
    return law


def _chi_square_quantile(df: int, z: float = 3.719) -> float:
    """Wilson–Hilferty: the chi-square quantile at the normal quantile z (3.719: 1 − 1e-4)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_speed_executor_commits_the_target_distribution_on_the_trained_model():
    """B = 200 independent sequences of one prompt, sampled through the NumPy SPEED
    pipeline (G = 4, the early head's drafts kept by the rule): the pairs (token 0, token 1)
    against their exact law, by a chi-square test over cells expected ≥ 5 times."""
    wl = _workload(1.0, 3)
    params, B = load_params(wl), 200
    prompt = np.frombuffer(b"def merge", np.uint8).astype(np.int64)
    sampling = Sampling(temperature=1.0, top_p=TOP_P, seed=7)
    run = run_speed(params, wl.model, np.tile(prompt, (B, 1)), 3, 4, sampling)
    assert run.flush_events, "some drafts were rejected"
    law = _exact_pairs(params, wl.model, prompt, sampling)
    counts: dict[tuple[int, int], int] = {}
    for y0, y1 in run.tokens[:, :2].tolist():
        counts[(y0, y1)] = counts.get((y0, y1), 0) + 1
    assert set(counts) <= set(law), "a committed pair outside the target's support"
    big = [c for c in law if B * law[c] >= 5]
    cells = [(counts.get(c, 0), B * law[c]) for c in big]
    rest = (B - sum(o for o, _ in cells), B - sum(e for _, e in cells))
    cells += [rest] if rest[1] >= 5 else []
    chi2 = sum((o - e) ** 2 / e for o, e in cells)
    assert len(cells) >= 3 and chi2 < _chi_square_quantile(len(cells) - 1)


def test_temperature_zero_is_the_greedy_run(tmp_path):
    """temperature 0: the same summary and tokens as no sampling (top_p or seed beside it is
    a config error: they would change nothing, tests/test_bad_inputs.py)."""
    hw = load_hardware(ROOT / "hw_configs" / "edge.yaml")
    greedy = load_workload(STRATEGIES, [("generation.new_tokens", 8)])
    zero = load_workload(STRATEGIES, [("generation.new_tokens", 8), ("generation.sampling",
                                      {"temperature": 0.0})])
    a, b = simulate(hw, greedy), simulate(hw, zero)
    assert a.summary["strategies"] == b.summary["strategies"]
    assert a.tokens.equals(b.tokens) and a.acceptance.equals(b.acceptance)

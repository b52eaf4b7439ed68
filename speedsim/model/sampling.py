"""Sampled decoding and speculative sampling: token distributions, draws, the one rule.

**Distribution.** ``distribution(logits, sampling)`` turns logits [..., V] into the
probabilities a token is drawn from (float64): softmax(logits / temperature), kept
to the ``top_k`` most probable tokens, then to the nucleus (the smallest set of most
probable tokens whose mass reaches ``top_p``), renormalized. Ties are ordered by
token id. ``sampling`` None (or temperature 0) gives the one-hot of the argmax:
greedy decoding is the special case, with the same argmax as ``np.argmax``.
A draft's distribution q goes through the same warping as the target's p.

**Draws.** A token is drawn by inverse CDF: the first id whose cumulative
probability exceeds u · total, for one uniform u. So a run is a pure function
of its uniforms, and their order is the whole reproducibility contract:

- the target's token i of sequence b uses ``target_uniforms(seed, T, B)[i, b]``,
  from ``default_rng([seed, 0]).random((T, B))``;
- speculative strategies share ``coupling_uniforms(seed, T, B)[i, b]`` (two per
  token: the keep test and the residual draw), from ``default_rng([seed, 1])``:
  common random numbers, so two strategies with the same draft see the same
  acceptance, and different drafts are compared on correlated draws.

**The rule** (Leviathan et al. 2023, Chen et al. 2023): a drafted x ~ q is kept
with probability min(1, p(x)/q(x)); else the token is drawn from
normalize(max(0, p − q)). Then the committed token is distributed as p, and
P(keep) = Σ_x min(p(x), q(x)) (``expected_acceptance``). ``speculative_verify``
is that rule, as the NumPy executors (``speed_exec``, ``spec_exec``) run it
with any ``Draws``; the tests enumerate every draw of those executors on a tiny
vocabulary to prove the committed tokens are distributed as p.

**One pass for the simulator.** The whole schedule follows from, per token i,
whether its draft was kept: the draft of token i is only consulted when the
token before it was committed, so it is drawn from q given the committed prefix
(as for greedy decoding, ``speedsim.strategies.speed_schedule``). The reference
run therefore samples the target's tokens y ~ p first (sequential sampling,
the same tokens every lossless strategy commits), and each speculative
strategy draws its draft from the coupling of speculative sampling given y
(``coupled_draft``): x = y with probability min(p(y), q(y)) / p(y), else x from
normalize(max(0, q − p)). The pair (x, y) then has exactly the joint law of
the rule above (x ~ q; kept iff x = y; a rejected x and the resampled y are
drawn from the disjoint parts where q > p and p > q) — checked by enumeration
in tests/test_sampling.py — and every lossless strategy commits the same
tokens, so speedups compare the same committed tokens (DESIGN §7).
"""

from __future__ import annotations

from typing import Optional, Protocol

import numpy as np


# ---------------------------------------------------------------- distributions

def distribution(logits: np.ndarray, sampling=None) -> np.ndarray:
    """float64 [..., V]: the probabilities a token is drawn from (see the module)."""
    z = np.asarray(logits, np.float64)
    if sampling is None or sampling.temperature == 0.0:
        return np.eye(z.shape[-1])[z.argmax(-1)]
    z = z / sampling.temperature
    e = np.exp(z - z.max(-1, keepdims=True))
    probs = e / e.sum(-1, keepdims=True)
    return _truncated(probs, sampling.top_k, sampling.top_p)


def _truncated(probs: np.ndarray, top_k: Optional[int], top_p: float) -> np.ndarray:
    """``probs`` [..., V] kept to the top_k, then to the top_p nucleus, renormalized."""
    order = np.argsort(-probs, axis=-1, kind="stable")  # most probable first, ties by id
    ranked = np.take_along_axis(probs, order, -1)
    before = np.cumsum(ranked, -1) - ranked  # mass of the more probable tokens
    keep = before < top_p * ranked.sum(-1, keepdims=True)  # the first token always stays
    if top_k is not None:
        keep &= np.arange(probs.shape[-1]) < top_k
    kept = np.zeros_like(probs)
    np.put_along_axis(kept, order, np.where(keep, ranked, 0.0), -1)
    return kept / kept.sum(-1, keepdims=True)


def expected_acceptance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Σ_x min(p(x), q(x)) over the last axis: the probability a draft from q is kept."""
    return np.minimum(p, q).sum(-1)


def residual(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """normalize(max(0, p − q)) over the last axis; p itself where p ≤ q everywhere."""
    r = np.maximum(p - q, 0.0)
    total = r.sum(-1, keepdims=True)
    return np.where(total > 0, r / np.where(total > 0, total, 1.0), p)


def inverse_cdf(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """int64 [...]: per row of ``probs`` [..., V], the first id whose cumulative mass
    exceeds u · total (u [...] in [0, 1))."""
    c = np.cumsum(probs, -1)
    target = np.asarray(u)[..., None] * c[..., -1:]
    ids = (c <= target).sum(-1)  # ids whose cumulative mass does not exceed it
    return np.minimum(ids, probs.shape[-1] - 1).astype(np.int64)


# ---------------------------------------------------------------- seeded uniforms

def target_uniforms(seed: int, new_tokens: int, batch: int) -> np.ndarray:
    """float64 [T, B]: the uniform drawing the target's token i of sequence b."""
    return np.random.default_rng([seed, 0]).random((new_tokens, batch))


def coupling_uniforms(seed: int, new_tokens: int, batch: int) -> np.ndarray:
    """float64 [T, B, 2]: per token and sequence, the keep test and the residual draw."""
    return np.random.default_rng([seed, 1]).random((new_tokens, batch, 2))


def coupled_draft(y: np.ndarray, p: np.ndarray, q: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """int64 [B]: a draft x ~ q coupled to the target's y ~ p as speculative sampling
    couples them (module docstring). y [B]; p, q [B, V]; uv [B, 2] uniforms."""
    rows = np.arange(y.shape[0])
    py, qy = p[rows, y], q[rows, y]
    keep = uv[:, 0] * py < np.minimum(py, qy)
    other = inverse_cdf(residual(q, p), uv[:, 1])  # from normalize(max(0, q − p))
    return np.where(keep | (np.maximum(q - p, 0.0).sum(-1) <= 0), y, other)


# ---------------------------------------------------------------- the rule, with any draws

class Draws(Protocol):
    """Where an executor's random choices come from (seeded, or enumerated in tests)."""

    def token(self, probs: np.ndarray) -> np.ndarray: ...  # [B, V] -> int64 [B]

    def accept(self, prob: np.ndarray) -> np.ndarray: ...  # [B] -> bool [B]


class SeededDraws:
    """Uniforms from ``default_rng(seed)`` in the order the executor asks for them."""

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def token(self, probs: np.ndarray) -> np.ndarray:
        return inverse_cdf(probs, self.rng.random(probs.shape[0]))

    def accept(self, prob: np.ndarray) -> np.ndarray:
        return self.rng.random(prob.shape[0]) < prob


def speculative_verify(draws: Draws, x: np.ndarray, p: np.ndarray,
                       q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rule for drafts x [B] drawn from q [B, V], target p [B, V]:
    (kept bool [B], committed token int64 [B]). A residual is drawn only where x was
    rejected. With one-hot (greedy) p and q: kept iff x is p's argmax, else that argmax."""
    rows = np.arange(x.shape[0])
    kept = draws.accept(np.minimum(1.0, p[rows, x] / q[rows, x]))
    token = np.asarray(x, np.int64).copy()
    if not kept.all():
        token[~kept] = draws.token(residual(p[~kept], q[~kept]))
    return kept, token


class Chooser:
    """How an executor turns logits into tokens: distributions (``sampling`` None or
    temperature 0: one-hot greedy) and the draws (default ``SeededDraws(sampling.seed)``)."""

    def __init__(self, sampling=None, draws: Optional[Draws] = None):
        self.sampling = sampling
        self.draws = draws if draws is not None else \
            SeededDraws(0 if sampling is None else sampling.seed)

    def distribution(self, logits: np.ndarray) -> np.ndarray:
        return distribution(logits, self.sampling)

    def draw(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(token [B], its distribution [B, V]) from logits [B, V]."""
        q = self.distribution(logits)
        return self.draws.token(q), q

"""Draft-and-verify speculative decoding, executed in NumPy (the oracle of its schedule).

Two lossless strategies share one loop (Leviathan et al. 2023; Chen et al.
2023; Draft & Verify, Zhang et al. 2023; LayerSkip, Elhoushi et al. 2024):

- **early-exit self-speculation**: the *draft* is the target's own first E
  layers followed by the (tied) final norm and LM head;
- **draft-model speculation**: the draft is a separate small model with its
  own weights and KV cache.

Verify step (one per loop turn). Generated tokens 0..c are committed; token c
(at absolute position p = P + c) has not been through the model yet.

1. draft: for j = 0..k-1 the draft runs input x_j (x_0 = token c, then its own
   guesses) at position p + j and guesses d_{j+1}. k = min(K, T - 2 - c), so a
   step never drafts past the last generated token (T = new_tokens);
2. verify: ONE pass of the target over the k + 1 rows [token c, d_1 .. d_k]
   at positions p .. p + k gives its greedy predictions f_1 .. f_{k+1};
3. accept: a = the longest prefix with d_j = f_j for every sequence of the
   batch; commit f_1 .. f_{a+1} (a + 1 tokens: the accepted guesses, and the
   target's own token where the first guess failed, or one more after a full
   acceptance); drop every KV entry at positions > p + a.

Early exit reuses the draft's work: the draft's rows 0..k-1 already ran
layers 0..E-1 (their KV is in the cache and their hidden states are kept), so
the verify pass runs layers 0..E-1 for the last row only and layers E..N-1
for all k + 1 rows. A draft model keeps its own cache; after a full
acceptance it never ran its own last guess d_k, so its first pass of the next
step takes two rows (d_k and the new token c): the **catch-up**.

Acceptance. Because a guess is only consulted when every earlier guess of its
step was right, its draft ran on the committed prefix: the guess of token i is
the draft's greedy prediction given the greedy prefix. So one bool per
generated token, ``accepted[i]`` (index 0 never consulted), determines the
whole schedule (``speedsim.strategies.spec_schedule.derive_spec_schedule``;
the runs here keep their own books, and tests check the two agree): exactly
the vector SPEED uses when the draft is the early exit after layer E - 1.
The teacher-forced guesses (``teacher_forced_guesses``) give that vector in
one pass, without running the loop.

Sampled (``sampling`` given; ``speedsim.model.sampling``). The draft draws
d_j from its distribution q_j; the verify pass gives the target's p_1 ..
p_{k+1}; in order j = 1..k, d_j is kept with probability min(1, p_j(d_j) /
q_j(d_j)) (``speculative_verify``); the first rejection commits a token drawn
from normalize(max(0, p_j − q_j)) and ends the step; after k kept, the bonus
token is drawn from p_{k+1}. Greedy decoding is the same code with one-hot
distributions. The draws come from a ``Draws`` in the order the run asks:
token 0, then per step the k draft tokens, then the keep tests (and the
residual or bonus draw). For the simulator, ``Drafts`` (one draft per token,
given the committed prefix) carries the outcome vector: sampled, the draft is
drawn from the coupling of ``speedsim.model.sampling`` with the reference
run's tokens.

The **shallow** baseline (``run_shallow``) decodes the first E layers + head
sequentially: fast and lossy; it reports how many of its tokens differ from
the target's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

from speedsim.contracts.schedule import SpecSchedule, VerifyStep, draft_count
from speedsim.model.decoder import (GenerationRecord, KVCache, embed, forward_full,
                                    greedy_decode, head, run_layer)
from speedsim.model import sampling as sm
from speedsim.model.dims import Dims
from speedsim.model.weights import Params


# ---------------------------------------------------------------- acceptance from a model

def sequence_of(record: GenerationRecord) -> np.ndarray:
    """int64 [B, P + T - 1]: the prompt and every generated token that is ever an input."""
    return np.concatenate([record.prompt, record.tokens[:, :-1]], axis=1)


def teacher_forced_logits(params: Params, shape, record: GenerationRecord,
                          exit_layer: Optional[int] = None) -> np.ndarray:
    """float32 [B, T, V]: a model's logits for each generated token given the target's
    committed prefix (one pass, no cache). ``exit_layer``: from the early head after that
    layer instead of the last one."""
    P = record.prompt.shape[1]
    final, early = forward_full(params, shape, sequence_of(record), exit_layer)  # [B, P+T-1, V]
    logits = final if exit_layer is None else early
    return logits[:, P - 1:]  # token i from position P - 1 + i


def teacher_forced_guesses(params: Params, shape, record: GenerationRecord,
                           exit_layer: Optional[int] = None) -> np.ndarray:
    """int64 [B, T]: a model's greedy guess of each generated token given the target's
    greedy prefix (``teacher_forced_logits``' argmax)."""
    return teacher_forced_logits(params, shape, record, exit_layer).argmax(-1)


@dataclass(frozen=True)
class Drafts:
    """A draft's guess of every generated token given the committed prefix, and the
    probability each is kept (greedy: 1 or 0; sampled: Σ min(p, q) over the batch)."""

    guesses: np.ndarray  # int64 [B, T]
    accepted: np.ndarray  # bool [T]: the guess equals the committed token for every sequence
    expected: np.ndarray  # float [T]


def drafts_from_logits(logits: np.ndarray, record: GenerationRecord, sampling=None) -> Drafts:
    """The drafts a model with ``logits`` [B, T, V] (given the committed prefix) makes:
    greedy, its argmax; sampled, drawn coupled to the committed tokens with the shared
    coupling uniforms (``speedsim.model.sampling``)."""
    if sampling is None:
        guesses = logits.argmax(-1)
        hits = (guesses == record.tokens).all(axis=0)
        return Drafts(guesses, hits, hits.astype(float))
    B, T = record.tokens.shape
    q = sm.distribution(logits, sampling)  # [B, T, V]
    uv = sm.coupling_uniforms(sampling.seed, T, B)
    guesses = np.stack([sm.coupled_draft(record.tokens[:, i], record.probs[:, i], q[:, i], uv[i])
                        for i in range(T)], 1)
    expected = np.prod(sm.expected_acceptance(record.probs, q), axis=0)  # [T]
    return Drafts(guesses, (guesses == record.tokens).all(axis=0), expected)


def record_drafts(record: GenerationRecord) -> Drafts:
    """The drafts of the exit the reference run itself took (``record.early``)."""
    accepted = record.accepted
    expected = record.expected if record.expected is not None else accepted.astype(float)
    return Drafts(record.early, accepted, expected)


def exit_drafts(params: Params, shape, record: GenerationRecord, exit_layers: int,
                sampling=None) -> Drafts:
    """The early exit after ``exit_layers`` layers drafts each token (the reference run's
    own early predictions when it exited there)."""
    if record.exit_layer == exit_layers - 1:
        return record_drafts(record)
    return drafts_from_logits(teacher_forced_logits(params, shape, record, exit_layers - 1),
                              record, sampling)


def exit_guesses(params: Params, shape, record: GenerationRecord, exit_layers: int) -> np.ndarray:
    """int64 [B, T]: the early exit after ``exit_layers`` layers guesses each token (the
    greedy run's own early predictions when it exited there)."""
    return exit_drafts(params, shape, record, exit_layers).guesses


def model_drafts(draft_params: Params, draft_shape, record: GenerationRecord,
                 sampling=None) -> Drafts:
    """A separate draft model's drafts of each token given the committed prefix."""
    return drafts_from_logits(teacher_forced_logits(draft_params, draft_shape, record),
                              record, sampling)


def draft_acceptance(draft_params: Params, draft_shape, record: GenerationRecord) -> np.ndarray:
    """bool [T]: the draft model's greedy guess of token i, given the target's greedy
    prefix, equals token i for every sequence."""
    guesses = teacher_forced_guesses(draft_params, draft_shape, record)
    return (guesses == record.tokens).all(axis=0)


# ---------------------------------------------------------------- shared loop pieces

@dataclass(frozen=True)
class SpecRun:
    """What a NumPy draft-and-verify run did."""

    prompt: np.ndarray  # int64 [B, P]
    tokens: np.ndarray  # int64 [B, T], committed
    schedule: SpecSchedule  # from the run's own bookkeeping (not derive_spec_schedule)
    drafts: tuple[np.ndarray, ...]  # per step: int64 [B, k], the guesses it verified


def _verify(ch: sm.Chooser, guesses: np.ndarray, qs: np.ndarray,
            target_logits: np.ndarray) -> tuple[int, np.ndarray]:
    """The rule on guesses d_1..d_k [B, k] drafted from qs [B, k, V], target logits
    [B, k+1, V], in order: (a kept for the whole batch, the a + 1 committed tokens [B, a+1]).
    The first rejection ends the step with its resampled token; after k kept, the bonus
    token is drawn from the target's last row."""
    k, out = guesses.shape[1], []
    for j in range(k):
        kept, token = sm.speculative_verify(ch.draws, guesses[:, j],
                                            ch.distribution(target_logits[:, j]), qs[:, j])
        out.append(token)
        if not kept.all():
            return j, np.stack(out, 1)
    out.append(ch.draw(target_logits[:, k])[0])
    return k, np.stack(out, 1)


def _prefill(params: Params, dm: Dims, prompts: np.ndarray, cache: KVCache) -> np.ndarray:
    """All prompt positions through every layer of ``dm``; returns the last hidden rows."""
    x = embed(params, prompts, 0)
    for l in range(dm.n_layers):
        x = run_layer(params, dm, l, x, cache, 0)
    return x[:, -1]  # [B, d]


def _layers(params: Params, dm: Dims, x: np.ndarray, layers: range, cache: KVCache,
            start: int) -> np.ndarray:
    for l in layers:
        x = run_layer(params, dm, l, x, cache, start)
    return x


def _target_start(params: Params, dm: Dims, prompts: np.ndarray, new_tokens: int,
                  ch: sm.Chooser) -> tuple[KVCache, np.ndarray]:
    """The target's KV cache after the prompt and the token ids [B, T] with token 0 set."""
    B, P = prompts.shape
    cache = KVCache.for_shape(dm, B, P + new_tokens)
    tokens = np.zeros((B, new_tokens), np.int64)
    tokens[:, 0] = ch.draw(head(params, _prefill(params, dm, prompts, cache)))[0]
    return cache, tokens


def _check(draft_tokens: int, prompts: np.ndarray, new_tokens: int, params: Params) -> None:
    if int(draft_tokens) < 1:
        raise ValueError(f"draft_tokens must be >= 1, got {draft_tokens}")
    if new_tokens < 1 or prompts.shape[1] + new_tokens > params.max_seq_len:
        raise ValueError(f"new_tokens={new_tokens} must be >= 1 and prompt + new tokens "
                         f"must fit max_seq_len={params.max_seq_len}")


# ---------------------------------------------------------------- early-exit self-speculation

def _early_draft(params: Params, dm: Dims, E: int, token: np.ndarray, p: int, k: int,
                 cache: KVCache, ch: sm.Chooser) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """k draft passes (layers 0..E-1 + head) from ``token`` [B] at position p.
    Returns guesses [B, k], their distributions [B, k, V] and the hidden rows after
    layer E-1 [B, k, d]."""
    guesses, qs, hidden, tok = [], [], [], token
    for j in range(k):
        x = _layers(params, dm, embed(params, tok[:, None], p + j), range(E), cache, p + j)
        hidden.append(x)
        tok, q = ch.draw(head(params, x[:, 0]))
        guesses.append(tok)
        qs.append(q)
    return _stacked(guesses, qs, token.shape[0], params) + (
        np.concatenate(hidden, 1) if hidden else
        np.zeros((token.shape[0], 0, params.tok_emb.shape[1]), np.float32),)


def _stacked(guesses: list, qs: list, B: int, params: Params) -> tuple[np.ndarray, np.ndarray]:
    """Per-pass guesses [B] and distributions [B, V] as [B, k] and [B, k, V]."""
    if not guesses:
        return np.zeros((B, 0), np.int64), np.zeros((B, 0, params.tok_emb.shape[0]))
    return np.stack(guesses, 1), np.stack(qs, 1)


def _early_verify(params: Params, dm: Dims, E: int, last: np.ndarray, hidden: np.ndarray,
                  p: int, cache: KVCache) -> np.ndarray:
    """The last row (input ``last`` [B] at p + k) runs layers 0..E-1; then all k + 1 rows
    run layers E..N-1 in one pass. Returns the target's logits [B, k + 1, V]."""
    k = hidden.shape[1]
    x_last = _layers(params, dm, embed(params, last[:, None], p + k), range(E), cache, p + k)
    x = _layers(params, dm, np.concatenate([hidden, x_last], 1), range(E, dm.n_layers),
                cache, p)
    B = x.shape[0]
    return head(params, x.reshape(-1, x.shape[-1])).reshape(B, k + 1, -1)


def run_early_exit_spec(params: Params, shape, prompts: np.ndarray, new_tokens: int,
                        draft_tokens: int, exit_layers: int, sampling=None,
                        draws: Optional[sm.Draws] = None) -> SpecRun:
    """Decoding by early-exit self-speculation: drafts from the first ``exit_layers`` (E)
    layers, verification by all N; greedy, or sampled (module docstring)."""
    dm = Dims.of(shape)
    E, T = int(exit_layers), int(new_tokens)
    if not 1 <= E < dm.n_layers:
        raise ValueError(f"exit_layers must be in 1..{dm.n_layers - 1}, got {exit_layers}")
    prompts = np.asarray(prompts, dtype=np.int64)
    _check(draft_tokens, prompts, T, params)
    B, P = prompts.shape
    ch = sm.Chooser(sampling, draws)
    cache, tokens = _target_start(params, dm, prompts, T, ch)
    steps, drafts, c = [], [], 0
    while c < T - 1:
        p, k = P + c, draft_count(draft_tokens, c, T)
        guesses, qs, hidden = _early_draft(params, dm, E, tokens[:, c], p, k, cache, ch)
        last = guesses[:, -1] if k else tokens[:, c]
        a, committed = _verify(ch, guesses, qs,
                               _early_verify(params, dm, E, last, hidden, p, cache))
        tokens[:, c + 1:c + a + 2] = committed
        cache.rollback(p + a + 1)
        steps.append(VerifyStep(c, k, a))
        drafts.append(guesses)
        c += a + 1
    return SpecRun(prompts, tokens, SpecSchedule(int(draft_tokens), tuple(steps)), tuple(drafts))


# ---------------------------------------------------------------- draft-model speculation

@dataclass
class _Draft:
    """The draft model and its own KV cache; ``fed`` = positions its cache holds."""

    params: Params
    dm: Dims
    cache: KVCache

    @property
    def fed(self) -> int:
        return self.cache.lengths[0]


def _model_draft(dr: _Draft, tokens: np.ndarray, P: int, c: int, k: int,
                 ch: sm.Chooser) -> tuple[np.ndarray, np.ndarray, bool]:
    """k guesses after committed token c; the first pass also feeds every committed
    input the draft's cache lacks (at most one: the catch-up). Returns (guesses [B, k],
    their distributions [B, k, V], caught up)."""
    guesses, qs, behind = [], [], dr.fed < P + c
    feed = tokens[:, dr.fed - P:c + 1]  # [B, 1 or 2]
    for j in range(k):
        start = dr.fed
        x = _layers(dr.params, dr.dm, embed(dr.params, feed, start), range(dr.dm.n_layers),
                    dr.cache, start)
        tok, q = ch.draw(head(dr.params, x[:, -1]))
        feed = tok[:, None]
        guesses.append(tok)
        qs.append(q)
    return _stacked(guesses, qs, tokens.shape[0], dr.params) + (behind and k > 0,)


def _target_verify(params: Params, dm: Dims, rows: np.ndarray, p: int,
                   cache: KVCache) -> np.ndarray:
    """All N layers over ``rows`` [B, k+1] at positions p..; logits [B, k+1, V]."""
    x = _layers(params, dm, embed(params, rows, p), range(dm.n_layers), cache, p)
    B, t, d = x.shape
    return head(params, x.reshape(-1, d)).reshape(B, t, -1)


def run_draft_spec(params: Params, shape, draft_params: Params, draft_shape,
                   prompts: np.ndarray, new_tokens: int, draft_tokens: int, sampling=None,
                   draws: Optional[sm.Draws] = None) -> SpecRun:
    """Decoding of the target (``params``, ``shape``) with a separate draft model; greedy,
    or sampled (module docstring)."""
    dm, T = Dims.of(shape), int(new_tokens)
    prompts = np.asarray(prompts, dtype=np.int64)
    _check(draft_tokens, prompts, T, params)
    B, P = prompts.shape
    dr = _Draft(draft_params, Dims.of(draft_shape), KVCache.for_shape(draft_shape, B, P + T))
    _prefill(dr.params, dr.dm, prompts, dr.cache)  # its prediction of token 0 is unused
    ch = sm.Chooser(sampling, draws)
    cache, tokens = _target_start(params, dm, prompts, T, ch)
    steps, drafts, c = [], [], 0
    while c < T - 1:
        p, k = P + c, draft_count(draft_tokens, c, T)
        guesses, qs, behind = _model_draft(dr, tokens, P, c, k, ch)
        logits = _target_verify(params, dm, np.concatenate([tokens[:, c:c + 1], guesses], 1),
                                p, cache)
        a, committed = _verify(ch, guesses, qs, logits)
        tokens[:, c + 1:c + a + 2] = committed
        cache.rollback(p + a + 1)
        dr.cache.rollback(p + a + 1)
        steps.append(VerifyStep(c, k, a, behind))
        drafts.append(guesses)
        c += a + 1
    return SpecRun(prompts, tokens, SpecSchedule(int(draft_tokens), tuple(steps)), tuple(drafts))


# ---------------------------------------------------------------- shallow baseline

@dataclass(frozen=True)
class ShallowRun:
    tokens: np.ndarray  # int64 [B, T]: what the exit model alone commits
    reference: np.ndarray  # int64 [B, T]: the target's greedy tokens

    @property
    def differing(self) -> int:
        """Committed tokens (over batch × T) that differ from the target's."""
        return int((self.tokens != self.reference).sum())

    @property
    def first_difference(self) -> Optional[int]:
        """Index of the first generated token where any sequence differs (None: none)."""
        bad = np.flatnonzero((self.tokens != self.reference).any(axis=0))
        return int(bad[0]) if bad.size else None


def truncated(shape, exit_layers: int) -> Dims:
    """The first ``exit_layers`` layers of ``shape`` as a model of their own."""
    dm = Dims.of(shape)
    if not 1 <= exit_layers <= dm.n_layers:
        raise ValueError(f"exit_layers must be in 1..{dm.n_layers}, got {exit_layers}")
    return replace(dm, n_layers=int(exit_layers), sets=dm.sets[:exit_layers])


def run_shallow(params: Params, shape, record: GenerationRecord, exit_layers: int,
                sampling=None) -> ShallowRun:
    """Sequential decoding of the first E layers + the tied head, same prompts: greedy, or
    sampled from its own head with the target's uniforms (``speedsim.model.sampling``)."""
    out = greedy_decode(params, truncated(shape, exit_layers), record.prompt,
                        record.tokens.shape[1], sampling=sampling)
    return ShallowRun(out.tokens, record.tokens)

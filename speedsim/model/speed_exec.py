"""SPEED executed numerically: the NumPy pipeline that must reproduce the pure schedule.

The schedule model is in ``speedsim.strategies.speed_schedule``; the types
are ``speedsim.contracts.schedule``. ``run_speed`` keeps its own bookkeeping
(it never calls ``derive_schedule``), so the tests can compare the two.

Sampled (``sampling`` given; ``speedsim.model.sampling``): the token launched
into stage 0 is drawn from the early head's distribution q; when its
predecessor commits, the final head's p keeps it with probability
min(1, p(x)/q(x)) (``speculative_verify``), else the resampled token restarts
at stage 0 after a flush, as a greedy mismatch does. Greedy decoding is the
same code with one-hot distributions. Draws are taken, per stage step, in
this order: the oldest's commit (its keep test, then a residual if rejected;
or one draw from p where nothing rides on it), then the draft of the one
leaving stage 0, if it survived.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from speedsim.contracts.schedule import FlushEvent, Schedule, ScheduledExec, Status
from speedsim.model import sampling as sm
from speedsim.model.dims import Dims
from speedsim.model.sampling import Draws
from speedsim.model.decoder import KVCache, embed, head, run_layer, run_layers
from speedsim.model.weights import Params


# ---------------------------------------------------------------- numeric execution

@dataclass
class _Slot:
    exec_id: int
    index: int
    speculative: bool
    token: np.ndarray  # int64 [B], the input token
    x: np.ndarray  # [B, 1, d] hidden state
    stage: int = 0
    steps: list = None  # type: ignore[assignment]
    q: Optional[np.ndarray] = None  # [B, V]: the distribution ``token`` was drafted from


@dataclass(frozen=True)
class SpeedRun:
    """What the NumPy SPEED pipeline did."""

    prompt: np.ndarray  # int64 [B, P]
    tokens: np.ndarray  # int64 [B, new_tokens], committed
    schedule: Schedule  # from the executor's own bookkeeping (not from derive_schedule)
    carried: np.ndarray  # int64 [launched, B]: the input token each execution (by exec_id) ran

    @property
    def launched(self) -> int:
        return self.schedule.launched

    @property
    def flush_events(self) -> list[tuple[int, int]]:
        """(stage step, absolute position of the mispredicted token) per flush."""
        P = self.prompt.shape[1]
        return [(f.step, P + f.index) for f in self.schedule.flush_events]

    @property
    def in_flight(self) -> list[list[tuple[int, int]]]:
        """Per stage step: (absolute input position, stage) of every in-flight execution."""
        P = self.prompt.shape[1]
        pos = {e.exec_id: P + e.index for e in self.schedule.execs}
        return [[(pos[e], g) for e, g in row] for row in self.schedule.steps]


def run_speed(params: Params, shape, prompts: np.ndarray, new_tokens: int,
              stages: int, sampling=None, draws: Optional[Draws] = None) -> SpeedRun:
    """Prefill, then decode with the SPEED pipeline, numerically: greedy, or sampled with
    ``sampling`` (draws from ``draws``, by default ``SeededDraws(sampling.seed)``).

    Per stage step and layer step j, the in-flight executions (in stage g, at
    layer g·E + j) are grouped by weight set and each group is ONE
    ``run_layers`` call: dense ops on stacked rows, attention per execution on
    its own layer's cache. Early and final heads of a step share one call.
    """
    pipe = _Pipeline(params, Dims.of(shape), np.asarray(prompts, dtype=np.int64),
                     int(new_tokens), int(stages), sm.Chooser(sampling, draws))
    pipe.prefill()
    while pipe.pending is not None or pipe.flight:
        pipe.stage_step()
    return pipe.result()


class _Pipeline:
    """The NumPy SPEED pipeline's state: in-flight executions (oldest first), the
    execution waiting to enter stage 0, and what has been retired so far."""

    def __init__(self, params: Params, dm: Dims, prompts: np.ndarray, T: int, G: int,
                 chooser: sm.Chooser):
        N = dm.n_layers
        self.choose = chooser
        if G < 1 or N % G:
            raise ValueError(f"stages={G} must be >= 1 and divide n_layers={N}")
        self.params, self.dm, self.prompts, self.G, self.E = params, dm, prompts, G, N // G
        self.B, self.P = prompts.shape
        self.n = T - 1  # decode executions to commit
        self.cache = KVCache(N, self.B, dm.kv_heads, dm.head_dim, self.P + T)
        self.tokens = np.zeros((self.B, T), np.int64)
        self.done: list[ScheduledExec] = []
        self.flushes: list[FlushEvent] = []
        self.log: list[tuple[tuple[int, int], ...]] = []
        self.flight: list[_Slot] = []
        self.carried: dict[int, np.ndarray] = {}
        self.pending: Optional[tuple] = None  # (index, token, speculative, q or None)
        self.next_id = self.step = 0

    def prefill(self) -> None:
        """1. the prompt through every layer; its last position's logits give token 0."""
        x = embed(self.params, self.prompts, 0)
        for layer in range(self.dm.n_layers):
            x = run_layer(self.params, self.dm, layer, x, self.cache, 0)
        self.tokens[:, 0] = self.choose.draw(head(self.params, x[:, -1]))[0]
        self.pending = (0, self.tokens[:, 0], False, None) if self.n else None

    def stage_step(self) -> None:
        """2. one stage step: launch, layer steps, heads, commit and check, advance."""
        self._launch()
        self.log.append(tuple(sorted(((s.exec_id, s.stage) for s in self.flight),
                                     key=lambda r: r[1])))
        for s in self.flight:
            s.steps.append(self.step)
        for j in range(self.E):
            self._layer_step(j)
        oldest, young, final, early = self._heads()
        if oldest is not None and self._commit(oldest, final):
            young = None  # flushed with the rest
        if young is not None and self.pending is None:  # the successor of stage 0's leaver
            token, q = self.choose.draw(early)
            self.pending = (young.index + 1, token, True, q)
        for s in self.flight:
            s.stage += 1
        self.step += 1

    def _launch(self) -> None:
        """2a. the pending execution enters stage 0."""
        if self.pending is None:
            return
        k, tok, spec, q = self.pending
        xe = embed(self.params, tok[:, None], self.P + k)
        self.flight.append(_Slot(self.next_id, k, spec, tok.copy(), xe, 0, [], q))
        self.next_id, self.pending = self.next_id + 1, None

    def _layer_step(self, j: int) -> None:
        """2b. layer step j: one fused ``run_layers`` call per weight set in use."""
        by_set: dict[int, list[_Slot]] = {}
        for s in self.flight:
            by_set.setdefault(self.dm.sets[s.stage * self.E + j], []).append(s)
        for members in by_set.values():
            outs = run_layers(self.params, self.dm, [s.x for s in members],
                              [s.stage * self.E + j for s in members],
                              [self.P + s.index for s in members], self.cache)
            for s, o in zip(members, outs):
                s.x = o

    def _heads(self) -> tuple:
        """2c. final head for the one leaving the last stage, early head for the one
        leaving stage 0 (one call): (oldest, young, final logits, early logits)."""
        flight = self.flight
        oldest = flight[0] if flight[0].stage == self.G - 1 else None
        young = flight[-1] if flight[-1].stage == 0 and flight[-1].index + 1 < self.n else None
        if young is oldest:
            young = None
        rows = [s.x[:, 0] for s in (oldest, young) if s is not None]
        preds = head(self.params, np.concatenate(rows)).reshape(len(rows), self.B, -1) \
            if rows else []
        return (oldest, young, preds[0] if oldest is not None else None,
                preds[-1] if young is not None else None)

    def _commit(self, oldest: _Slot, final: np.ndarray) -> bool:
        """2d. commit the oldest: its token k + 1 is its successor's draft if the rule keeps
        it, else drawn anew (then the younger ones flush); True if it flushed."""
        self.flight.pop(0)
        self._retire(oldest, "committed")
        k = oldest.index + 1
        p = self.choose.distribution(final)
        succ = self.flight[0] if self.flight and k < self.n else None
        if succ is None:  # the last token, or G == 1: nothing rides on this prediction
            assert k >= self.n or self.G == 1, "a successor must be in flight when G > 1"
            self.tokens[:, k] = self.choose.draws.token(p)
            self.pending = (k, self.tokens[:, k], False, None) if k < self.n else None
            return False
        assert succ.index == k
        kept, self.tokens[:, k] = sm.speculative_verify(self.choose.draws, succ.token, p, succ.q)
        if kept.all():
            return False
        final = self.tokens[:, k]
        self.flushes.append(FlushEvent(self.step, k, tuple(s.exec_id for s in self.flight)))
        for s in self.flight:
            self._retire(s, "flushed")
        self.flight = []
        self.cache.rollback(self.P + k)
        self.pending = (k, final, False, None)
        return True

    def _retire(self, slot: _Slot, status: Status) -> None:
        self.carried[slot.exec_id] = slot.token
        self.done.append(ScheduledExec(slot.exec_id, slot.index, slot.steps[0], status,
                                       tuple(slot.steps), slot.speculative))

    def result(self) -> SpeedRun:
        execs = tuple(sorted(self.done, key=lambda e: e.exec_id))
        carried = np.array([self.carried[e.exec_id] for e in execs],
                           np.int64).reshape(len(execs), self.B)
        return SpeedRun(self.prompts, self.tokens,
                        Schedule(self.G, execs, tuple(self.log), tuple(self.flushes)), carried)


def run_speed_workload(workload, params: Optional[Params] = None) -> SpeedRun:
    """``run_speed`` with a workload's weights, prompts, stage count and sampling."""
    from speedsim.model.decoder import prompt_ids
    from speedsim.model.weights import load_params

    params = load_params(workload) if params is None else params
    g = workload.generation
    return run_speed(params, workload.model, prompt_ids(g, workload.model.vocab_size),
                     g.new_tokens, workload.stages, g.sampled)

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
leaving stage d1 - 1 (the exit depth), if it survived.

A second proposal (``StageLayout.second_depth``) is defined for greedy decoding
only: under speculative sampling a restart on a second draft would need a rule of
its own (which draft the target's keep test applies to, and the residual then), so
``run_speed`` refuses it, as config validation does
(``strategies.speed.second_depth`` with ``generation.sampling``).
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
from speedsim.model.stages import StageLayout
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
              stages: int | StageLayout, sampling=None,
              draws: Optional[Draws] = None) -> SpeedRun:
    """Prefill, then decode with the SPEED pipeline, numerically: greedy, or sampled with
    ``sampling`` (draws from ``draws``, by default ``SeededDraws(sampling.seed)``).

    ``stages``: G (equal stages, early exit after the first), or a ``StageLayout``
    (a looped model's prelude and coda, an exit depth d1, a second proposal at d2:
    where it differs from the token the successor carries, the successor and all
    younger executions are flushed and it restarts on it). Per stage step and
    layer step (slot), the in-flight executions with a layer at that slot are
    grouped by weight set and each group is ONE ``run_layers`` call: dense ops
    on stacked rows, attention per execution on its own layer's cache. Early
    and final heads of a step share one call.
    """
    dm = Dims.of(shape)
    layout = stages if isinstance(stages, StageLayout) else StageLayout(dm.n_layers, int(stages))
    if layout.second_depth is not None and sampling is not None and sampling.temperature > 0:
        raise ValueError("a second proposal is defined for greedy decoding only "
                         "(see speedsim.model.speed_exec)")
    pipe = _Pipeline(params, dm, np.asarray(prompts, dtype=np.int64), int(new_tokens), layout,
                     sm.Chooser(sampling, draws))
    pipe.prefill()
    while pipe.pending is not None or pipe.flight:
        pipe.stage_step()
    return pipe.result()


class _Pipeline:
    """The NumPy SPEED pipeline's state: in-flight executions (oldest first), the
    execution waiting to enter stage 0, and what has been retired so far."""

    def __init__(self, params: Params, dm: Dims, prompts: np.ndarray, T: int,
                 layout: StageLayout, chooser: sm.Chooser):
        N = dm.n_layers
        if layout.n_layers != N:
            raise ValueError(f"the layout has {layout.n_layers} layers, the model {N}")
        self.choose = chooser
        self.params, self.dm, self.prompts, self.G = params, dm, prompts, layout.stages
        self.layout, self.d1, self.d2 = layout, layout.exit_depth, layout.second_depth
        self.layers_at = [dict(layout.stage_layers(g)) for g in range(self.G)]  # slot -> layer
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
        for j in range(self.layout.slots):
            self._layer_step(j)
        heads = self._heads()
        flushed = "final" in heads and self._commit(*heads["final"])
        if not flushed and "second" in heads:
            flushed = self._second(*heads["second"])  # the young one is younger: flushed too
        if not flushed and "early" in heads and self.pending is None:
            young, early = heads["early"]  # the successor of stage d1 - 1's leaver
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
        by_set: dict[int, list[tuple[_Slot, int]]] = {}
        for s in self.flight:
            layer = self.layers_at[s.stage].get(j)
            if layer is not None:
                by_set.setdefault(self.dm.sets[layer], []).append((s, layer))
        for pairs in by_set.values():
            members = [s for s, _ in pairs]
            outs = run_layers(self.params, self.dm, [s.x for s in members],
                              [layer for _, layer in pairs],
                              [self.P + s.index for s in members], self.cache)
            for s, o in zip(members, outs):
                s.x = o

    def _heads(self) -> dict[str, tuple[_Slot, np.ndarray]]:
        """2c. one head call: the final head for the one leaving the last stage, the second
        for the one leaving stage d2 - 1, the early head for the one leaving stage d1 - 1
        (those with a successor to come): role -> (execution, logits [B, V])."""
        roles = {}
        for s in self.flight:
            if s.stage == self.G - 1:
                roles["final"] = s
            elif s.stage == (self.d2 or 0) - 1 and s.index + 1 < self.n:
                roles["second"] = s
            elif s.stage == self.d1 - 1 and s.index + 1 < self.n:
                roles["early"] = s
        if not roles:
            return {}
        rows = np.concatenate([s.x[:, 0] for s in roles.values()])
        logits = head(self.params, rows).reshape(len(roles), self.B, -1)
        return {role: (s, z) for (role, s), z in zip(roles.items(), logits)}

    def _commit(self, oldest: _Slot, final: np.ndarray) -> bool:
        """2d. commit the oldest: its token k + 1 is its successor's draft if the rule keeps
        it, else drawn anew (then the younger ones flush); True if it flushed."""
        self.flight.pop(0)
        self._retire(oldest, "committed")
        k = oldest.index + 1
        p = self.choose.distribution(final)
        succ = self.flight[0] if self.flight and k < self.n else None
        if succ is None:  # the last token, or d1 == G (G == 1): nothing rides on it
            assert k >= self.n or self.d1 == self.G, "a successor must be in flight when d1 < G"
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

    def _second(self, mid: _Slot, logits: np.ndarray) -> bool:
        """2e. a second proposal (greedy: the argmax of ``logits`` [B, V]) that differs from
        the token ``mid``'s successor carries: flush the successor and every younger
        execution, restart it on the second proposal. True if it flushed."""
        q = self.choose.distribution(logits)  # one-hot: greedy only (``run_speed``)
        second = q.argmax(-1)
        i = self.flight.index(mid)
        younger = self.flight[i + 1:]
        if not younger or np.array_equal(younger[0].token, second):
            return False
        k = mid.index + 1
        assert younger[0].index == k, "the successor launched on the first proposal"
        self.flushes.append(FlushEvent(self.step, k, tuple(s.exec_id for s in younger)))
        for s in younger:
            self._retire(s, "flushed")
        self.flight = self.flight[:i + 1]
        self.cache.rollback(self.P + k)
        self.pending = (k, second, True, q)
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
                     g.new_tokens, StageLayout.of(workload), g.sampled)

"""SPEED executed numerically: the NumPy pipeline that must reproduce the pure schedule.

The schedule model is in ``speedsim.strategies.speed_schedule``; the types
are ``speedsim.contracts.schedule``. ``run_speed`` keeps its own bookkeeping
(it never calls ``derive_schedule``), so the tests can compare the two.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from speedsim.contracts.schedule import FlushEvent, Schedule, ScheduledExec, Status
from speedsim.model.dims import Dims
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
              stages: int) -> SpeedRun:
    """Prefill, then decode with the SPEED pipeline, numerically.

    Per stage step and layer step j, the in-flight executions (in stage g, at
    layer g·E + j) are grouped by weight set and each group is ONE
    ``run_layers`` call: dense ops on stacked rows, attention per execution on
    its own layer's cache. Early and final heads of a step share one call.
    """
    dm = Dims.of(shape)
    G, N = int(stages), dm.n_layers
    if G < 1 or N % G:
        raise ValueError(f"stages={stages} must be >= 1 and divide n_layers={N}")
    E = N // G
    prompts = np.asarray(prompts, dtype=np.int64)
    B, P = prompts.shape
    T = int(new_tokens)
    n = T - 1
    cache = KVCache(N, B, dm.kv_heads, dm.head_dim, P + T)

    # 1. prefill
    x = embed(params, prompts, 0)
    for l in range(N):
        x = run_layer(params, dm, l, x, cache, 0)
    tokens = np.zeros((B, T), np.int64)
    tokens[:, 0] = head(params, x[:, -1]).argmax(-1)

    # 2. stage steps
    done: list[ScheduledExec] = []
    flushes: list[FlushEvent] = []
    log: list[tuple[tuple[int, int], ...]] = []
    flight: list[_Slot] = []  # oldest first
    pending: Optional[tuple[int, np.ndarray, bool]] = (0, tokens[:, 0], False) if n else None
    next_id, step = 0, 0

    carried: dict[int, np.ndarray] = {}

    def retire(slot: _Slot, status: Status) -> None:
        carried[slot.exec_id] = slot.token
        done.append(ScheduledExec(slot.exec_id, slot.index, slot.steps[0], status,
                              tuple(slot.steps), slot.speculative))

    while pending is not None or flight:
        if pending is not None:  # 2a. launch into stage 0
            k, tok, spec = pending
            xe = embed(params, tok[:, None], P + k)
            flight.append(_Slot(next_id, k, spec, tok.copy(), xe, 0, []))
            next_id, pending = next_id + 1, None
        log.append(tuple(sorted(((s.exec_id, s.stage) for s in flight), key=lambda r: r[1])))
        for s in flight:
            s.steps.append(step)
        for j in range(E):  # 2b. layer steps, one fused call per weight set
            by_set: dict[int, list[_Slot]] = {}
            for s in flight:
                by_set.setdefault(dm.sets[s.stage * E + j], []).append(s)
            for members in by_set.values():
                outs = run_layers(params, dm, [s.x for s in members],
                                  [s.stage * E + j for s in members],
                                  [P + s.index for s in members], cache)
                for s, o in zip(members, outs):
                    s.x = o
        # 2c. heads: final for the one leaving the last stage, early for the one leaving stage 0
        oldest = flight[0] if flight[0].stage == G - 1 else None
        young = flight[-1] if flight[-1].stage == 0 and flight[-1].index + 1 < n else None
        if young is oldest:
            young = None
        rows = [s.x[:, 0] for s in (oldest, young) if s is not None]
        preds = head(params, np.concatenate(rows)).argmax(-1).reshape(len(rows), B) if rows else []
        final = preds[0] if oldest is not None else None
        early = preds[-1] if young is not None else None
        # 2d. commit, and check the successor's token
        if oldest is not None:
            flight.pop(0)
            retire(oldest, "committed")
            k = oldest.index + 1
            tokens[:, k] = final
            if k < n:
                succ = flight[0] if flight else None
                if succ is None:  # G == 1: nothing was launched speculatively
                    assert G == 1, "a successor must be in flight when G > 1"
                    pending = (k, final, False)
                elif not np.array_equal(succ.token, final):
                    assert succ.index == k
                    flushes.append(FlushEvent(step, k, tuple(s.exec_id for s in flight)))
                    for s in flight:
                        retire(s, "flushed")
                    flight, young = [], None
                    cache.rollback(P + k)
                    pending = (k, final, False)
        # 2e. launch the successor of the execution that left stage 0
        if young is not None and pending is None:
            pending = (young.index + 1, early, True)
        for s in flight:
            s.stage += 1
        step += 1
    execs = tuple(sorted(done, key=lambda e: e.exec_id))
    carried_ids = np.array([carried[e.exec_id] for e in execs], np.int64).reshape(len(execs), B)
    return SpeedRun(prompts, tokens, Schedule(G, execs, tuple(log), tuple(flushes)), carried_ids)


def run_speed_workload(workload, params: Optional[Params] = None) -> SpeedRun:
    """``run_speed`` with a workload's weights, prompts and stage count."""
    from speedsim.model.decoder import prompt_ids
    from speedsim.model.weights import load_params

    params = load_params(workload) if params is None else params
    g = workload.generation
    return run_speed(params, workload.model, prompt_ids(g, workload.model.vocab_size),
                     g.new_tokens, workload.stages)

"""SPEED, executed: the pure schedule and the NumPy pipeline that must reproduce it.

Model (DESIGN §2). The N layers form G stages of E = N/G layers. Decode
execution k (k = 0 .. n-1, n = new_tokens - 1) takes generated token k, at
absolute position P + k, as input and produces token k + 1. Execution 0's
input is the prefill's token: certain. Every stage step, each in-flight
execution runs one stage; then

1. the oldest, if it just left the last stage, **commits**: its final
   prediction is token k + 1. If its successor (execution k + 1) was launched
   with a different token, every younger in-flight execution is **flushed**
   (work and KV entries discarded) and execution k + 1 restarts at stage 0 at
   the next stage step with the correct token;
2. otherwise the one that just left stage 0 has its early prediction (exit
   after layer E - 1) and its successor enters stage 0 at the next step,
   *speculatively*. (With G = 1 exit point and last layer coincide: nothing is
   speculative.)

Acceptance. ``accepted`` has one entry per generated token (length
new_tokens, aligned with ``GenerationRecord.accepted``): ``accepted[i]`` says
the early prediction of token i equalled its final prediction. Execution i
(i >= 1) is launched with the early prediction of token i, made by execution
i - 1, so ``accepted[i]`` decides whether it survives. ``accepted[0]`` (made by
the prefill) and ``accepted[n]`` (the last token launches nothing) are never
consulted. Chained speculation needs nothing more: an early prediction made
by a wrongly launched execution is flushed together with it before anyone
checks it, and after the restart the sequential pass's prediction applies.

Consequences: all accepted -> n + G - 1 stage steps, no flushes; none
accepted -> n·G steps; each miss costs G - 1 steps and flushes up to G - 1
executions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np

from speedsim.model.decoder import Dims, KVCache, embed, head, run_layer, run_layers
from speedsim.model.weights import Params

Status = Literal["committed", "flushed"]


@dataclass(frozen=True, slots=True)
class TokenExec:
    """One pass of one input token (all batch sequences) through the pipeline."""

    exec_id: int  # launch order (at most one launch per stage step)
    index: int  # decode index k: input is generated token k, at position P + k
    launch_step: int  # stage step at which it runs stage 0
    status: Status
    steps: tuple[int, ...]  # stage steps it occupied; it ran stage g at steps[g]
    speculative: bool  # launched on an early prediction (else on a committed token)

    @property
    def last_step(self) -> int:
        return self.steps[-1]


@dataclass(frozen=True, slots=True)
class FlushEvent:
    step: int  # stage step at whose end the mismatch was found
    index: int  # decode index of the mispredicted execution; it restarts at step + 1
    flushed: tuple[int, ...]  # exec ids discarded (in launch order)


@dataclass(frozen=True)
class Schedule:
    """A SPEED schedule: who runs which stage at every stage step."""

    stages: int  # G
    execs: tuple[TokenExec, ...]  # in launch (= exec_id) order
    # per stage step: (exec_id, stage) of every in-flight execution, stage ascending
    steps: tuple[tuple[tuple[int, int], ...], ...]
    flush_events: tuple[FlushEvent, ...]

    @property
    def n_steps(self) -> int:
        return len(self.steps)

    @property
    def launched(self) -> int:
        return len(self.execs)

    @property
    def flushes(self) -> int:
        """Mismatches detected (each flushes the younger in-flight executions)."""
        return len(self.flush_events)

    @property
    def committed(self) -> tuple[int, ...]:
        """Decode indices of committed executions, in commit order."""
        return tuple(e.index for e in sorted(self.execs, key=lambda e: e.last_step)
                     if e.status == "committed")


def _steps_table(execs: Sequence[TokenExec], stages: int, n_steps: int):
    """Per stage step, (exec_id, stage) of every in-flight execution, stage ascending."""
    table = np.full((n_steps, stages), -1, np.int64)  # [step, stage] -> exec_id
    if execs:
        lens = np.array([len(e.steps) for e in execs])
        first = np.cumsum(lens) - lens
        stage = np.arange(lens.sum()) - np.repeat(first, lens)
        step = np.repeat([e.launch_step for e in execs], lens) + stage
        table[step, stage] = np.repeat([e.exec_id for e in execs], lens)
    return tuple(tuple((i, g) for g, i in enumerate(row) if i >= 0) for row in table.tolist())


def derive_schedule(accepted: Sequence[bool], stages: int) -> Schedule:
    """The SPEED schedule implied by per-token acceptance alone, in O(new_tokens · G).

    ``accepted``: bool per generated token (length new_tokens >= 1), see the
    module docstring for which entries matter. ``stages``: G >= 1.
    """
    G = int(stages)
    if G < 1:
        raise ValueError(f"stages must be >= 1, got {stages}")
    acc = np.asarray(accepted, dtype=bool).ravel()
    if acc.size < 1:
        raise ValueError("accepted needs one entry per generated token (at least one)")
    n = acc.size - 1
    execs: list[TokenExec] = []
    flushes: list[FlushEvent] = []

    def launch(k: int, at: int, status: Status, until: int, spec: bool) -> int:
        execs.append(TokenExec(len(execs), k, at, status, tuple(range(at, until + 1)), spec))
        return len(execs) - 1

    prev = -1  # launch step of the committed execution k - 1
    for k in range(n):
        if k == 0 or G == 1 or acc[k]:
            at = prev + 1
            launch(k, at, "committed", at + G - 1, spec=k > 0 and G > 1)
        else:  # launched at prev+1 with a wrong token; found when k-1 commits at prev+G-1
            found = prev + G - 1
            ids = tuple(launch(k + j, prev + 1 + j, "flushed", found, spec=True)
                        for j in range(min(G - 1, n - k)))
            flushes.append(FlushEvent(found, k, ids))
            at = prev + G
            launch(k, at, "committed", at + G - 1, spec=False)
        prev = at
    n_steps = prev + G if n else 0
    return Schedule(G, tuple(execs), _steps_table(execs, G, n_steps), tuple(flushes))


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
    done: list[TokenExec] = []
    flushes: list[FlushEvent] = []
    log: list[tuple[tuple[int, int], ...]] = []
    flight: list[_Slot] = []  # oldest first
    pending: Optional[tuple[int, np.ndarray, bool]] = (0, tokens[:, 0], False) if n else None
    next_id, step = 0, 0

    carried: dict[int, np.ndarray] = {}

    def retire(slot: _Slot, status: Status) -> None:
        carried[slot.exec_id] = slot.token
        done.append(TokenExec(slot.exec_id, slot.index, slot.steps[0], status,
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

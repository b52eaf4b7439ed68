"""The SPEED schedule and the acceptance outcomes it follows (DESIGN §2).

A ``Schedule`` says, for every stage step, which token execution is in which
stage, and which executions a mismatch flushed. Two producers must agree on
it exactly: the pure derivation from acceptance alone
(``speedsim.strategies.speed_schedule.derive_schedule``) and the NumPy
pipeline's own bookkeeping (``speedsim.model.speed_exec.run_speed``).

Acceptance outcomes: a bool array with one entry per generated token
(length new_tokens): entry i says the early prediction of token i equalled its
final prediction. Entries 0 (made by the prefill) and new_tokens - 1 (launches
nothing) are never consulted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
import numpy.typing as npt

AcceptanceOutcomes = npt.NDArray[np.bool_]  # bool [new_tokens], see the module docstring

Status = Literal["committed", "flushed"]


@dataclass(frozen=True, slots=True)
class ScheduledExec:
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
    execs: tuple[ScheduledExec, ...]  # in launch (= exec_id) order
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


def steps_table(execs: Sequence[ScheduledExec], stages: int, n_steps: int):
    """Per stage step, (exec_id, stage) of every in-flight execution, stage ascending."""
    table = np.full((n_steps, stages), -1, np.int64)  # [step, stage] -> exec_id
    if execs:
        lens = np.array([len(e.steps) for e in execs])
        first = np.cumsum(lens) - lens
        stage = np.arange(lens.sum()) - np.repeat(first, lens)
        step = np.repeat([e.launch_step for e in execs], lens) + stage
        table[step, stage] = np.repeat([e.exec_id for e in execs], lens)
    return tuple(tuple((i, g) for g, i in enumerate(row) if i >= 0) for row in table.tolist())


# ---------------------------------------------------------------- draft-and-verify schedules
# (early-exit self-speculation and draft-model speculation, speedsim.model.spec_exec)

@dataclass(frozen=True, slots=True)
class VerifyStep:
    """One draft-and-verify turn."""

    start: int  # c: tokens 0..c were committed before it; input token c is at position P + c
    drafted: int  # k guesses; the verify pass has k + 1 rows
    accepted: int  # a <= k guesses accepted; the step commits a + 1 tokens
    catch_up: bool = False  # draft model only: its first pass also runs the previous last guess

    @property
    def committed(self) -> int:
        return self.accepted + 1

    @property
    def rejected(self) -> int:
        """Guesses whose draft and verify work was wasted."""
        return self.drafted - self.accepted


@dataclass(frozen=True)
class SpecSchedule:
    draft_tokens: int  # K
    steps: tuple[VerifyStep, ...]

    @property
    def drafted(self) -> int:
        return sum(s.drafted for s in self.steps)

    @property
    def accepted(self) -> int:
        return sum(s.accepted for s in self.steps)

    @property
    def mean_accepted_per_step(self) -> float:
        return self.accepted / len(self.steps) if self.steps else 0.0


def leading_true(values: Sequence[bool]) -> int:
    """Length of the all-true prefix."""
    bad = np.flatnonzero(~np.asarray(values, dtype=bool))
    return int(bad[0]) if bad.size else len(values)


def draft_count(draft_tokens: int, start: int, new_tokens: int) -> int:
    """k = min(K, T - 2 - c): guesses beyond the last generated token are never made."""
    return max(0, min(int(draft_tokens), new_tokens - 2 - start))

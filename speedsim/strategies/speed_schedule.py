"""The pure SPEED schedule: who runs which stage at every stage step, from acceptance alone.

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

Exit depth d1 (``speedsim.model.stages``): the early prediction comes after
stage d1 - 1, so a successor enters d1 steps after its predecessor and at
most ceil(G / d1) executions are in flight. All accepted -> d1·(n - 1) + G
steps; each miss costs G - d1 steps and flushes up to floor((G - 1) / d1)
executions. d1 = 1 is the schedule above.

Second proposal (depth d2, d1 < d2 < G): execution k - 1 makes a second
prediction of token k after stage d2 - 1. Where ``relaunch[k]`` (it differs
from the first), the executions launched on the first are flushed at the end
of that step and execution k restarts at the next one on the second
prediction; ``second_right[k]`` says whether that one survives (else it is
flushed when k - 1 commits, as a first miss is). Second proposals of
executions that are themselves flushed later are left out (they only change
work that is discarded: the NumPy pipeline, which acts on them, commits the
same executions at the same steps).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from speedsim.contracts.schedule import FlushEvent, Schedule, ScheduledExec, Status, steps_table

SecondOutcomes = tuple[np.ndarray, np.ndarray]  # (relaunch, second_right), bool [new_tokens]


def derive_schedule(accepted: Sequence[bool], stages: int, exit_depth: int = 1,
                    second_depth: Optional[int] = None,
                    second: Optional[SecondOutcomes] = None) -> Schedule:
    """The SPEED schedule implied by per-token acceptance alone, in O(new_tokens · G).

    ``accepted``: bool per generated token (length new_tokens >= 1), see the
    module docstring for which entries matter. ``stages``: G >= 1.
    ``exit_depth``: d1 in 1..G. ``second_depth`` and ``second``: the second
    proposal's depth d2 and its outcomes (both or neither).
    """
    G, d1 = int(stages), int(exit_depth)
    if G < 1 or not 1 <= d1 <= G:
        raise ValueError(f"need stages >= 1 and 1 <= exit_depth <= stages, got {stages}, "
                         f"{exit_depth}")
    if (second_depth is None) != (second is None):
        raise ValueError("second_depth and second outcomes come together")
    acc = np.asarray(accepted, dtype=bool).ravel()
    if acc.size < 1:
        raise ValueError("accepted needs one entry per generated token (at least one)")
    b = _Builder(acc.size - 1, G, d1)
    for k in range(b.n):
        if k == 0 or G == 1 or d1 == G:
            b.commit(k, b.prev + d1 if k else 0, spec=k > 0 and G > 1 and d1 < G)
        elif second is not None and second[0][k]:
            at = b.prev + second_depth
            b.flush_chain(k, b.prev + d1, at - 1)
            if second[1][k]:
                b.commit(k, at, spec=True)
            else:
                b.miss(k, at)
        elif acc[k]:
            b.commit(k, b.prev + d1, spec=True)
        else:
            b.miss(k, b.prev + d1)
    n_steps = b.prev + G if b.n else 0
    return Schedule(G, tuple(b.execs), steps_table(b.execs, G, n_steps), tuple(b.flushes))


class _Builder:
    """The executions and flushes so far; ``prev``: launch step of the last committed one."""

    def __init__(self, n: int, G: int, d1: int):
        self.n, self.G, self.d1 = n, G, d1
        self.execs: list[ScheduledExec] = []
        self.flushes: list[FlushEvent] = []
        self.prev = -d1  # so that execution 0 launches at step 0

    def launch(self, k: int, at: int, status: Status, until: int, spec: bool) -> int:
        self.execs.append(ScheduledExec(len(self.execs), k, at, status,
                                        tuple(range(at, until + 1)), spec))
        return len(self.execs) - 1

    def commit(self, k: int, at: int, spec: bool) -> None:
        self.launch(k, at, "committed", at + self.G - 1, spec)
        self.prev = at

    def flush_chain(self, k: int, first: int, found: int) -> None:
        """Executions k, k+1, ... launched at first, first + d1, ... up to step ``found``,
        flushed at its end."""
        count = min((found - first) // self.d1 + 1, self.n - k)
        ids = tuple(self.launch(k + j, first + j * self.d1, "flushed", found, spec=True)
                    for j in range(count))
        self.flushes.append(FlushEvent(found, k, ids))

    def miss(self, k: int, first: int) -> None:
        """Launched at ``first`` on a wrong token, found when k - 1 commits; restarts then."""
        found = self.prev + self.G - 1
        self.flush_chain(k, first, found)
        self.commit(k, found + 1, spec=False)

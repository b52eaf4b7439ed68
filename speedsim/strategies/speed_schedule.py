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
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from speedsim.contracts.schedule import FlushEvent, Schedule, ScheduledExec, Status, steps_table


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
    execs: list[ScheduledExec] = []
    flushes: list[FlushEvent] = []

    def launch(k: int, at: int, status: Status, until: int, spec: bool) -> int:
        execs.append(ScheduledExec(len(execs), k, at, status, tuple(range(at, until + 1)), spec))
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
    return Schedule(G, tuple(execs), steps_table(execs, G, n_steps), tuple(flushes))

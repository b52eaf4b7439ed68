"""The pure draft-and-verify schedule: verify steps from per-token acceptance alone.

Model: ``speedsim.model.spec_exec`` (whose NumPy runs must reproduce it).
Verify step at committed token c drafts k = min(K, T - 2 - c) guesses, accepts
the a leading right ones and commits a + 1 tokens; ``accepted[i]`` says the
draft's guess of token i, given the greedy prefix, is right. A separate draft
model (``catch_up``) is one guess behind after a full acceptance, so its next
step's first pass also runs that guess.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from speedsim.contracts.schedule import SpecSchedule, VerifyStep, draft_count, leading_true


def derive_spec_schedule(accepted: Sequence[bool], draft_tokens: int,
                         catch_up: bool = False) -> SpecSchedule:
    """The verify steps implied by per-token acceptance (``accepted[i]``: token i's guess
    is right given the greedy prefix). ``catch_up``: a separate draft model (see module)."""
    K = int(draft_tokens)
    if K < 1:
        raise ValueError(f"draft_tokens must be >= 1, got {draft_tokens}")
    acc = np.asarray(accepted, dtype=bool).ravel()
    T, c, steps = acc.size, 0, []
    while c < T - 1:
        k = draft_count(K, c, T)
        a = leading_true(acc[c + 1:c + 1 + k])
        behind = catch_up and k > 0 and bool(steps) and steps[-1].accepted == steps[-1].drafted > 0
        steps.append(VerifyStep(c, k, a, behind))
        c += a + 1
    return SpecSchedule(K, tuple(steps))


def expected_accepted(rate: float, draft_tokens: int) -> float:
    """E[a] for i.i.d. guesses right with probability α: Σ_{j=1..K} α^j = α(1 - α^K)/(1 - α)."""
    return float(sum(rate ** j for j in range(1, int(draft_tokens) + 1)))


def spec_report(sched: SpecSchedule, per_token_rate: Optional[float]) -> dict:
    """The verify-step figures a summary reports beside the generic speculation counts.

    ``mean_accepted_per_step``: measured ā (guesses accepted per verify step);
    ``expected_accepted_per_step``: E[a] for i.i.d. acceptance at ``per_token_rate``
    (the end-of-generation clamp of k ignored; None when no guess was checked);
    ``tokens_per_step`` = ā + 1.
    """
    n = max(len(sched.steps), 1)
    return {"draft_tokens": sched.draft_tokens, "verify_steps": len(sched.steps),
            "drafted": sched.drafted, "accepted_drafts": sched.accepted,
            "mean_accepted_per_step": sched.accepted / n,
            "expected_accepted_per_step": None if per_token_rate is None
            else expected_accepted(per_token_rate, sched.draft_tokens),
            "tokens_per_step": sched.accepted / n + 1.0}

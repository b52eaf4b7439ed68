"""Early-exit self-speculation (Draft & Verify; LayerSkip): plan of its verify steps.

The schedule (``derive_spec_schedule``: per verify step, where it starts, k
guesses, a accepted) comes from per-token acceptance alone — the same
function the NumPy run (``speedsim.model.spec_exec.run_early_exit_spec``) is
tested against. Verify step s at position p = P + c:

1. draft passes j = 0..k-1, one after the other: embed, layers 0..E-1 and the
   exit head (final norm + tied LM head) for the single row at p + j;
2. the verify pass: the last row (p + k) runs embed and layers 0..E-1; then
   layers E..N-1 and the final head run ONE fused item per op over all k + 1
   rows (the draft's KV and hidden states of layers 0..E-1 are reused).

Rows j <= a are committed executions (input token c + j), rows j > a carried
rejected guesses: their work is wasted. All of a step's commits happen when
its final head ends; the next step starts from it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.schedule import SpecSchedule, VerifyStep
from speedsim.model.spec_exec import exit_drafts
from speedsim.strategies.acceptance import Acceptance, acceptance
from speedsim.strategies.base import Outcome, RunContext, greedy_carried
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.common import chain, prefill
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import register
from speedsim.strategies.spec_schedule import derive_spec_schedule, spec_report
from speedsim.strategies.verify import Pass, fused_layers, head_layer

_KEY = "strategies.early_exit_spec"


@register("early_exit_spec")
class EarlyExitSpec:
    speculative = True
    lossless = True
    baseline = False

    def __init__(self, draft_tokens: int, exit_layers: int, acceptance: Acceptance,
                 ctx: Optional[RunContext] = None):
        self.K, self.E, self.acceptance, self.ctx = (
            int(draft_tokens), int(exit_layers), acceptance, ctx)
        self.schedule = derive_spec_schedule(acceptance.accepted, self.K)

    @classmethod
    def configure(cls, ctx: RunContext) -> "EarlyExitSpec":
        wl = ctx.workload
        cfg, E = wl.strategies.early_exit_spec, wl.exit_layers("early_exit_spec")
        drafts = exit_drafts(ctx.params, wl.model, ctx.record, E, wl.generation.sampled) \
            if ctx.numeric else None
        acc = acceptance(cfg.acceptance, wl.generation.new_tokens, drafts, f"{_KEY}.acceptance")
        return cls(cfg.draft_tokens, E, acc, ctx)

    def plan(self, inp: StrategyInput) -> Plan:
        return early_exit_plan(self.name, ItemBuilder(inp.placement), inp.index,
                               self.schedule, inp.n_layers, self.E, inp.prompt_tokens)

    def outcome(self, plan: Plan) -> Outcome:
        return spec_outcome(self.ctx, plan, self.schedule, self.acceptance)


def spec_outcome(ctx: Optional[RunContext], plan: Plan, schedule: SpecSchedule,
                 acc: Acceptance) -> Outcome:
    """A lossless draft-and-verify run: the committed tokens, and its verify-step figures."""
    committed = None if ctx is None or ctx.record is None else ctx.record.committed
    carried = None if ctx is None else greedy_carried(ctx, plan, acc.guesses)
    accepted = acc.accepted
    rate = float(np.mean(accepted[1:-1])) if accepted.size > 2 else None  # none checked
    return Outcome(committed, carried, accepted, acc.expected,
                   {"speculation": spec_report(schedule, rate)})


def step_execs(step: VerifyStep, first_id: int, P: int, firsts: list[int],
               last: int) -> list[TokenExec]:
    """The k + 1 executions of a verify step: rows j <= a commit when ``last`` ends."""
    return [TokenExec(first_id + j, "decode", step.start + j, P + step.start + j,
                      "committed" if j <= step.accepted else "flushed", firsts[j], last)
            for j in range(step.drafted + 1)]


def step_pass(step: VerifyStep, first_id: int, P: int, s: int, scope: str = "") -> Pass:
    """The k + 1 rows of step ``step`` (the s-th) as one fused pass."""
    rows = range(step.drafted + 1)
    return Pass(tuple(P + step.start + j for j in rows), tuple(first_id + j for j in rows),
                tuple(j > step.accepted for j in rows), s, scope)


def early_exit_plan(name: str, b: ItemBuilder, index: TraceIndex, sched: SpecSchedule,
                    n_layers: int, exit_layers: int, P: int) -> Plan:
    """Prefill, then every verify step of ``sched`` (see the module docstring)."""
    first, prev = prefill(b, index, n_layers, exec_id=0)
    execs = [TokenExec(0, "prefill", 0, 0, "committed", first, prev)]
    prefill_last = prev
    for s, step in enumerate(sched.steps):
        new, prev = _step(b, index, step, s, len(execs), n_layers, exit_layers, P, prev)
        execs += new
    return Plan(name, b.items, execs, prefill_last, launched=len(execs) - 1,
                flushes=sum(st.accepted < st.drafted for st in sched.steps))


def _step(b: ItemBuilder, index: TraceIndex, step: VerifyStep, s: int, first_id: int,
          N: int, E: int, P: int, dep: int) -> tuple[list[TokenExec], int]:
    """Draft passes, then the verify pass; returns the step's executions and last item."""
    pas = step_pass(step, first_id, P, s)
    firsts = []
    for j, pos in enumerate(pas.positions):  # 1. draft rows, then the verify's last row
        rows = list(index.ops("decode", pos, -1))
        for layer in range(E):
            rows += index.ops("decode", pos, layer)
        if j < step.drafted:
            rows += index.ops("decode", pos, head_layer(N))
        f, dep = chain(b, rows, dep, tokens=(pas.tokens[j],), wasted=pas.wasted[j], step=s,
                       label=f"t{pos} {'draft' if j < step.drafted else 'verify'} ")
        firsts.append(f)
    layers = list(range(E, N)) + [head_layer(N)]  # 2. the fused part of the verify pass
    _, last = fused_layers(b, index, pas, layers, [dep], f"t{pas.positions[0]}+{step.drafted}")
    return step_execs(step, first_id, P, firsts, last), last

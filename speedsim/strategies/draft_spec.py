"""Draft-model speculative decoding (Leviathan et al. 2023): plan of its verify steps.

A separate draft model, with its own trace and its own weight-residency keys
(scope ``draft``: its weights never pass for the target's), guesses and the
target verifies. Verify step s at position p = P + c:

1. draft passes j = 0..k-1, one after the other: the draft's embed, all its
   layers and its head for the row at p + j; after a full acceptance the
   first pass also carries the previous step's last guess (row p - 1, the
   catch-up) fused with it;
2. the verify pass: embed, all N target layers and the final head, ONE fused
   item per op over the k + 1 rows.

The draft's prefill runs beside the target's (no dependency between them);
it needs no head. Waste: as for early exit, rows j > a.
"""

from __future__ import annotations

from typing import Optional

import pandas as pd

from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.schedule import SpecSchedule, VerifyStep
from speedsim.model.spec_exec import model_drafts
from speedsim.model.weights import load_shape_params
from speedsim.strategies.acceptance import Acceptance, acceptance
from speedsim.strategies.base import Outcome, RunContext
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.common import chain, prefill
from speedsim.strategies.early_exit_spec import spec_outcome, step_execs, step_pass
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import register
from speedsim.strategies.spec_schedule import derive_spec_schedule
from speedsim.strategies.verify import Pass, fused_layers, head_layer
from speedsim.trace.shape_only import shape_only_trace

DRAFT = "draft"
_KEY = "strategies.draft_spec"


@register("draft_spec")
class DraftSpec:
    speculative = True
    lossless = True
    baseline = False

    def __init__(self, draft_tokens: int, draft_trace: pd.DataFrame, draft_layers: int,
                 acceptance: Acceptance, ctx: Optional[RunContext] = None):
        self.K, self.draft_trace, self.draft_layers = int(draft_tokens), draft_trace, draft_layers
        self.acceptance, self.ctx = acceptance, ctx
        self.schedule = derive_spec_schedule(acceptance.accepted, self.K, catch_up=True)

    @classmethod
    def configure(cls, ctx: RunContext) -> "DraftSpec":
        wl = ctx.workload
        cfg, g = wl.strategies.draft_spec, wl.generation
        dm = cfg.draft_model
        trace = shape_only_trace(dm, g.prompt_tokens, g.new_tokens, g.batch, ctx.bytes_per_element)
        drafts = None
        if ctx.numeric and dm.weights.source != "shape_only":
            params = load_shape_params(dm, g.prompt_tokens + g.new_tokens,
                                       f"{_KEY}.draft_model.weights")
            drafts = model_drafts(params, dm, ctx.record, g.sampled)
        acc = acceptance(cfg.acceptance, g.new_tokens, drafts, f"{_KEY}.acceptance")
        return cls(cfg.draft_tokens, trace, dm.n_layers, acc, ctx)

    def plan(self, inp: StrategyInput) -> Plan:
        return draft_spec_plan(self.name, ItemBuilder(inp.placement), inp.index,
                               TraceIndex(self.draft_trace), self.schedule, inp.n_layers,
                               self.draft_layers, inp.prompt_tokens)

    def outcome(self, plan: Plan) -> Outcome:
        return spec_outcome(self.ctx, plan, self.schedule, self.acceptance)


def draft_prefill(b: ItemBuilder, index: TraceIndex, n_layers: int) -> int:
    """The prompt through the draft's embed and layers, scoped to the draft's weights."""
    rows = list(index.ops("prefill", 0, -1))
    for layer in range(n_layers):
        rows += index.ops("prefill", 0, layer)
    return chain(b, rows, None, tokens=(0,), label="draft prefill ", scope=DRAFT)[1]


def draft_spec_plan(name: str, b: ItemBuilder, index: TraceIndex, draft_index: TraceIndex,
                    sched: SpecSchedule, n_layers: int, draft_layers: int, P: int) -> Plan:
    """Both prefills, then every verify step of ``sched`` (see the module docstring)."""
    draft_ready = draft_prefill(b, draft_index, draft_layers)
    first, prev = prefill(b, index, n_layers, exec_id=0)
    execs = [TokenExec(0, "prefill", 0, 0, "committed", first, prev)]
    prefill_last = prev
    for s, step in enumerate(sched.steps):
        deps = (prev, draft_ready) if s == 0 else (prev,)
        new, prev = _step(b, index, draft_index, step, s, len(execs), (n_layers, draft_layers),
                          P, deps)
        execs += new
    return Plan(name, b.items, execs, prefill_last, launched=len(execs) - 1,
                flushes=sum(st.accepted < st.drafted for st in sched.steps))


def _step(b: ItemBuilder, index: TraceIndex, draft_index: TraceIndex, step: VerifyStep, s: int,
          first_id: int, layers: tuple[int, int], P: int,
          deps: tuple[int, ...]) -> tuple[list[TokenExec], int]:
    """Draft passes, then the fused verify pass; the step's executions and last item."""
    N, Nd = layers
    pas = step_pass(step, first_id, P, s)
    firsts = []
    for j in range(step.drafted):  # 1. draft passes
        catch = step.catch_up and j == 0
        positions = (pas.positions[0] - 1,) * catch + (pas.positions[j],)
        one = Pass(positions, (pas.tokens[j],) * len(positions), (pas.wasted[j],) * len(positions),
                   s, DRAFT)
        f, last = fused_layers(b, draft_index, one, [-1, *range(Nd), head_layer(Nd)], deps,
                              f"t{pas.positions[j]} draft{' +catch-up' if catch else ''}")
        firsts.append(f)
        deps = (last,)
    f, last = fused_layers(b, index, pas, [-1, *range(N), head_layer(N)], deps,  # 2. verify
                           f"t{pas.positions[0]}+{step.drafted} verify")
    firsts.append(f)
    return step_execs(step, first_id, P, firsts, last), last


"""Sequential decoding: one token (× batch) at a time through all N layers.

Each decode execution starts when the previous one's final LM head has produced
its token; every weight is fetched again per token unless it is still resident
on chip (the accelerator decides that, not the strategy).
"""

from __future__ import annotations

from typing import Optional

from speedsim.strategies.base import Outcome, RunContext, greedy_carried
from speedsim.strategies.common import chain, prefill
from speedsim.contracts.plan import Plan, TokenExec
from speedsim.strategies.builder import ItemBuilder
from speedsim.strategies.registry import register
from speedsim.strategies.inputs import StrategyInput


@register("sequential")
class Sequential:
    speculative = False  # needs no acceptance outcomes
    lossless = True
    baseline = True  # speedups are measured against it

    def __init__(self, ctx: Optional[RunContext] = None):
        self.ctx = ctx

    @classmethod
    def configure(cls, ctx: RunContext) -> "Sequential":
        return cls(ctx)

    def outcome(self, plan: Plan) -> Outcome:
        if self.ctx is None or self.ctx.record is None:
            return Outcome(None, None)
        return Outcome(self.ctx.record.committed, greedy_carried(self.ctx, plan))

    def plan(self, inp: StrategyInput) -> Plan:
        builder = ItemBuilder(inp.placement)
        index = inp.index
        N, P = inp.n_layers, inp.prompt_tokens
        first, last = prefill(builder, index, N, exec_id=0)
        execs = [TokenExec(0, "prefill", 0, 0, "committed", first, last)]
        prefill_last = prev = last
        for k in range(inp.decode_executions):
            pos = P + k
            rows = list(index.ops("decode", pos, -1))
            for layer in range(N):
                rows += index.ops("decode", pos, layer)
            rows += index.ops("decode", pos, N)
            first, prev = chain(builder, rows, prev, tokens=(k + 1,), step=k,
                                label=f"t{pos} ")
            execs.append(TokenExec(k + 1, "decode", k, pos, "committed", first, prev))
        return Plan(self.name, builder.items, execs, prefill_last,
                    launched=inp.decode_executions)

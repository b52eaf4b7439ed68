"""The shallow-model baseline: the first E layers + the tied head, decoded sequentially.

Fast and lossy: it is the exit model alone, prefill included (E layers, then
the final norm and LM head). Its committed tokens are its own greedy ones, or
under sampling drawn from its own head with the target's uniforms
(``speedsim.model.spec_exec.run_shallow``), and the summary reports how many
differ from the target's.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from speedsim.contracts.plan import Plan, TokenExec
from speedsim.model.spec_exec import ShallowRun, run_shallow
from speedsim.strategies.base import Outcome, RunContext
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.common import chain
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import register
from speedsim.strategies.verify import head_layer


@register("shallow")
class Shallow:
    speculative = False
    lossless = False  # its tokens are the exit model's, not the target's
    baseline = False

    def __init__(self, exit_layers: int, run: Optional[ShallowRun] = None):
        self.E, self.run = int(exit_layers), run

    @classmethod
    def configure(cls, ctx: RunContext) -> "Shallow":
        E = ctx.workload.exit_layers("shallow")
        wl = ctx.workload
        run = run_shallow(ctx.params, wl.model, ctx.record, E, wl.generation.sampled) \
            if ctx.numeric else None
        return cls(E, run)

    def plan(self, inp: StrategyInput) -> Plan:
        return shallow_plan(self.name, ItemBuilder(inp.placement), inp.index,
                            inp.n_layers, self.E, inp.prompt_tokens, inp.decode_executions)

    def outcome(self, plan: Plan) -> Outcome:
        quality = {"exit_layers": self.E, "lossless": False, "differing_tokens": None,
                   "differing_fraction": None, "first_difference": None}
        if self.run is None:
            return Outcome(None, None, report={"quality": quality})
        tokens = self.run.tokens
        quality.update(differing_tokens=self.run.differing,
                       differing_fraction=self.run.differing / tokens.size,
                       first_difference=self.run.first_difference)
        carried = np.ascontiguousarray(tokens[:, :-1].T)  # execution k + 1 carries token k
        return Outcome(tokens, carried, report={"quality": quality})


def shallow_rows(index: TraceIndex, phase: str, position: int, n_layers: int,
                 exit_layers: int) -> list:
    """Embed, layers 0..E-1 and the head rows of one pass of the exit model."""
    rows = list(index.ops(phase, position, -1))
    for layer in range(exit_layers):
        rows += index.ops(phase, position, layer)
    return rows + list(index.ops(phase, position, head_layer(n_layers)))


def shallow_plan(name: str, b: ItemBuilder, index: TraceIndex, n_layers: int, exit_layers: int,
                 P: int, decode_executions: int) -> Plan:
    first, prev = chain(b, shallow_rows(index, "prefill", 0, n_layers, exit_layers), None,
                        tokens=(0,), label="prefill ")
    execs = [TokenExec(0, "prefill", 0, 0, "committed", first, prev)]
    prefill_last = prev
    for k in range(decode_executions):
        rows = shallow_rows(index, "decode", P + k, n_layers, exit_layers)
        first, prev = chain(b, rows, prev, tokens=(k + 1,), step=k, label=f"t{P + k} ")
        execs.append(TokenExec(k + 1, "decode", k, P + k, "committed", first, prev))
    return Plan(name, b.items, execs, prefill_last, launched=decode_executions)

"""SPEED: speculative pipelined execution over G stages (DESIGN §2).

The pure schedule (which execution is in which stage at each stage step, which
are flushed) comes from ``speedsim.strategies.speed_schedule.derive_schedule``,
the schedule the NumPy executor (``speedsim.model.speed_exec``) is tested
against. This module only turns it into work items:

- stage step s, layer step j: every in-flight execution in stage g runs layer
  g·L + j (L = N / G). Executions whose layers use the same weight set fuse
  their dense ops into one item (``m`` = executions × batch): the weights move
  once. Attention (score, softmax, value) stays per execution: each reads its
  own KV entries at its own layer.
- the execution leaving stage 0 gets the early head (final norm + tied LM head
  at layer L − 1); the one leaving the last stage gets the final head; when
  both happen in one stage step they fuse.
- an execution enters stage 0 once the prediction it carries exists: the early
  head of its predecessor, or — after a flush — its predecessor's final head.
- flushed executions' items stay in the DAG (the hardware did that work); their
  share is marked ``wasted_fraction``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from speedsim.contracts.oprow import OpRow
from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.schedule import Schedule
from speedsim.strategies.acceptance import Acceptance, speed_acceptance
from speedsim.strategies.base import Outcome, RunContext, greedy_carried
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.common import prefill, with_slots
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import register
from speedsim.strategies.speed_schedule import derive_schedule
from speedsim.trace.schema import ATTENTION_OPS

PER_EXECUTION_OPS = set(ATTENTION_OPS) | {"softmax"}


@dataclass
class _PlanState:
    """The SPEED planner's bookkeeping while it walks the stage steps.

    Decode executions are numbered after the prefill's (exec 0): schedule exec
    id i is plan exec id i + 1.
    """

    inp: StrategyInput
    sched: Schedule
    accepted: np.ndarray
    b: ItemBuilder
    index: TraceIndex
    prev: dict[int, int] = field(default_factory=dict)  # exec id -> last item of its chain
    first_item: dict[int, int] = field(default_factory=dict)
    pred_item: dict[int, int] = field(default_factory=dict)  # index k -> item making token k
    kv_writer: dict[tuple[int, int], int] = field(default_factory=dict)  # (k, layer) -> qkv
    wasted: dict[int, bool] = field(default_factory=dict)  # of the current step's executions
    step: int = 0

    @property
    def G(self) -> int:
        return self.sched.stages

    @property
    def L(self) -> int:
        """Layers per stage."""
        return self.inp.n_layers // self.G

    @property
    def P(self) -> int:
        return self.inp.prompt_tokens

    def k_of(self, e: int) -> int:
        return self.sched.execs[e - 1].index

    def status(self, e: int) -> str:
        return self.sched.execs[e - 1].status


@register("speed")
class Speed:
    speculative = True  # plans from acceptance outcomes
    lossless = True
    baseline = False

    def __init__(self, stages: Optional[int] = None, acceptance: Optional[Acceptance] = None,
                 ctx: Optional[RunContext] = None):
        if acceptance is None:
            raise ValueError("SPEED plans from acceptance outcomes: pass acceptance "
                             "(Acceptance.given(bools) for outcomes given by hand)")
        self.stages, self.acceptance, self.ctx = stages, acceptance, ctx

    @classmethod
    def configure(cls, ctx: RunContext) -> "Speed":
        return cls(ctx.workload.stages, speed_acceptance(ctx.workload, ctx.record), ctx)

    def plan(self, inp: StrategyInput) -> Plan:
        accepted = self.acceptance.accepted
        st = _PlanState(inp, derive_schedule(accepted, self.stages or inp.stages), accepted,
                        ItemBuilder(inp.attention_on), inp.index)
        # 1. prefill, as in sequential decoding
        first, last = prefill(st.b, st.index, inp.n_layers, exec_id=0)
        st.pred_item[0] = last
        # 2. stage steps
        for s, step in enumerate(st.sched.steps):
            st.step = s
            _stage_step(st, [(e + 1, g) for e, g in step])
        execs = [TokenExec(0, "prefill", 0, 0, "committed", first, last)]
        execs += [TokenExec(e.exec_id + 1, "decode", e.index, st.P + e.index, e.status,
                            st.first_item[e.exec_id + 1], st.prev[e.exec_id + 1])
                  for e in st.sched.execs]
        return Plan(self.name, st.b.items, execs, last, launched=len(st.sched.execs),
                    flushes=st.sched.flushes)

    def outcome(self, plan: Plan) -> Outcome:
        ctx = self.ctx
        committed = None if ctx is None or ctx.record is None else ctx.record.committed
        carried = None if ctx is None else greedy_carried(ctx, plan, self.acceptance.guesses)
        return Outcome(committed, carried, self.acceptance.accepted, self.acceptance.expected)


def _stage_step(st: _PlanState, in_flight: list[tuple[int, int]]) -> None:
    """Embed the newcomer, run every in-flight execution's stage, then the heads."""
    st.wasted = {e: st.status(e) == "flushed" for e, _ in in_flight}
    for e, g in in_flight:
        if g == 0:  # entering the pipeline: embed the carried token
            k = st.k_of(e)
            rows = st.index.ops("decode", st.P + k, -1)
            st.first_item[e] = st.prev[e] = st.b.add(
                rows, deps=[st.pred_item[k]], tokens=(e,), wasted=[st.wasted[e]],
                step=st.step, label=f"t{st.P + k} embed")
    for j in range(st.L):
        groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for e, g in in_flight:
            layer = g * st.L + j
            groups[st.inp.layer_sets[layer]].append((e, layer))
        for members in groups.values():
            _layer(st, members)
    _heads(st, in_flight)


def _layer(st: _PlanState, members: list[tuple[int, int]]) -> None:
    """One layer for executions sharing its weight set: dense ops fused; attention per
    execution (each reads its own KV), as one batched item for all of them when the
    hardware issues attention batched (``attention_issue: batched``)."""
    rows_of = {e: with_slots(st.index.ops("decode", st.P + st.k_of(e), layer))
               for e, layer in members}
    for o, (row0, slot) in enumerate(rows_of[members[0][0]]):
        if row0.op in PER_EXECUTION_OPS and st.inp.attention_batched:
            _batched_attention(st, members, [rows_of[e][o] for e, _ in members])
            continue
        if row0.op in PER_EXECUTION_OPS:
            for e, _ in members:
                _attention(st, e, rows_of[e][o])
            continue
        rows = [rows_of[e][o][0] for e, _ in members]
        label = "+".join(f"t{r.position}" for r in rows) + f" L{members[0][1]} {row0.op}"
        item = st.b.add(rows, deps=[st.prev[e] for e, _ in members],
                        tokens=[e for e, _ in members], wasted=[st.wasted[e] for e, _ in members],
                        step=st.step, slot=slot, label=label)
        for e, layer in members:
            st.prev[e] = item
            if row0.op == "qkv":
                st.kv_writer[(st.k_of(e), layer)] = item


def _attention_deps(st: _PlanState, e: int, row: OpRow) -> list[int]:
    """An execution's attention op waits for its last item; its score also for the KV
    entry its predecessor wrote at this layer, when that one is still in flight."""
    deps = [st.prev[e]]
    older = (st.k_of(e) - 1, row.layer)
    if row.op == "attn_score" and older in st.kv_writer:
        deps.append(st.kv_writer[older])
    return deps


def _attention(st: _PlanState, e: int, slotted: tuple[OpRow, int]) -> None:
    """One execution's attention op as its own item."""
    row, slot = slotted
    st.prev[e] = st.b.add([row], deps=_attention_deps(st, e, row), tokens=(e,),
                          wasted=[st.wasted[e]], step=st.step, slot=slot,
                          label=f"t{row.position} L{row.layer} {row.op}")


def _batched_attention(st: _PlanState, members: list[tuple[int, int]],
                       slotted: list[tuple[OpRow, int]]) -> None:
    """The members' attention op as one item (one kernel): each still reads its own KV
    (bytes and MACs add up) and keeps its own waits."""
    rows = [row for row, _ in slotted]
    deps = [d for (e, _), row in zip(members, rows) for d in _attention_deps(st, e, row)]
    label = "+".join(f"t{r.position}" for r in rows) + f" L{rows[0].layer} {rows[0].op}"
    item = st.b.add(rows, deps=deps, tokens=[e for e, _ in members],
                    wasted=[st.wasted[e] for e, _ in members], step=st.step,
                    slot=slotted[0][1], label=label)
    for e, _ in members:
        st.prev[e] = item


def _heads(st: _PlanState, in_flight: list[tuple[int, int]]) -> None:
    """Early head for the execution leaving stage 0, final head for the one leaving the
    last stage; the tied weights make them one norm and one LM-head item."""
    N, P = st.inp.n_layers, st.P
    heads = []  # (exec, rows, kind)
    for e, g in in_flight:
        if g == 0:
            heads.append((e, st.index.ops("decode", P + st.k_of(e), st.L - 1, early_exit=True),
                          "early"))
        if g == st.G - 1:
            heads.append((e, st.index.ops("decode", P + st.k_of(e), N), "final"))
    if not heads:
        return
    for o in range(len(heads[0][1])):
        rows = [h[1][o] for h in heads]
        label = "+".join(f"t{r.position}{'e' if kind == 'early' else 'f'}"
                         for r, (_, _, kind) in zip(rows, heads)) + f" {rows[0].op}"
        item = st.b.add(rows, deps=[st.prev[e] for e, _, _ in heads],
                        tokens=[e for e, _, _ in heads],
                        wasted=[st.wasted[e] for e, _, _ in heads], step=st.step, label=label)
        for e, _, _ in heads:
            st.prev[e] = item
    _predictions(st, heads)


def _predictions(st: _PlanState, heads: list) -> None:
    """Which head item each successor's token comes from."""
    for e, _, kind in heads:
        k = st.k_of(e)
        if kind == "early":
            st.pred_item[k + 1] = st.prev[e]  # its successor launches on the early prediction
        elif k + 1 < st.inp.new_tokens and not bool(st.accepted[k + 1]):
            st.pred_item[k + 1] = st.prev[e]  # mismatch: the successor restarts on the final one

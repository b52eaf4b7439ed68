"""SPEED: speculative pipelined execution over G stages (DESIGN §2).

The pure schedule (which execution is in which stage at each stage step, which
are flushed) comes from ``speedsim.strategies.speed_schedule.derive_schedule``,
the schedule the NumPy executor (``speedsim.model.speed_exec``) is tested
against. This module only turns it into work items:

- stage step s, layer step j: every in-flight execution in stage g runs its
  stage's layer at slot j (``speedsim.model.stages``: layer g·L + j with
  L = N / G; a looped model's prelude and coda on slots of their own).
  Executions whose layers use the same weight set fuse their dense ops into
  one item (``m`` = executions × batch): the weights move once. Attention
  (score, softmax, value) stays per execution: each reads its own KV entries
  at its own layer.
- the execution leaving stage d1 − 1 (the exit depth; 1 by default) gets the
  early head, the one leaving stage d2 − 1 a second head when a second
  proposal is configured, the one leaving the last stage the final head. They
  are all the final norm + tied LM head + pick (the trace's layer-N head rows, as
  for every strategy), so the heads of one stage step fuse into one item per op.
- an execution enters stage 0 once the prediction it carries exists: the head
  its predecessor made in the step before (early, second, or — after a flush —
  final).
- flushed executions' items stay in the DAG (the hardware did that work); their
  share is marked ``wasted_fraction``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional

import numpy as np

from speedsim.config.errors import ConfigError
from speedsim.contracts.oprow import OpRow
from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.schedule import Schedule
from speedsim.model.stages import StageLayout
from speedsim.model.spec_exec import exit_guesses
from speedsim.strategies.acceptance import Acceptance, acceptance, speed_acceptance
from speedsim.strategies.base import Outcome, RunContext, greedy_carried
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.common import prefill, with_slots
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import register
from speedsim.strategies.speed_schedule import SecondOutcomes, derive_schedule
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
    layout: StageLayout
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

    @cached_property
    def launches(self) -> set[tuple[int, int]]:
        """(decode index, launch step) of every execution."""
        return {(e.index, e.launch_step) for e in self.sched.execs}

    @cached_property
    def layers(self) -> list[tuple[tuple[int, int], ...]]:
        """Per stage: its (slot, layer) pairs."""
        return [self.layout.stage_layers(g) for g in range(self.G)]

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

    def __init__(self, layout: StageLayout, acceptance: Optional[Acceptance] = None,
                 ctx: Optional[RunContext] = None, second: Optional[SecondOutcomes] = None):
        """``layout``: the stages, exit depth and second-proposal depth (the one source of G);
        ``acceptance``: what the schedule follows (``Acceptance.given(bools)`` for outcomes
        given by hand); ``second``: the second proposal's outcomes when
        ``layout.second_depth`` is set."""
        if acceptance is None:
            raise ValueError("SPEED plans from acceptance outcomes: pass acceptance "
                             "(Acceptance.given(bools) for outcomes given by hand)")
        self.layout, self.acceptance, self.ctx, self.second = layout, acceptance, ctx, second

    @classmethod
    def configure(cls, ctx: RunContext) -> "Speed":
        wl, rec = ctx.workload, ctx.record
        acc = speed_acceptance(wl, rec)
        layout = StageLayout.of(wl)
        second = None if layout.second_depth is None else \
            second_outcomes(ctx, layout, acc.accepted)
        return cls(layout, acc, ctx, second)

    def schedule(self, accepted: np.ndarray) -> Schedule:
        lay = self.layout
        return derive_schedule(accepted, lay.stages, lay.exit_depth, lay.second_depth,
                               self.second)

    def plan(self, inp: StrategyInput) -> Plan:
        st = _PlanState(inp, self.schedule(self.acceptance.accepted), self.layout,
                        ItemBuilder(inp.placement), inp.index)
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
        acc = self.acceptance
        carried = None if ctx is None else greedy_carried(ctx, plan, acc.guesses)
        return Outcome(committed, carried, acc.accepted, acc.expected, self._second_report())

    def _second_report(self) -> dict:
        """Second proposals along the committed chain (proposals 1 .. n - 1, as the schedule
        consults them): restarts, and restarts whose token was right."""
        if self.second is None:
            return {}
        relaunch, right = (np.asarray(v, bool)[1:-1] for v in self.second)
        return {"speculation": {"second_restarts": int(relaunch.sum()),
                                "second_rescued": int((relaunch & right).sum())}}


def second_outcomes(ctx: RunContext, layout: StageLayout,
                    accepted: np.ndarray) -> SecondOutcomes:
    """(relaunch, second_right), bool [new_tokens], of the second proposals.

    Source ``model`` (the default): the greedy run's prediction after
    ``layout.second_exit_layer`` (teacher-forced on the greedy prefix) against the
    first (``record.early``) and the final one. Any other source says which second
    proposals are right; it is consulted where the first was rejected: a right second
    proposal differs from the wrong first one (a restart), a wrong one is taken to
    repeat it (no restart); where the first was right the second agrees."""
    wl, rec = ctx.workload, ctx.record
    src = wl.strategies.speed.second_acceptance
    key = "strategies.speed.second_acceptance"
    if src is None or src.source == "model":
        if rec is None:
            raise ConfigError("a second proposal from the model needs numeric weights",
                              key=key)
        second = exit_guesses(ctx.params, wl.model, rec, layout.second_exit_layer + 1)
        return (second != rec.early).any(axis=0), (second == rec.tokens).all(axis=0)
    right = acceptance(src, wl.generation.new_tokens, None, key).accepted
    return ~accepted & right, right


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
    at = [dict(st.layers[g]) for _, g in in_flight]  # per member: slot -> layer
    for j in range(st.layout.slots):
        groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
        for (e, _), layers in zip(in_flight, at):
            if j in layers:
                groups[st.inp.layer_sets[layers[j]]].append((e, layers[j]))
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


_HEAD_KINDS = {"early": "e", "second": "s", "final": "f"}


def _head_kinds(st: _PlanState, g: int) -> list[str]:
    """The heads an execution leaving stage ``g`` gets."""
    lay = st.layout
    kinds = ["early"] if g == lay.exit_depth - 1 else []
    if lay.second_depth is not None and g == lay.second_depth - 1:
        kinds.append("second")
    return kinds + (["final"] if g == st.G - 1 else [])


def _heads(st: _PlanState, in_flight: list[tuple[int, int]]) -> None:
    """Early (and second) heads for the executions leaving the exit stages, the final head
    for the one leaving the last stage: all the trace's layer-N head rows (final norm,
    tied LM head, pick), so the step's heads are one norm, one LM-head item and, where the
    hardware issues the pick as a kernel, one pick item (``speedsim.strategies.builder``)."""
    N, P = st.inp.n_layers, st.P
    heads = [(e, st.index.ops("decode", P + st.k_of(e), N), kind)  # (exec, rows, kind)
             for e, g in in_flight for kind in _head_kinds(st, g)]
    if not heads:
        return
    for o in range(len(heads[0][1])):
        rows = [h[1][o] for h in heads]
        label = "+".join(f"t{r.position}{_HEAD_KINDS[kind]}"
                         for r, (_, _, kind) in zip(rows, heads)) + f" {rows[0].op}"
        item = st.b.add(rows, deps=[st.prev[e] for e, _, _ in heads],
                        tokens=[e for e, _, _ in heads],
                        wasted=[st.wasted[e] for e, _, _ in heads], step=st.step, label=label)
        for e, _, _ in heads:
            st.prev[e] = item
    _predictions(st, heads)


def _predictions(st: _PlanState, heads: list) -> None:
    """Which head item each successor's token comes from: the one made in the step before
    its launch (early: launched on it; second: restarted on it; final: after a flush)."""
    for e, _, _ in heads:
        k = st.k_of(e)
        if (k + 1, st.step + 1) in st.launches:
            st.pred_item[k + 1] = st.prev[e]

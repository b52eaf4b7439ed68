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

from speedsim.strategies.common import prefill, with_slots
from speedsim.strategies.inputs import StrategyInput
from speedsim.contracts.plan import Plan, TokenExec
from speedsim.contracts.oprow import OpRow
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.registry import register
from speedsim.strategies.speed_schedule import derive_schedule
from speedsim.trace.schema import ATTENTION_OPS

PER_EXECUTION_OPS = set(ATTENTION_OPS) | {"softmax"}


@register("speed")
class Speed:
    name = "speed"
    speculative = True  # plans from acceptance outcomes

    def plan(self, inp: StrategyInput) -> Plan:
        assert inp.accepted is not None, "SPEED needs acceptance outcomes"
        G, N = inp.stages, inp.n_layers
        L = N // G
        sched = derive_schedule(inp.accepted, G)
        index = TraceIndex(inp.trace)
        b = ItemBuilder(inp.attention_on)
        P = inp.prompt_tokens

        # 1. prefill, as in sequential decoding
        first, last = prefill(b, index, N, exec_id=0)
        execs = {0: TokenExec(0, "prefill", 0, 0, "committed", first, last)}
        prefill_last = last

        prev: dict[int, int] = {}  # exec id -> last item of its chain
        first_item: dict[int, int] = {}
        pred_item: dict[int, int] = {0: prefill_last}  # decode index k -> item making its token
        kv_writer: dict[tuple[int, int], int] = {}  # (k, layer) -> qkv item of the live exec
        # decode executions are numbered after the prefill's (exec 0)
        status = {e.exec_id + 1: e.status for e in sched.execs}
        k_of = {e.exec_id + 1: e.index for e in sched.execs}

        # 2. stage steps
        for s, step in enumerate(sched.steps):
            in_flight = [(e + 1, g) for e, g in step]
            tokens = tuple(e for e, _ in in_flight)
            wasted = {e: status[e] == "flushed" for e, _ in in_flight}
            for e, g in in_flight:
                if g == 0:  # entering the pipeline: embed the carried token
                    k = k_of[e]
                    rows = index.ops("decode", P + k, -1)
                    first_item[e] = prev[e] = b.add(rows, deps=[pred_item[k]], tokens=(e,),
                                                    wasted=[wasted[e]], step=s,
                                                    label=f"t{P + k} embed")
            for j in range(L):
                groups: dict[int, list[tuple[int, int]]] = defaultdict(list)
                for e, g in in_flight:
                    layer = g * L + j
                    groups[inp.layer_sets[layer]].append((e, layer))
                for members in groups.values():
                    self._layer(b, index, members, P, k_of, prev, kv_writer, wasted, s)
            self._heads(b, index, in_flight, G, L, N, P, k_of, prev, pred_item, wasted, s,
                        inp)

        for e in sched.execs:
            i = e.exec_id + 1
            execs[i] = TokenExec(i, "decode", e.index, P + e.index, e.status, first_item[i], prev[i])
        return Plan(self.name, b.items, [execs[i] for i in sorted(execs)], prefill_last,
                    launched=len(sched.execs), flushes=sched.flushes)

    @staticmethod
    def _layer(b: ItemBuilder, index: TraceIndex, members: list[tuple[int, int]], P: int,
               k_of: dict[int, int], prev: dict[int, int],
               kv_writer: dict[tuple[int, int], int], wasted: dict[int, bool], s: int) -> None:
        """One layer for executions sharing its weight set: dense ops fused, attention not."""
        rows_of = {e: with_slots(index.ops("decode", P + k_of[e], layer)) for e, layer in members}
        n_ops = len(next(iter(rows_of.values())))
        for o in range(n_ops):
            row0, slot = rows_of[members[0][0]][o]
            if row0.op in PER_EXECUTION_OPS:
                for e, layer in members:
                    row: OpRow = rows_of[e][o][0]
                    deps = [prev[e]]
                    if row.op == "attn_score" and (k_of[e] - 1, layer) in kv_writer:
                        deps.append(kv_writer[(k_of[e] - 1, layer)])
                    prev[e] = b.add([row], deps=deps, tokens=(e,), wasted=[wasted[e]], step=s,
                                    slot=slot, label=f"t{row.position} L{layer} {row.op}")
                continue
            rows = [rows_of[e][o][0] for e, _ in members]
            label = "+".join(f"t{r.position}" for r in rows) + f" L{members[0][1]} {row0.op}"
            item = b.add(rows, deps=[prev[e] for e, _ in members], tokens=[e for e, _ in members],
                         wasted=[wasted[e] for e, _ in members], step=s, slot=slot, label=label)
            for e, layer in members:
                prev[e] = item
                if row0.op == "qkv":
                    kv_writer[(k_of[e], layer)] = item

    @staticmethod
    def _heads(b: ItemBuilder, index: TraceIndex, in_flight: list[tuple[int, int]], G: int,
               L: int, N: int, P: int, k_of: dict[int, int], prev: dict[int, int],
               pred_item: dict[int, int], wasted: dict[int, bool], s: int,
               inp: StrategyInput) -> None:
        """Early head for the execution leaving stage 0, final head for the one leaving the
        last stage; the tied weights make them one norm and one LM-head item."""
        heads = []  # (exec, rows, kind)
        for e, g in in_flight:
            if g == 0:
                heads.append((e, index.ops("decode", P + k_of[e], L - 1, early_exit=True), "early"))
            if g == G - 1:
                heads.append((e, index.ops("decode", P + k_of[e], N), "final"))
        if not heads:
            return
        n_ops = len(heads[0][1])
        for o in range(n_ops):
            rows = [h[1][o] for h in heads]
            item = b.add(rows, deps=[prev[e] for e, _, _ in heads], tokens=[e for e, _, _ in heads],
                         wasted=[wasted[e] for e, _, _ in heads], step=s,
                         label="+".join(f"t{r.position}{'e' if kind == 'early' else 'f'}"
                                        for r, (_, _, kind) in zip(rows, heads)) + f" {rows[0].op}")
            for e, _, _ in heads:
                prev[e] = item
        for e, _, kind in heads:
            k = k_of[e]
            if kind == "early":
                pred_item[k + 1] = prev[e]  # its successor launches on the early prediction
            elif k + 1 < inp.new_tokens and not bool(inp.accepted[k + 1]):
                pred_item[k + 1] = prev[e]  # mismatch: the successor restarts on the final one

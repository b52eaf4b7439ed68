"""Strategies: registry, plan structure, fusion, and the conservation of work.

Plans are checked against the trace they came from: every MAC of every
committed execution is in the plan exactly once, flushed work is extra and
marked, and SPEED fuses exactly the executions that share a weight set.
"""

import numpy as np
import pytest

from speedsim.config.hw import placement
from speedsim.config.errors import ConfigError
from speedsim.model.sharing import shape_layer_sets
from speedsim.strategies.speed_schedule import derive_schedule
from speedsim.strategies.acceptance import Acceptance
from speedsim.strategies.inputs import StrategyInput
from speedsim.model.stages import StageLayout
from speedsim.strategies.registry import get_strategy, register, strategy_names
from speedsim.strategies.speed import Speed
from speedsim.trace import build_trace
from speedsim.trace.schema import GEMM_OPS


def _input(wl, attention_on="array", attention_batched=False, pick="fused"):
    trace = build_trace(wl, bytes_per_element=1)
    T = wl.generation.new_tokens
    return trace, StrategyInput(trace=trace, n_layers=wl.model.n_layers,
                                layer_sets=shape_layer_sets(wl.model),
                                prompt_tokens=wl.generation.prompt_tokens, new_tokens=T,
                                placement=placement(attention_on, pick=pick),
                                attention_batched=attention_batched)


def _planner(name, wl, accepted=None):
    """A strategy built by hand; SPEED's stages from the workload (``StageLayout.of``) and
    its acceptance given (default: every draft kept)."""
    if name != "speed":
        return get_strategy(name)()
    acc = np.ones(wl.generation.new_tokens, bool) if accepted is None else accepted
    return Speed(StageLayout.of(wl), Acceptance.given(acc))


def test_registry_lists_valid_names_on_unknown():
    assert strategy_names() == ["draft_spec", "early_exit_spec", "sequential", "shallow", "speed"]
    with pytest.raises(ConfigError, match="unknown strategy 'sped'; valid: draft_spec, "
                                          "early_exit_spec, sequential, shallow, speed"):
        get_strategy("sped")


def test_registry_rejects_duplicate_names():
    with pytest.raises(ValueError, match="already registered"):
        register("speed")(type("Other", (), {}))


def test_items_are_topological_and_ids_dense(tiny_workload):
    wl = tiny_workload()
    _, inp = _input(wl)
    for name in ("sequential", "speed"):
        plan = _planner(name, wl).plan(inp)
        assert [it.id for it in plan.items] == list(range(len(plan.items)))
        assert all(d < it.id for it in plan.items for d in it.deps)


@pytest.mark.parametrize("pick", ["fused", "kernel"])
def test_sequential_plan_has_every_trace_row_once(tiny_workload, pick):
    """Every row is an item, but a fused pick's (done in the LM head's drain: no item)."""
    wl = tiny_workload()
    trace, inp = _input(wl, pick=pick)
    plan = _planner("sequential", wl).plan(inp)
    rows = trace if pick == "kernel" else trace[trace["op"] != "pick"]
    assert len(plan.items) == len(rows)
    assert [it.op for it in plan.items] == list(rows["op"])
    assert sum(it.macs for it in plan.items) == rows["macs"].sum()
    assert sum(it.vector_ops for it in plan.items) == rows["vector_ops"].sum()
    assert all(it.wasted_fraction == 0 for it in plan.items)


def test_sequential_token_waits_for_previous_token(tiny_workload):
    wl = tiny_workload()
    _, inp = _input(wl)
    plan = _planner("sequential", wl).plan(inp)
    decode = [e for e in plan.execs if e.phase == "decode"]
    for prev, nxt in zip(decode, decode[1:]):
        assert plan.items[nxt.first_item].deps == (prev.last_item,)
        assert plan.items[prev.last_item].op == "lm_head"


def _committed_rows_macs(trace, plan, N):
    """MACs of every committed execution's rows, and its early head: the head rows
    (layer N) once more (SPEED computes it)."""
    total = trace[trace["phase"] == "prefill"]["macs"].sum()
    dec = trace[trace["phase"] == "decode"]
    for e in plan.execs:
        if e.phase == "decode" and e.status == "committed":
            rows = dec[dec["position"] == e.position]
            total += rows["macs"].sum() + rows[rows["layer"] == N]["macs"].sum()
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_speed_work_is_committed_plus_flushed(tiny_workload, seed):
    wl = tiny_workload(model__n_layers=4, strategies__speed__stages=2)
    acc = np.random.default_rng(seed).random(wl.generation.new_tokens) < 0.5
    trace, inp = _input(wl)
    plan = _planner("speed", wl, acc).plan(inp)
    useful = sum(it.macs * (1 - it.wasted_fraction) for it in plan.items)
    assert useful == pytest.approx(_committed_rows_macs(trace, plan, N=4))
    sched = derive_schedule(acc, 2)
    assert plan.launched == sched.launched and plan.flushes == sched.flushes
    flushed = [e for e in plan.execs if e.status == "flushed"]
    assert len(flushed) == sched.launched - (wl.generation.new_tokens - 1)
    wasted = sum(it.macs * it.wasted_fraction for it in plan.items)
    assert (wasted > 0) == bool(flushed)


def test_speed_fuses_shared_weights_once_per_stage_step(tiny_workload):
    """cycle sharing, G = N/U, all accepted: in steady state every dense GEMM carries
    G executions (m = G·B) and its weights once."""
    wl = tiny_workload(model__n_layers=4, strategies__speed__stages=2,
                       generation__batch=2)
    _, inp = _input(wl)
    plan = _planner("speed", wl).plan(inp)
    dense = [it for it in plan.items if it.phase == "decode" and it.op in GEMM_OPS
             and it.op != "lm_head"]
    fused = [it for it in dense if len(it.tokens) == 2]
    assert fused and all(it.m == 2 * 2 for it in fused)
    # fill and drain steps run one execution each: exactly 2·U·4 dense GEMMs are unfused
    assert len(dense) - len(fused) == 2 * 2 * 4
    seq = _planner("sequential", wl).plan(inp)
    w_speed = sum(it.weight_bytes for it in dense)
    w_seq = sum(it.weight_bytes for it in seq.items if it.phase == "decode"
                and it.op in GEMM_OPS and it.op != "lm_head")
    T = wl.generation.new_tokens - 1
    assert w_speed / w_seq == pytest.approx((T + 1) / (2 * T))


ATTENTION = ("attn_score", "softmax", "attn_value")


def test_speed_batched_attention_is_one_item_per_layer_step_with_every_tokens_kv(tiny_workload):
    """attention_issue: batched. The tokens in flight at one layer step share one item per
    attention op (one kernel), which reads each token's own KV: the bytes, MACs and the
    waits on earlier positions' KV writes are those of the per-token items together."""
    wl = tiny_workload(model__n_layers=4, strategies__speed__stages=2)
    plans = {b: _planner("speed", wl).plan(_input(wl, attention_batched=b)[1])
             for b in (False, True)}
    att = {b: [it for it in p.items if it.phase == "decode" and it.op in ATTENTION]
           for b, p in plans.items()}
    assert any(len(it.tokens) == 2 for it in att[True])
    assert all(len(it.tokens) == 1 for it in att[False])
    assert len(att[False]) - len(att[True]) == sum(len(it.tokens) - 1 for it in att[True])
    for field in ("kv_read_bytes", "macs", "elements", "count"):
        assert sum(getattr(it, field) for it in att[True]) == \
            sum(getattr(it, field) for it in att[False])
    for it in att[True]:
        if it.op == "attn_score" and len(it.tokens) == 2:
            assert it.n == max(i.n for i in att[False] if i.op == "attn_score"
                               and i.step == it.step and i.tokens[0] in it.tokens)
    dense = {b: [(it.op, it.m, it.tokens) for it in p.items if it.op not in ATTENTION]
             for b, p in plans.items()}
    assert dense[True] == dense[False]


def test_speed_without_sharing_never_fuses(tiny_workload):
    wl = tiny_workload(model__sharing={"scheme": "none"}, strategies__speed__stages=2)
    _, inp = _input(wl)
    plan = _planner("speed", wl).plan(inp)
    layer_items = [it for it in plan.items if it.phase == "decode" and it.op in GEMM_OPS
                   and it.op != "lm_head"]
    assert all(len(it.tokens) == 1 for it in layer_items)


def test_speed_early_and_final_heads_fuse(tiny_workload):
    wl = tiny_workload(model__n_layers=4, strategies__speed__stages=2)
    _, inp = _input(wl)
    plan = _planner("speed", wl).plan(inp)
    heads = [it for it in plan.items if it.phase == "decode" and it.op == "lm_head"]
    assert max(it.m for it in heads) == 2  # one early + one final row
    assert max(len(it.tokens) for it in heads) == 2


def test_successor_launches_on_early_prediction(tiny_workload):
    wl = tiny_workload(model__n_layers=4, strategies__speed__stages=2)
    _, inp = _input(wl)
    plan = _planner("speed", wl).plan(inp)
    dec = [e for e in plan.execs if e.phase == "decode"]
    for e in dec[1:]:
        (dep,) = plan.items[e.first_item].deps
        launcher = plan.items[dep]
        assert launcher.op == "lm_head"
        assert e.exec_id - 1 in launcher.tokens  # its predecessor's head


def test_weight_keys_are_shared_by_layers_with_one_weight_set(tiny_workload):
    """cycle sharing: layers 0 and 2 use set 0, so their GEMMs carry the same residency
    keys — in both strategies, or a weight buffer holding the set could never hit."""
    wl = tiny_workload(model__n_layers=4, strategies__speed__stages=2)
    _, inp = _input(wl)
    for name in ("sequential", "speed"):
        plan = _planner(name, wl).plan(inp)
        keys = {}
        for it in plan.items:
            if it.phase == "decode" and it.weight_key is not None and it.weight_key[1] >= 0:
                keys.setdefault(it.weight_key, set()).add(it.op)
        # 2 sets × (2 norms + 4 GEMMs) distinct keys, each for one op kind
        assert len(keys) == 2 * 6, (name, sorted(keys))
        assert all(len(ops) == 1 for ops in keys.values())

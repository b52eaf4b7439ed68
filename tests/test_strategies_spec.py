"""Plans of early-exit self-speculation, draft-model speculation and the shallow model.

Checked against the trace and the schedule they came from: which rows run,
fused how (one item per dense op of a verify pass, m = rows × batch), which
work is wasted, whose weights each item reads, and the conservation of MACs.
"""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import TINY
from speedsim.config.hw import placement
from speedsim.config.workload import ModelShape, Sharing, workload_from_dict
from speedsim.model.sharing import shape_layer_sets
from speedsim.strategies.acceptance import Acceptance
from speedsim.strategies.builder import ItemBuilder, TraceIndex
from speedsim.strategies.draft_spec import DRAFT, DraftSpec
from speedsim.strategies.early_exit_spec import EarlyExitSpec
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.shallow import Shallow
from speedsim.strategies.verify import merged
from speedsim.trace import build_trace
from speedsim.trace.schema import ATTENTION_OPS, GEMM_OPS
from speedsim.trace.shape_only import shape_only_trace

DENSE = ("qkv", "out_proj", "mlp_up", "mlp_down")


def _input(wl, batch=1):
    trace = build_trace(wl, bytes_per_element=1)
    return StrategyInput(trace=trace, n_layers=wl.model.n_layers,
                         layer_sets=shape_layer_sets(wl.model),
                         prompt_tokens=wl.generation.prompt_tokens,
                         new_tokens=wl.generation.new_tokens, placement=placement("array"))


def _acc(bits):
    return Acceptance.given([c == "1" for c in bits])


@pytest.fixture
def wl(tiny_workload):
    # N = 4, U = 2, P = 4, T = 12; early heads at SPEED's exit are not used here
    return tiny_workload(strategies__speed=None)


def _decode_macs(trace, positions, layers):
    rows = trace[(trace["phase"] == "decode") & trace["position"].isin(positions)
                 & trace["layer"].isin(layers)]
    return int(rows["macs"].sum())


def test_early_exit_verify_pass_is_one_item_per_dense_op(wl):
    # K = 3, E = 1; token 5 wrong: step 1 (at token 4) drafts 3 and accepts none
    acc = _acc("011110111111")
    s = EarlyExitSpec(3, 1, acc)
    plan = s.plan(_input(wl))
    assert [(x.start, x.drafted, x.accepted) for x in s.schedule.steps] == [
        (0, 3, 3), (4, 3, 0), (5, 3, 3), (9, 1, 1)]
    step1 = [it for it in plan.items if it.step == 1]
    # layers E..N-1 = 1..3: one item per dense op with m = k + 1 = 4 rows, 3/4 wasted
    fused = [it for it in step1 if it.op in DENSE and it.m == 4]
    assert len(fused) == 3 * 4
    assert all(it.wasted_fraction == pytest.approx(0.75) for it in fused)
    # attention of the verify pass: one item per op and layer, all 4 queries, KV read once
    att = [it for it in step1 if it.op in ATTENTION_OPS and it.m == 4]
    assert len(att) == 2 * 3
    P = wl.generation.prompt_tokens
    trace = _input(wl).trace
    longest = trace[(trace["position"] == P + 4 + 3) & (trace["op"] == "attn_score")
                    & (trace["layer"] == 1) & (trace["phase"] == "decode")]
    assert att[0].kv_read_bytes == int(longest["kv_read_bytes"].iloc[0])
    # draft passes: 3 single rows through layer 0 and the head, all but the first wasted
    drafts = [it for it in step1 if it.op == "lm_head" and it.m == 1]
    assert [it.wasted_fraction for it in drafts] == [0.0, 1.0, 1.0]


def test_early_exit_conserves_macs(wl):
    acc = _acc("011011101101")
    s = EarlyExitSpec(2, 2, acc)
    inp = _input(wl)
    plan = s.plan(inp)
    trace, P, N = inp.trace, inp.prompt_tokens, 4
    want = int(trace[trace["phase"] == "prefill"]["macs"].sum())
    for x in s.schedule.steps:
        pos = [P + x.start + j for j in range(x.drafted + 1)]
        want += _decode_macs(trace, pos, [-1, *range(N)])  # every row through every layer
        want += _decode_macs(trace, pos[:-1], [N]) + _decode_macs(trace, pos, [N])  # heads
    assert sum(it.macs for it in plan.items) == want
    # committed executions are every decode index once, in order
    committed = [e.index for e in plan.execs if e.phase == "decode" and e.status == "committed"]
    assert committed == list(range(wl.generation.new_tokens - 1))
    wasted = sum(it.macs * it.wasted_fraction for it in plan.items)
    flushed_rows = sum(x.drafted - x.accepted for x in s.schedule.steps)
    assert plan.launched == len(committed) + flushed_rows and wasted > 0


def test_every_item_waits_for_its_predecessor_and_steps_chain(wl):
    plan = EarlyExitSpec(3, 2, _acc("011001111100")).plan(_input(wl))
    assert all(d < it.id for it in plan.items for d in it.deps)
    # a verify step starts after the previous step's final head (one token at a time)
    firsts = {}
    for it in plan.items:
        firsts.setdefault(it.step, it)
    for s in range(1, max(firsts) + 1):
        assert firsts[s].deps and plan.items[firsts[s].deps[0]].step == s - 1


def _draft(wl, acc, K=2):
    g = wl.generation
    dshape = ModelShape.model_validate({**wl.model.model_dump(), "n_layers": 1,
                                        "sharing": Sharing().model_dump()})
    dtrace = shape_only_trace(dshape, g.prompt_tokens, g.new_tokens, g.batch, 1)
    return DraftSpec(K, dtrace, 1, acc), dtrace


def test_draft_model_weights_have_their_own_keys(wl):
    s, dtrace = _draft(wl, _acc("1" * 12))
    plan = s.plan(_input(wl))
    draft_keys = {it.weight_key for it in plan.items if it.weight_key and it.weight_key[0] == DRAFT}
    target_keys = {it.weight_key for it in plan.items if it.weight_key and it.weight_key[0] != DRAFT}
    assert draft_keys and target_keys and not draft_keys & target_keys
    # the draft's key is the target's key of the same op under the draft scope
    assert (DRAFT, "decode", 0, "qkv", 0) in draft_keys and ("decode", 0, "qkv", 0) in target_keys


def test_draft_catch_up_fuses_two_rows_after_a_full_acceptance(wl):
    s, _ = _draft(wl, _acc("1" * 12))
    plan = s.plan(_input(wl))
    # K = 2, all right: steps commit 3 each; every step after the first catches up
    assert [(x.start, x.drafted, x.catch_up) for x in s.schedule.steps] == [
        (0, 2, False), (3, 2, True), (6, 2, True), (9, 1, True)]
    step1_draft_qkv = [it for it in plan.items if it.step == 1 and it.op == "qkv"
                       and it.weight_key[0] == DRAFT]
    assert [it.m for it in step1_draft_qkv] == [2, 1]  # catch-up row fused with the first
    verify_qkv = [it for it in plan.items if it.step == 1 and it.op == "qkv"
                  and it.weight_key[0] != DRAFT]
    assert [it.m for it in verify_qkv] == [3] * 4  # k + 1 rows, all N = 4 layers


def test_draft_prefill_runs_beside_the_target_prefill(wl):
    s, _ = _draft(wl, _acc("0" * 12))
    plan = s.plan(_input(wl))
    pre = [it for it in plan.items if it.phase == "prefill"]
    roots = [it for it in pre if not it.deps]
    assert len(roots) == 2  # the draft's and the target's embed
    assert plan.prefill_last_item == max(it.id for it in pre if it.weight_key is None
                                         or it.weight_key[0] != DRAFT)


def test_shallow_runs_the_first_layers_and_the_head(wl):
    plan = Shallow(2).plan(_input(wl))
    layers_used = {it.label.split(" ")[0] for it in plan.items}
    assert plan.launched == 11 and all(it.wasted_fraction == 0 for it in plan.items)
    trace = _input(wl).trace
    per_token = trace[(trace["phase"] == "decode") & (trace["position"] == 4)
                      & trace["layer"].isin([-1, 0, 1, 4])]
    assert sum(it.macs for it in plan.items if it.step == 0) == int(per_token["macs"].sum())
    assert len(layers_used) == 12  # prefill + 11 decode positions


def test_merged_attention_reads_the_longest_kv_once(wl):
    index = TraceIndex(_input(wl).trace)
    rows = [index.ops("decode", p, 0)[2] for p in (4, 5, 6)]  # attn_score at layer 0
    (m,) = merged(rows)
    assert m.op == "attn_score" and m.m == 3 and m.kv_len == rows[-1].kv_len
    assert m.kv_read_bytes == rows[-1].kv_read_bytes
    assert m.macs == sum(r.macs for r in rows)
    dense = [index.ops("decode", p, 0)[1] for p in (4, 5)]
    assert merged(dense) == dense and dense[0].op in GEMM_OPS
    b = ItemBuilder(placement("array"))
    b.add(merged(dense), deps=[], tokens=[1, 2])
    assert b.items[0].m == 2 and b.items[0].weight_bytes == dense[0].weight_bytes


@settings(max_examples=25, deadline=None)
@given(st.lists(st.booleans(), min_size=2, max_size=14), st.integers(1, 5), st.integers(1, 3),
       st.booleans())
def test_any_schedule_plans_every_position_once_in_order(acc, K, E, draft):
    data = {**TINY, "generation": {**TINY["generation"], "new_tokens": len(acc)},
            "strategies": {"sequential": {}}}
    wl = workload_from_dict(data)
    s = _draft(wl, Acceptance.given(acc), K)[0] if draft else \
        EarlyExitSpec(K, E, Acceptance.given(acc))
    plan = s.plan(_input(wl))
    assert all(d < it.id for it in plan.items for d in it.deps)
    committed = [e.index for e in plan.execs if e.phase == "decode" and e.status == "committed"]
    assert committed == list(range(len(acc) - 1))
    flushed = sum(x.drafted - x.accepted for x in s.schedule.steps)
    assert plan.launched - len(committed) == flushed
    assert all(0.0 <= it.wasted_fraction <= 1.0 for it in plan.items)
    assert (sum(it.wasted_fraction > 0 for it in plan.items) > 0) == (flushed > 0)


def test_batched_attention_is_as_long_as_its_longest_row_in_any_order(wl):
    # one item for the attention of several tokens in flight (hw attention_issue: batched):
    # each GEMM spans the longest KV length, whichever row comes first
    index = TraceIndex(_input(wl).trace)
    for op_at, kv_dim in ((2, "n"), (4, "k")):  # attn_score (Q K^T), attn_value (P V)
        rows = [index.ops("decode", p, 0)[op_at] for p in (4, 5, 6)]
        assert rows[0].op == {"n": "attn_score", "k": "attn_value"}[kv_dim]
        longest = max(getattr(r, kv_dim) for r in rows)
        assert getattr(rows[0], kv_dim) < longest
        oldest_first, newest_first = ItemBuilder(placement("array")), ItemBuilder(placement("array"))
        oldest_first.add(rows, deps=[], tokens=[4, 5, 6])
        newest_first.add(rows[::-1], deps=[], tokens=[6, 5, 4])
        a, b = oldest_first.items[0], newest_first.items[0]
        assert getattr(a, kv_dim) == getattr(b, kv_dim) == longest
        assert (a.m, a.k, a.n, a.count, a.macs) == (b.m, b.k, b.n, b.count, b.macs)

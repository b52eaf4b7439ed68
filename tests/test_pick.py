"""The greedy pick after every LM head (``pick: fused | kernel``), on an exact tiny timeline.

The tiny model of ``test_speed_step`` (d_model 8, vocab 16, two layers over one weight set,
prompt 2, 4 new tokens) on the 8×8 ws array of ``test_metrics.hw`` with 8 vector lanes,
DRAM made nearly free, and a vector issue overhead o_v = 5 cycles (5 ns at 1 GHz).

With ``pick: kernel`` every LM head item is followed by one vector item that reads its R
rows' logits (R·16 elements, one byte each in int8) and writes R ids: o_v, then
⌈16·R · 1 cycle / 8 lanes⌉ = 2R cycles, i.e. 7 cycles for one row and 9 for two (a SPEED
step whose exit and final heads fuse). The next token's embedding waits for the ids, so
on these chains the pick is on the critical path and every later item moves by exactly
the picks before it. With ``pick: fused`` the pick rows make no item: the plans are those
of a trace without them.
"""

from __future__ import annotations

import copy

import pytest

import speedsim.trace.shape_only as shape_only
from conftest import TINY
from speedsim.api import simulate
from speedsim.config.hw import placement
from speedsim.config.workload import workload_from_dict
from speedsim.report import plots
from speedsim.serve.iteration import SpeedStep, Wave, work_items
from speedsim.serve.rows import RowBank
from test_metrics import hw

O_V = 5  # vector issue overhead, cycles
V = 16  # vocabulary
HALF = {"source": "bernoulli", "rate": 0.5, "seed": 0}
SPEED = {"stages": 2, "acceptance": HALF}
MODEL = {"d_model": 8, "n_heads": 1, "d_ff": 16, "n_layers": 2, "vocab_size": V,
         "sharing": {"scheme": "cycle", "unique_layers": 1}, "weights": {"source": "shape_only"}}
EVERY_STRATEGY = {
    "sequential": {}, "speed": SPEED, "shallow": {"exit_layer": 1},
    "early_exit_spec": {"draft_tokens": 2, "exit_layer": 1, "acceptance": HALF},
    "draft_spec": {"draft_tokens": 2, "acceptance": HALF,
                   "draft_model": {**MODEL, "n_layers": 1, "sharing": {"scheme": "none"}}}}


def workload(strategies=None, batch: int = 1):
    data = copy.deepcopy(TINY)
    data["model"] = copy.deepcopy(MODEL)
    data["generation"] = {"prompt_tokens": 2, "new_tokens": 4, "batch": batch, "seed": 0}
    data["strategies"] = strategies or {"sequential": {}, "speed": SPEED}
    return workload_from_dict(data)


def fast(pick: str, **vector):
    return hw(dram={"bandwidth_gb_s": 1000.0, "latency_ns": 0.0, "efficiency": 1.0},
              vector={"lanes": 8, "op_overhead_ns": float(O_V), **vector}, pick=pick)


@pytest.fixture(scope="module")
def runs():
    """{pick: simulate result} of sequential and SPEED on the tiny model."""
    wl = workload()
    return {pick: simulate(fast(pick), wl) for pick in ("fused", "kernel")}


def pick_cycles(rows: int) -> int:
    return O_V + -(-rows * V // 8)


def test_kernel_adds_one_pick_item_after_every_lm_head(runs):
    for name in ("sequential", "speed"):
        fused = runs["fused"].runs[name].plan.items
        kernel = runs["kernel"].runs[name].plan.items
        assert [it.op for it in kernel if it.op != "pick"] == [it.op for it in fused], name
        heads = [it for it in kernel if it.op == "lm_head"]
        picks = [it for it in kernel if it.op == "pick"]
        assert [p.deps for p in picks] == [(h.id,) for h in heads]
        assert all(kernel[p.id - 1].op == "lm_head" for p in picks)
        for h, p in zip(heads, picks):  # R rows: R·V logits in, R ids out, no weights
            assert (p.unit, p.vector_kind, p.weight_bytes) == ("vector", "pick", 0)
            assert (p.elements, p.vector_ops) == (h.m * V, h.m * V)
            assert (p.act_in_bytes, p.act_out_bytes) == (h.m * V, h.m)
            assert p.tokens == h.tokens and p.step == h.step


def test_sequential_pick_timeline(runs):
    """Sequential: one pick per token (prefill's included), 7 cycles each, right after its
    head; every item after k picks starts exactly 7·k cycles later than without them."""
    fused = runs["fused"].runs["sequential"]
    kernel = runs["kernel"].runs["sequential"]
    t = kernel.sim.items.set_index("item")
    picks = [it.id for it in kernel.plan.items if it.op == "pick"]
    assert len(picks) == 4
    for p in picks:
        head_end = int(t.loc[p - 1, "end_cycle"])
        assert tuple(int(t.loc[p, c]) for c in ("ready_cycle", "start_cycle", "compute_end_cycle",
                                                "end_cycle")) == (
            head_end, head_end + O_V, head_end + 7, head_end + 7)
    shifted = kernel.sim.items[kernel.sim.items["op"] != "pick"].reset_index(drop=True)
    before = shifted["item"].map(lambda i: sum(p < i for p in picks))
    for c in ("ready_cycle", "start_cycle", "end_cycle"):
        assert (shifted[c] - fused.sim.items[c]).tolist() == (7 * before).tolist(), c
    assert kernel.sim.total_cycles == fused.sim.total_cycles + 4 * 7
    # decode: the 3 decode tokens' picks (prefill's moves the first token, not the gaps)
    assert kernel.metrics["decode_time_s"] == pytest.approx(
        fused.metrics["decode_time_s"] + 3 * 7e-9, abs=1e-15)


def test_speed_pays_one_pick_per_stage_step_with_a_head(runs):
    """SPEED: one pick per stage step that has a head (the exit and final heads of a step
    fuse, so their pick too: 2 rows, 9 cycles), and the run grows by exactly their sum."""
    fused = runs["fused"].runs["speed"]
    kernel = runs["kernel"].runs["speed"]
    items = kernel.plan.items
    heads = [it for it in items if it.op == "lm_head"]
    picks = [it for it in items if it.op == "pick"]
    steps_with_head = sorted({it.step for it in heads})
    assert [p.step for p in picks] == steps_with_head  # one per step (prefill: step -1)
    assert [p.elements // V for p in picks] == [1, 1, 2, 2, 1]
    t = kernel.sim.items.set_index("item")
    assert [int(t.loc[p.id, "end_cycle"] - t.loc[p.id, "ready_cycle"]) for p in picks] == \
        [pick_cycles(p.elements // V) for p in picks] == [7, 7, 9, 9, 7]
    extra = sum(pick_cycles(p.elements // V) for p in picks)
    assert kernel.sim.total_cycles == fused.sim.total_cycles + extra == fused.sim.total_cycles + 39
    assert kernel.metrics["decode_time_s"] == pytest.approx(
        fused.metrics["decode_time_s"] + (extra - 7) * 1e-9, abs=1e-15)


def test_pick_energy_is_its_vector_ops(runs):
    """The picks' energy is that of vector ops: 16 per row at ``vector_op_pj`` 0.2 pJ."""
    for name, rows in (("sequential", 4), ("speed", 1 + 1 + 2 + 2 + 1)):
        f, k = runs["fused"].runs[name].metrics, runs["kernel"].runs[name].metrics
        assert k["vector_ops"] == f["vector_ops"] + rows * V
        assert k["energy_j"]["vector"] == pytest.approx(
            f["energy_j"]["vector"] + rows * V * 0.2e-12, rel=1e-12, abs=0)
        assert k["macs"] == f["macs"]


def test_fused_plans_are_those_of_a_trace_without_pick_rows(monkeypatch):
    """``pick: fused`` is today's behaviour: every strategy plans and replays exactly as on
    a trace whose heads are the final norm and the LM head alone."""
    wl = workload(EVERY_STRATEGY)
    with_rows = simulate(fast("fused"), wl)
    head_rows = shape_only._head_rows
    monkeypatch.setattr(shape_only, "_head_rows",
                        lambda dm, B: [r for r in head_rows(dm, B) if r[2] != "pick"])
    without = simulate(fast("fused"), wl)
    assert list(with_rows.runs) == list(without.runs)
    for name, run in with_rows.runs.items():
        assert run.plan.items == without.runs[name].plan.items, name
        assert run.sim.items.equals(without.runs[name].sim.items), name
    assert with_rows.summary["strategies"] == without.summary["strategies"]


def test_every_strategy_picks_after_every_head():
    """Early exit's draft heads and verify head, a draft model's heads, the shallow model's:
    with ``pick: kernel``, as many picks as LM heads, each right after its head."""
    result = simulate(fast("kernel"), workload(EVERY_STRATEGY))
    assert sorted(result.runs) == sorted(EVERY_STRATEGY)
    for name, run in result.runs.items():
        items = run.plan.items
        heads = [it.id for it in items if it.op == "lm_head"]
        assert heads and [it.deps for it in items if it.op == "pick"] == [(h,) for h in heads]


@pytest.mark.parametrize("pick, picks", [("fused", 0), ("kernel", 1)])
def test_a_served_speed_step_picks_once(pick, picks):
    """Serving builds its iterations through the same builder: a SPEED step with an exit
    and a final head (2 rows) gets one pick on a kernel config, none on a fused one."""
    wl = workload()
    bank = RowBank({"": wl.model}, 1)
    step = (SpeedStep(2, (0, 0), ((5,), (4,))),)
    items, _ = work_items(step, bank, placement("array", pick=pick), False)
    found = [it for it in items if it.op == "pick"]
    assert len(found) == picks
    if picks:
        assert items[-1] is found[0] and found[0].elements == 2 * V
        assert found[0].deps == (items[-2].id,) and items[-2].op == "lm_head"
    prefill = (Wave("", "prefill", (-1, 0, 1, 2), ((2, (0,)),)),)
    items, _ = work_items(prefill, bank, placement("array", pick=pick), False)
    assert [it.op for it in items][-2:] == (["lm_head", "pick"] if picks else ["norm", "lm_head"])


def test_the_timeline_names_the_greedy_pick(runs):
    for pick, shown in (("kernel", True), ("fused", False)):
        frame = plots.timeline_frame(runs[pick])
        ax = plots.plot_timeline(frame, "sequential").axes[0]
        legend = [t.get_text() for t in ax.get_legend().get_texts()]
        assert ("greedy pick" in legend) == shown and "LM head" in legend, legend


@pytest.mark.parametrize("pick_lanes, each", [(4, 9), (2, 13), (8, None)])
def test_a_row_of_logits_is_picked_on_its_own_lanes(pick_lanes, each):
    """``vector.pick_lanes``: a GPU picks each row in one thread block, so R rows run in
    ⌈R / (8 / pick_lanes)⌉ waves of ⌈16 / pick_lanes⌉ cycles. SPEED's picks have 1, 1, 2, 2
    and 1 rows: on 4 lanes a row (2 groups) each is o_v + 4 = 9 cycles, on 2 lanes (4 groups)
    o_v + 8 = 13, whatever its rows; on all 8 lanes (one group) a row per wave of 2 cycles,
    the all-lanes cost (7 and 9)."""
    run = simulate(fast("kernel", pick_lanes=pick_lanes), workload()).runs["speed"]
    t = run.sim.items.set_index("item")
    picks = [p for p in run.plan.items if p.op == "pick"]
    spans = [int(t.loc[p.id, "end_cycle"] - t.loc[p.id, "ready_cycle"]) for p in picks]
    assert spans == ([each] * 5 if each else [pick_cycles(p.elements // V) for p in picks])


def test_more_rows_than_lane_groups_pick_in_waves():
    """Three rows (batch 3) on 2 groups of 4 lanes: 2 waves of 4 cycles, o_v + 8 = 13 per
    pick, against o_v + ⌈48 / 8⌉ = 11 with the logits spread over every lane."""
    wl = workload({"sequential": {}}, batch=3)
    for config, each in ((fast("kernel", pick_lanes=4), 13), (fast("kernel"), 11)):
        run = simulate(config, wl).runs["sequential"]
        t = run.sim.items.set_index("item")
        assert {int(t.loc[p.id, "end_cycle"] - t.loc[p.id, "ready_cycle"])
                for p in run.plan.items if p.op == "pick"} == {each}

"""One SPEED stage step's exact timeline, every item's cycles asserted (DESIGN §2, §5).

A tiny model (d_model 8, one head, d_ff 16, two layers cycling over one weight
set) runs SPEED with G = 2 on the 8×8 ws array of ``test_metrics.hw`` with
DRAM made nearly free (1000 B/cycle, no latency), so every transfer here takes
one cycle and the timeline is the compute recurrence:

* array GEMM, weight-stationary (SCALE-Sim): ⌈k/8⌉·⌈n/8⌉ folds of 2·8 + 8 + m − 2
  cycles, minus 1: qkv (m 2, k 8, n 24) 3·24 − 1 = 71; attn_score (m 1, k 8) 22;
  out_proj (m 2, k 8, n 8) 23; mlp_up, mlp_down, lm_head (m 2, 16 weights cols
  or rows) 2·24 − 1 = 47;
* vector op: ⌈elements · cycles per element / 8 lanes⌉: norm 16·4/8 = 8, residual
  16·1/8 = 2, activation 32·2/8 = 8, softmax 5·4/8 → 3 and 4·4/8 = 2, embed 8·1/8 = 1;
* a norm's parameters stay resident (fetched once, in prefill) and an attention
  item's KV is prefetched once its deps have started, so both start when ready;
  the embedding gather streams its row after it is ready (+1 cycle); qkv writes
  its K and V after computing (+1 cycle); weights
  were prefetched and stay resident (one weight set), so GEMMs start when ready —
  or when the array is free: attn_score and attn_value of the older execution
  queue behind the younger one's.

Stage step 2 holds execution 3 (input position 4, launched on token 2's early
prediction, which missed: flushed) and execution 2 (position 3, committed) at
the next layer; items serving both are fused and half wasted.
"""

from __future__ import annotations

import copy

import pytest

from conftest import TINY
from speedsim.config.hw import placement
from speedsim.config.workload import workload_from_dict
from speedsim.model.sharing import shape_layer_sets
from speedsim.sim.engine import replay
from speedsim.strategies.inputs import StrategyInput
from speedsim.model.stages import StageLayout
from speedsim.strategies.acceptance import Acceptance
from speedsim.strategies.speed import Speed
from speedsim.trace import build_trace
from test_metrics import hw

STEP = 2
#  item op           tokens  wasted ready start compute_end end
EXPECTED = [
    (60, "embed", (3,), 1.0, 1242, 1243, 1244, 1244),
    (61, "norm", (3, 2), 0.5, 1244, 1244, 1252, 1252),
    (62, "qkv", (3, 2), 0.5, 1252, 1252, 1323, 1324),
    (63, "attn_score", (3,), 1.0, 1324, 1324, 1346, 1346),
    (64, "attn_score", (2,), 0.0, 1324, 1346, 1368, 1368),
    (65, "softmax", (3,), 1.0, 1346, 1346, 1349, 1349),
    (66, "softmax", (2,), 0.0, 1368, 1368, 1370, 1370),
    (67, "attn_value", (3,), 1.0, 1349, 1368, 1390, 1390),
    (68, "attn_value", (2,), 0.0, 1370, 1390, 1412, 1412),
    (69, "out_proj", (3, 2), 0.5, 1412, 1412, 1435, 1435),
    (70, "residual", (3, 2), 0.5, 1435, 1435, 1437, 1437),
    (71, "norm", (3, 2), 0.5, 1437, 1437, 1445, 1445),
    (72, "mlp_up", (3, 2), 0.5, 1445, 1445, 1492, 1492),
    (73, "act", (3, 2), 0.5, 1492, 1492, 1500, 1500),
    (74, "mlp_down", (3, 2), 0.5, 1500, 1500, 1547, 1547),
    (75, "residual", (3, 2), 0.5, 1547, 1547, 1549, 1549),
    (76, "norm", (3, 2), 0.5, 1549, 1549, 1557, 1557),
    (77, "lm_head", (3, 2), 0.5, 1557, 1557, 1604, 1604),
]


@pytest.fixture(scope="module")
def step_run():
    return speed_step_run()


def speed_step_run():
    """The tiny SPEED run: (plan, replay)."""
    data = copy.deepcopy(TINY)
    data["model"] = {"d_model": 8, "n_heads": 1, "d_ff": 16, "n_layers": 2, "vocab_size": 16,
                     "sharing": {"scheme": "cycle", "unique_layers": 1},
                     "weights": {"source": "shape_only"}}
    data["generation"] = {"prompt_tokens": 2, "new_tokens": 4, "batch": 1, "seed": 0}
    data["strategies"] = {"sequential": {}, "speed": {"stages": 2, "acceptance": {
        "source": "bernoulli", "rate": 1.0, "seed": 0}}}  # outcomes are passed below
    wl = workload_from_dict(data)
    base = StrategyInput(trace=build_trace(wl, bytes_per_element=1), n_layers=2,
                         layer_sets=shape_layer_sets(wl.model), prompt_tokens=2, new_tokens=4,
                         placement=placement("array"))
    missed = Acceptance.given([True, True, False, True])  # token 2's guess misses
    plan = Speed(StageLayout(n_layers=2, stages=2), missed).plan(base)
    fast = hw(dram={"bandwidth_gb_s": 1000.0, "latency_ns": 0.0, "efficiency": 1.0})
    return plan, replay(plan.items, fast)


def test_one_stage_step_timeline(step_run):
    plan, sim = step_run
    step = [it for it in plan.items if it.phase == "decode" and it.step == STEP]
    t = sim.items.set_index("item")
    got = [(it.id, it.op, it.tokens, it.wasted_fraction,
            *(int(t.loc[it.id, c]) for c in ("ready_cycle", "start_cycle", "compute_end_cycle",
                                               "end_cycle"))) for it in step]
    assert got == EXPECTED


# compute cycles of each item of the step (module docstring), whatever the DRAM model
COMPUTE_CYCLES = {"embed": 1, "norm": 8, "qkv": 71, "attn_score": 22, "attn_value": 22,
                  "out_proj": 23, "residual": 2, "mlp_up": 47, "act": 8, "mlp_down": 47,
                  "lm_head": 47}
SOFTMAX_CYCLES = {(3,): 3, (2,): 2}  # 5 and 4 scores of one head, 4 cycles each on 8 lanes


def test_each_item_computes_for_its_cost_function_cycles(step_run):
    plan, sim = step_run
    t = sim.items.set_index("item")
    for it in plan.items:
        if it.phase == "decode" and it.step == STEP:
            want = SOFTMAX_CYCLES[it.tokens] if it.op == "softmax" else COMPUTE_CYCLES[it.op]
            assert t.loc[it.id, "compute_end_cycle"] - t.loc[it.id, "start_cycle"] == want, it.op


def test_the_step_flushes_execution_3(step_run):
    plan, _ = step_run
    status = {e.exec_id: (e.position, e.status) for e in plan.execs if e.phase == "decode"}
    assert status[2] == (3, "committed") and status[3] == (4, "flushed")
    assert plan.flushes == 1

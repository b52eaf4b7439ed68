"""The competing strategies on the simulated hardware: closed forms and physical sanity.

Memory-bound edge variant: the shipped edge NPU with half its LPDDR bandwidth
(12.8 GB/s), running the trained model's shape (N = 8, U = 2 cycle sharing,
d = 256) shape-only, so acceptance is synthetic and exact.
"""

import pytest

from speedsim.api import simulate
from speedsim.config.hw import load_hardware
from speedsim.config.workload import workload_from_dict

N, E, K = 8, 2, 4
T = 61  # T - 1 = 60 tokens to commit = 12 verify steps of K + 1 at full acceptance
MODEL = {"d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": N, "vocab_size": 256,
         "sharing": {"scheme": "cycle", "unique_layers": 2}, "weights": {"source": "shape_only"}}
DRAFT = {"d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": 2, "vocab_size": 256,
         "weights": {"source": "shape_only"}}


def bernoulli(rate):
    return {"source": "bernoulli", "rate": rate, "seed": 0}


def run(rate, **strategies):
    wl = workload_from_dict({
        "name": "compare", "model": MODEL,
        "generation": {"prompt_tokens": 8, "new_tokens": T},
        "strategies": {"sequential": {}, **strategies}})
    hw = load_hardware("hw_configs/edge.yaml", [("dram.bandwidth_gb_s", 12.8)])
    return simulate(hw, wl).summary


@pytest.fixture(scope="module")
def full():
    return run(1.0, speed={"stages": 4, "acceptance": bernoulli(1.0)},
               early_exit_spec={"draft_tokens": K, "exit_layer": E, "acceptance": bernoulli(1.0)})


def test_early_exit_speedup_matches_the_closed_form(full):
    """Memory-bound, every guess accepted: a verify step commits K + 1 tokens and moves
    the weights of (K + 1) passes of E layers + the head (K drafts and the verify's last
    row) plus ONE fused pass of the other N - E layers; sequential moves N layers + the
    head per token. With h = head bytes / layer bytes (d·V / (4d² + 2·d·d_ff) = 1/12):

        S = (K + 1)(N + h) / ((K + 1)(E + h) + N - E)  = 2.46 for K = 4, E = 2, N = 8.

    KV traffic follows the same count (the fused pass reads each layer's KV once), so it
    does not move S.
    """
    d, V, F = 256, 256, 1024
    h = d * V / (4 * d * d + 2 * d * F)
    closed = (K + 1) * (N + h) / ((K + 1) * (E + h) + N - E)
    assert closed == pytest.approx(2.4619, abs=1e-4)
    s = full["speedup"]["early_exit_spec"]
    assert s == pytest.approx(closed, rel=0.10)
    assert full["strategies"]["sequential"]["array_utilization"] < 0.05  # memory-bound
    spec = full["strategies"]["early_exit_spec"]["speculation"]
    assert spec["verify_steps"] == 12 and spec["mean_accepted_per_step"] == K
    assert spec["flushed"] == 0 and spec["expected_accepted_per_step"] == K


def test_early_exit_is_below_speed_with_shared_fused_weights(full):
    """SPEED with G = N / U = 4 stages fetches the U = 2 sets once per stage step for up
    to 4 tokens: ≈ G·n / (n + G - 1); early exit re-reads its draft layers per guess."""
    speed, early = full["speedup"]["speed"], full["speedup"]["early_exit_spec"]
    assert early < speed
    h = 256 * 256 / (4 * 256 * 256 + 2 * 256 * 1024)
    # 60 tokens in 60 + G - 1 stage steps, each moving the 2 sets once and one fused head
    assert speed == pytest.approx(60 * (N + h) / (63 * (2 + h)), rel=0.10)


def test_draft_model_with_nothing_accepted_is_slower_than_sequential():
    s = run(0.0, draft_spec={"draft_model": DRAFT, "draft_tokens": K,
                             "acceptance": bernoulli(0.0)})
    d = s["strategies"]["draft_spec"]
    assert s["speedup"]["draft_spec"] < 1.0
    # every step drafts K guesses with the 2-layer draft (+ its head) and verifies K + 1
    # rows in one pass of the target for 1 token: (N + h) / (N + h + K (2 + h))
    h = 256 * 256 / (4 * 256 * 256 + 2 * 256 * 1024)
    assert s["speedup"]["draft_spec"] == pytest.approx((N + h) / (N + h + K * (2 + h)), rel=0.10)
    assert d["speculation"]["mean_accepted_per_step"] == 0
    assert d["speculation"]["flushed"] == d["speculation"]["drafted"]
    assert d["wasted_dram_bytes"] > 0.3 * d["dram_bytes"]


def test_early_exit_with_nothing_accepted_is_slower_than_sequential():
    s = run(0.0, early_exit_spec={"draft_tokens": K, "exit_layer": E,
                                  "acceptance": bernoulli(0.0)})
    # each token: K drafts of E layers + head, and a verify of E + (N - E) layers
    assert s["speedup"]["early_exit_spec"] < 1.0


def test_shallow_runs_e_of_n_layers():
    s = run(1.0, shallow={"exit_layer": E})
    # sequential moves N layers + head per token, shallow E layers + head
    h = 256 * 256 / (4 * 256 * 256 + 2 * 256 * 1024)
    assert s["speedup"]["shallow"] == pytest.approx((N + h) / (E + h), rel=0.10)
    assert s["strategies"]["shallow"]["quality"]["differing_tokens"] is None  # shape-only
    assert s["tokens_match"] is None and s["positions_match"] is True


def test_a_sweep_point_and_its_default_metrics_cover_any_strategies():
    from speedsim.config.loader import load_mapping
    from speedsim.sweep.point import simulate_point
    from speedsim.sweep.spec import default_metrics

    names = ["sequential", "early_exit_spec", "draft_spec", "shallow"]
    wl = {"name": "p", "model": MODEL, "generation": {"prompt_tokens": 8, "new_tokens": 8},
          "strategies": {"sequential": {}, "shallow": {"exit_layer": E},
                         "early_exit_spec": {"acceptance": bernoulli(0.5)},
                         "draft_spec": {"draft_model": DRAFT, "acceptance": bernoulli(0.5)}}}
    flat = simulate_point(load_mapping("hw_configs/edge.yaml"), wl, names)
    wanted = default_metrics(names)
    assert "speedup.sequential" not in wanted and "speedup.shallow" in wanted
    assert all(k in flat for k in wanted)
    assert flat["early_exit_spec.speculation.mean_accepted_per_step"] >= 0
    assert flat["tokens_match"] is None  # shape-only: no real token ids


def test_draft_model_at_full_acceptance_matches_its_closed_form():
    """K draft passes of the 2-layer draft (+ its head, the same size as the target's) and one
    fused verify pass per K + 1 tokens; the catch-up row rides in a draft pass that moves its
    weights anyway: S = (K + 1)(N + h) / (K (2 + h) + N + h) = 2.46."""
    s = run(1.0, draft_spec={"draft_model": DRAFT, "draft_tokens": K,
                             "acceptance": bernoulli(1.0)})
    h = 256 * 256 / (4 * 256 * 256 + 2 * 256 * 1024)
    closed = (K + 1) * (N + h) / (K * (2 + h) + N + h)
    assert s["speedup"]["draft_spec"] == pytest.approx(closed, rel=0.10)
    assert s["strategies"]["draft_spec"]["speculation"]["mean_accepted_per_step"] == K

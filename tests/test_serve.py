"""Serving under load (``speedsim.serve``): against ``speedsim run``, exact timelines of a
stub server, the metrics' formulas, and the memo against full replay."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speedsim.api import simulate
from speedsim.config.hw import load_hardware
from speedsim.config.traffic import Slo, traffic_from_dict
from speedsim.config.workload import load_workload
from speedsim.serve import per_request, serve
from speedsim.serve.iteration import SpeedStep, Wave, build, skeleton
from speedsim.serve.memo import Cost, IterationCosts, count_anchor, grid_points, within_tiles
from speedsim.serve.metrics import distribution, meets_slo, request_table, summary
from speedsim.serve.progress import Sequential
from speedsim.serve.requests import Request, make_requests
from speedsim.serve.rows import RowBank
from speedsim.serve.scheduler import Limits, run_server

EDGE = "hw_configs/edge.yaml"
STRATEGIES = "workloads/strategies.yaml"  # every strategy on the trained model, 32 tokens


def traffic(**keys):
    data = {"name": "t", "arrivals": {"process": "constant", "rate_rps": 1.0}, "requests": 1,
            "prompt_tokens": 8, "output_tokens": 4, "scheduler": {"max_batch": 1},
            "slo": {"ttft_s": 1.0, "tpot_s": 1.0}}
    return traffic_from_dict({**data, **keys})


@pytest.fixture(scope="module")
def edge_run():
    hw, wl = load_hardware(EDGE), load_workload(STRATEGIES)
    return hw, wl, simulate(hw, wl)


# -- against speedsim run -------------------------------------------------------------------

@pytest.mark.parametrize("exact, tolerance", [(True, 1e-4), (False, 5e-3)])
def test_vanishing_load_tpot_equals_run_at_batch_1(edge_run, exact, tolerance):
    """Requests far apart: every strategy's TPOT is ``speedsim run``'s at batch 1, within
    0.5 % through the memo, and within 0.01 % replaying every iteration (what remains:
    the run's first decode items may start before its prefill's last one ends)."""
    hw, wl, run = edge_run
    g = wl.generation
    t = traffic(arrivals={"process": "constant", "rate_rps": 0.01}, requests=2,
                prompt_tokens=g.prompt_tokens, output_tokens=g.new_tokens)
    result = serve(hw, wl, t, exact=exact)
    assert list(result.summary["strategies"]) == list(run.summary["strategies"])
    first = result.requests[result.requests["request"] == 0].set_index("strategy")
    for name, entry in result.summary["strategies"].items():
        ref = run.summary["strategies"][name]["time_per_token_s"]
        # request 0 draws the run's acceptance outcomes (request 1 its own)
        assert first.loc[name, "tpot_s"] == pytest.approx(ref, rel=tolerance), name
        assert entry["mean_batch"] == 1.0


def test_all_at_once_with_max_batch_b_equals_run_at_batch_b(tmp_path):
    """B requests at t = 0, max_batch B: one prefill of all, then the batch decodes
    together: the decode time is ``speedsim run``'s at batch B (SPEED with every early
    prediction right, so that every request follows the same schedule)."""
    B = 4
    hw = load_hardware(EDGE)
    over = [("strategies", {"sequential": {}, "speed": {"stages": 4, "acceptance": {
        "source": "bernoulli", "rate": 1.0, "seed": 0}}})]
    wl = load_workload(STRATEGIES, over)
    run = simulate(hw, load_workload(STRATEGIES, over + [("generation.batch", B)]))
    g = wl.generation
    trace = tmp_path / "burst.csv"
    trace.write_text("arrival_s,prompt_tokens,output_tokens\n"
                     + f"0,{g.prompt_tokens},{g.new_tokens}\n" * B)
    t = traffic_from_dict({"name": "burst", "arrivals": {"process": "trace", "path": str(trace)},
                           "scheduler": {"max_batch": B}, "slo": {"ttft_s": 1.0, "tpot_s": 1.0}})
    for exact, tolerance in ((True, 1e-4), (False, 1e-2)):
        table = serve(hw, wl, t, exact=exact).requests
        for name, rows in table.groupby("strategy"):
            assert (rows["first_token_s"] == rows["first_token_s"].iloc[0]).all()
            decode_s = rows["finish_s"].max() - rows["first_token_s"].max()
            ref = run.summary["strategies"][name]["decode_time_s"]
            assert decode_s == pytest.approx(ref, rel=tolerance), (name, exact)


# -- the scheduler, on a stub cost: every number by hand ------------------------------------

def stub_cost(it) -> Cost:
    """Every iteration, prefill or decode, takes one second (clock 1 Hz)."""
    return Cost(1.0, 0.0)


def stub_serve(requests, max_batch=1, max_prefill_tokens=None):
    stepper = Sequential("sequential", (-1, 0, 1))
    return run_server(stepper, requests, Limits(max_batch, max_prefill_tokens), stub_cost, 1.0)


def constant(n, rate, output_tokens=3, prompt=1):
    return [Request(i, i / rate, prompt, output_tokens) for i in range(n)]


def test_a_request_takes_its_prefill_and_one_iteration_per_further_token():
    served = stub_serve([Request(0, 0.5, 1, 3)])
    t = served.times[0]
    assert (t.admitted_s, t.first_token_s, t.finish_s) == (0.5, 1.5, 3.5)
    assert served.iterations == {"prefill": 1, "decode": 2}


def test_requests_join_at_the_next_boundary_and_prefill_first():
    """r0 alone at 0; r1 arrives during r0's prefill, joins at the boundary (1 s), its
    prefill pauses r0's decode; then both decode together."""
    served = stub_serve([Request(0, 0.0, 1, 3), Request(1, 0.2, 1, 3)], max_batch=2)
    got = [(t.admitted_s, t.first_token_s, t.finish_s) for t in served.times]
    assert got == [(0.0, 1.0, 4.0), (1.0, 2.0, 4.0)]
    assert served.batch_s == 4.0 and served.decode_s == 2.0  # two decode steps of two


def test_the_prefill_token_budget_splits_admissions():
    requests = [Request(i, 0.0, 4, 2) for i in range(3)]
    served = stub_serve(requests, max_batch=3, max_prefill_tokens=8)
    assert [t.first_token_s for t in served.times] == [1.0, 1.0, 2.0]


def test_throughput_rises_with_load_then_saturates_and_latency_grows_without_bound():
    """max_batch 1, 3 tokens: 3 s of service per request, capacity 1/3 request/s = 1 token/s.
    Below it every request is served on arrival (end-to-end 3 s, throughput 3N tokens over
    (N − 1)/rate + 3 s); above it request i finishes at 3(i + 1): its end-to-end time
    3(i + 1) − i/rate grows with i, and so does the p99 with N."""
    hw, slo = load_hardware(EDGE), Slo(ttft_s=10.0, tpot_s=10.0)

    def entry(n, rate):
        requests = constant(n, rate)
        served = stub_serve(requests)
        return summary(served, request_table(served, requests), hw, slo, 1)

    n = 20
    for rate in (0.1, 0.2, 0.25):
        e = entry(n, rate)
        assert e["e2e_s"]["p99"] == pytest.approx(3.0)
        assert e["throughput_tokens_per_s"] == pytest.approx(3 * n / ((n - 1) / rate + 3))
    over = [entry(n, 1.0) for n in (20, 40, 80)]
    for e, n in zip(over, (20, 40, 80)):
        assert e["throughput_tokens_per_s"] == pytest.approx(1.0 * 3 * n / (3 * n))  # 1 token/s
        # e2e_i = 3(i + 1) − i = 2i + 3 for i = 0..n−1: its p99 at i = 0.99 (n − 1)
        assert e["e2e_s"]["p99"] == pytest.approx(2 * 0.99 * (n - 1) + 3)
    assert over[0]["e2e_s"]["p99"] < over[1]["e2e_s"]["p99"] < over[2]["e2e_s"]["p99"]
    rising = [entry(n, r)["throughput_tokens_per_s"] for r in (0.05, 0.1, 0.2, 0.3, 1.0, 5.0)]
    assert rising == sorted(rising) and rising[-1] == pytest.approx(1.0)


# -- metric formulas ------------------------------------------------------------------------

def test_percentiles_are_numpys_linear_ones_of_the_finite_values():
    values = np.r_[np.arange(1.0, 101.0), np.nan]  # a one-token request has no TPOT
    d = distribution(values)
    assert d == {"p50": 50.5, "p90": pytest.approx(90.1), "p99": pytest.approx(99.01),
                 "mean": 50.5}


def test_summary_reads_each_percentile_of_its_own_column():
    """Hand-made table: TTFT 1..100 ms, TPOT 1..100 µs, end-to-end 1..100 s."""
    n = 100
    table = pd.DataFrame({"arrival_s": np.zeros(n), "output_tokens": np.full(n, 2),
                          "ttft_s": np.arange(1, n + 1) * 1e-3,
                          "tpot_s": np.arange(1, n + 1) * 1e-6,
                          "e2e_s": np.arange(1, n + 1) * 1.0, "queueing_s": np.zeros(n),
                          "finish_s": np.arange(1, n + 1) * 1.0})

    class Stub:
        batch_s, decode_s, dynamic_j, busy_s, iterations = 30.0, 10.0, 2.0, 10.0, {}

    hw = load_hardware(EDGE)
    e = summary(Stub(), table, hw, Slo(ttft_s=0.050, tpot_s=1.0), max_batch=4)
    assert (e["ttft_s"]["p99"], e["tpot_s"]["p90"], e["e2e_s"]["p50"]) == \
        (pytest.approx(99.01e-3), pytest.approx(90.1e-6), pytest.approx(50.5))
    assert e["throughput_tokens_per_s"] == pytest.approx(200 / 100.0)  # span: 0 .. 100 s
    assert e["goodput_rps"] == pytest.approx(50 / 100.0)  # TTFT ≤ 50 ms: requests 1..50
    assert (e["mean_batch"], e["batch_occupancy"]) == (3.0, 0.75)
    assert e["energy_per_token_j"] == pytest.approx((2.0 + hw.energy.static_power_w * 100) / 200)


def test_slo_boundaries_and_one_token_requests():
    table = pd.DataFrame({"ttft_s": [0.1, 0.1, 0.1000001, 0.1],
                          "tpot_s": [0.01, 0.0100001, 0.01, np.nan]})
    assert meets_slo(table, Slo(ttft_s=0.1, tpot_s=0.01)).tolist() == [True, False, False, True]


# -- requests and acceptance draws ----------------------------------------------------------

def test_constant_and_poisson_arrivals():
    c = make_requests(traffic(requests=4, arrivals={"process": "constant", "rate_rps": 4.0}))
    assert [r.arrival_s for r in c] == [0.0, 0.25, 0.5, 0.75]
    p = make_requests(traffic(requests=4000, arrivals={"process": "poisson", "rate_rps": 4.0}))
    gaps = np.diff([0.0] + [r.arrival_s for r in p])
    assert gaps.mean() == pytest.approx(0.25, rel=0.05) and gaps.std() == pytest.approx(0.25, rel=0.05)
    assert make_requests(traffic(requests=4000, arrivals={"process": "poisson", "rate_rps": 4.0})) == p


def test_length_distributions_are_seeded_and_bounded():
    t = traffic(requests=500, output_tokens={"dist": "uniform", "low": 3, "high": 5, "seed": 2},
                prompt_tokens={"dist": "lognormal", "median_tokens": 20.0, "sigma": 1.0,
                               "max_tokens": 60})
    rs = make_requests(t)
    assert {r.output_tokens for r in rs} == {3, 4, 5}
    prompts = np.array([r.prompt_tokens for r in rs])
    assert prompts.min() >= 1 and prompts.max() == 60 and 15 <= np.median(prompts) <= 25
    assert make_requests(t) == rs


def test_request_zero_draws_what_run_draws_and_others_their_own():
    wl = load_workload("workloads/llama7b_cycle_u8.yaml")
    acc = wl.strategies.speed.acceptance
    T = wl.generation.new_tokens
    run_draw = np.random.default_rng(acc.seed).random(T) < acc.rate
    draws = [per_request(acc, np.zeros(0, bool), Request(i, 0.0, 8, T)) for i in range(3)]
    assert (draws[0] == run_draw).all()
    assert not (draws[1] == draws[0]).all() and not (draws[2] == draws[1]).all()
    recorded = np.array([True, False, False, True, True])
    file_acc = type("FileAcceptance", (), {"source": "file"})()
    zero = per_request(file_acc, recorded, Request(0, 0.0, 8, 7))
    assert zero.tolist() == [True, False, False, True, True, True, False]  # read cyclically
    rotations = [np.resize(np.roll(recorded, -o), 7).tolist() for o in range(5)]
    assert per_request(file_acc, recorded, Request(3, 0.0, 8, 7)).tolist() in rotations


# -- the memo -------------------------------------------------------------------------------

def test_grid_points():
    assert grid_points(5.0, 8) == (5, 6) and grid_points(15.5, 8) == (15, 16)
    assert grid_points(100.0, 8) == (96, 104) and grid_points(1000.0, 8) == (960, 1024)


def test_count_anchor_uses_one_spacing_per_part_and_never_empties_a_part():
    one = (("", "decode", (0,), ((0,), (1,))),)
    assert count_anchor(one, (13, 3)) == [(12, 16), (0, 4)]  # 16 rows: spacing 4
    five = (("", "decode", (0,), tuple((j,) for j in range(5))),)
    assert count_anchor(five, (3, 3, 3, 3, 3)) == [(2, 4)] * 5
    assert count_anchor(five, (7, 6, 7, 7, 7)) == [(7, 8)] + [(0, 8)] * 4  # spacing 8


def test_skeleton_and_build_invert_each_other():
    it = (Wave("draft", "decode", (-1, 0), ((90, (-1, 0)), (90, (0,)), (90, (0,)))),
          SpeedStep(2, (0, 0), ((90, 90), ())))
    shape, counts = skeleton(it)
    assert counts == (1, 2, 2, 0)  # every SPEED stage counted, an empty one too
    assert build(shape, counts, 90) == it


@pytest.fixture(scope="module")
def edge_costs():
    hw, wl = load_hardware(EDGE), load_workload(STRATEGIES)
    bank = RowBank({"": wl.model}, hw.bytes_per_element)
    layers = (-1, *range(wl.model.n_layers), wl.model.n_layers)
    at = lambda *bases: (Wave("", "decode", layers, tuple((b, (0,)) for b in bases)),)
    return hw, bank, at


def test_memo_at_grid_points_is_the_replay(edge_costs):
    hw, bank, at = edge_costs
    memo, exact = IterationCosts(hw, bank), IterationCosts(hw, bank, exact=True)
    assert memo(at(96, 96)) == exact(at(96, 96))
    assert memo(at(95, 97)) == exact(at(96, 96))  # the mean base is what is keyed
    assert (memo.calls, memo.replays) == (2, 1)


def test_memo_between_grid_points_interpolates_over_the_cell_simplex(edge_costs):
    """Five requests at mean base 98: 5 is a grid point (spacing 1 below 8), so x alone
    is interpolated, 2/8 of the way from 96 to 104. Nine at 98: counts anchor 8, half-way
    to 10 (spacing 2); x a quarter of the way to 104: corners (8, 96), (10, 96), (10, 104)
    with weights 1/2, 1/4, 1/4."""
    hw, bank, at = edge_costs
    memo, exact = IterationCosts(hw, bank), IterationCosts(hw, bank, exact=True)
    lo, hi = exact(at(*[96] * 5)), exact(at(*[104] * 5))
    got = memo(at(97, 97, 98, 99, 99))
    assert got.cycles == pytest.approx(0.75 * lo.cycles + 0.25 * hi.cycles, rel=1e-12)
    corners = [exact(at(*[96] * 8)), exact(at(*[96] * 10)), exact(at(*[104] * 10))]
    got = memo(at(*[98] * 9))
    for field in ("cycles", "dynamic_j"):
        want = sum(w * getattr(c, field) for w, c in zip((0.5, 0.25, 0.25), corners))
        assert getattr(got, field) == pytest.approx(want, rel=1e-12)
    assert memo.replays == 2 + 3


def test_the_memo_never_interpolates_across_a_tile_of_rows():
    """h100's arrays take 16 rows per tile: a SPEED step of 4 × 4 rows and one of 4 × 5 differ
    by a fold, so counts whose cell spans 16 → 17 rows are taken exactly."""
    speed = (("speed", 4, (0,) * 8, (0, 1, 2, 3)),)
    cell = [(4, 8)] * 4
    assert within_tiles(speed, (5, 5, 5, 5), cell, 16) == [(5, 6)] * 4  # 16 .. 32 rows
    assert within_tiles(speed, (5, 5, 5, 5), cell, 32) == cell  # 16 .. 32 rows: one tile of 32
    verify = (("", "decode", (0,), ((0, 1, 2), (0,))),)  # 3 rows a group, then 1
    assert within_tiles(verify, (5, 1), [(4, 6), (0, 2)], 32) == [(4, 6), (0, 2)]  # 12 .. 20
    assert within_tiles(verify, (5, 1), [(4, 6), (0, 2)], 16) == [(5, 6), (1, 2)]

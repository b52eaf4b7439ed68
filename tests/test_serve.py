"""Serving under load (``speedsim.serve``): against ``speedsim run``, exact timelines of a
stub server, the metrics' formulas, and the memo against full replay."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from speedsim.api import simulate
from speedsim.config.hw import load_hardware
from speedsim.config.traffic import Slo, load_traffic, traffic_from_dict
from speedsim.config.workload import load_workload
from speedsim.serve import memo, per_request, serve
from speedsim.serve.iteration import SpeedStep, Wave
from speedsim.serve.keys import KV, coordinates, corner
from speedsim.serve.memo import Cost, IterationCosts, cell, corners, grid_points, tile_points
from speedsim.serve.metrics import distribution, meets_slo, request_table, summary
from speedsim.serve.progress import Sequential
from speedsim.serve.quanta import kv_items, kv_lengths, staircase
from speedsim.serve.requests import Request, make_requests
from speedsim.serve.rows import RowBank
from speedsim.serve.scheduler import Limits, retime, run_server

EDGE = "hw_configs/edge.yaml"
H100 = "hw_configs/h100.yaml"  # a GPU: per-item overheads, a per-op kernel stream, an L2
STRATEGIES = "workloads/strategies.yaml"  # every strategy on the trained model, 32 tokens
LLAMA7B = "workloads/llama7b_cycle_u8_strategies.yaml"  # the 7B cycle-shared shape, every strategy


def traffic(**keys):
    data = {"name": "t", "arrivals": {"process": "constant", "rate_rps": 1.0}, "requests": 1,
            "prompt_tokens": 8, "output_tokens": 4, "scheduler": {"max_batch": 1},
            "slo": {"ttft_s": 1.0, "tpot_s": 1.0}}
    return traffic_from_dict({**data, **keys})


@pytest.fixture(scope="module")
def runs():
    """``speedsim run`` of the trained model (batch 1) per hardware, computed once."""
    done = {}

    def run(hw_path: str):
        if hw_path not in done:
            hw, wl = load_hardware(hw_path), load_workload(STRATEGIES)
            done[hw_path] = hw, wl, simulate(hw, wl)
        return done[hw_path]
    return run


# -- against speedsim run -------------------------------------------------------------------

@pytest.mark.parametrize("hw_path, exact, tolerance", [
    (EDGE, True, 1e-4), (EDGE, False, 1e-3), (H100, True, 2e-3), (H100, False, 2e-3)])
def test_vanishing_load_tpot_equals_run_at_batch_1(runs, hw_path, exact, tolerance):
    """Requests far apart: every strategy's TPOT is ``speedsim run``'s at batch 1 (the
    issue's bound: 0.5 %), through the memo within 0.1 % on edge (measured ≤ 0.024 %)
    and 0.2 % on h100 (≤ 0.07 %), and replaying every iteration within 0.01 % on edge
    (what remains: the run's first decode items may start before its prefill's last one
    ends) and 0.2 % on h100, where the weights fit the L2: there the
    run's first draft pass reads the draft model's final norm for the first time (one
    DRAM latency), which a served iteration, costed after a copy of itself, finds
    resident. What this pins on h100: prefill's norm parameters resident for decode
    (``hw.l2.handed_on``), each part's L2 verdict taken in its iteration
    (``memo.verdicts``) and a SPEED step keyed by its occupied stages (``keys``); on the
    h100 before its calibration (no overheads, weights prefetched ahead) they were worth
    −0.34 % to −1.27 %, draft_spec −5.1 % and SPEED −9.9 % (docs/serving.md)."""
    hw, wl, run = runs(hw_path)
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


def test_tile_points_never_straddle_a_tile():
    """Rows on h100 (tiles of 16, a point every 8): a tile's first and last row are points,
    and a cell lies inside one tile (16 → 17 rows cost +19 % for a SPEED step on the h100
    before its calibration, where weight tiles were prefetched ahead)."""
    assert tile_points(0, 16, 8) == (0, 0) and tile_points(1, 16, 8) == (1, 1)
    assert tile_points(16, 16, 8) == (16, 16) and tile_points(17, 16, 8) == (17, 17)
    assert tile_points(20, 16, 8) == (17, 25) and tile_points(30, 16, 8) == (25, 32)
    assert tile_points(70.5, 32, 32) == (65, 96)  # a KV length: one cell per tile of columns
    assert tile_points(64.25, 32, 32) == (64, 64)  # between two tiles: rounded
    for v in np.arange(1, 100, 0.25):
        lo, hi = tile_points(v, 16, 8)
        assert lo <= v <= hi and (lo - 1) // 16 == (hi - 1) // 16 or lo == hi == round(v), v


def test_cells_follow_the_array_dimension_that_the_coordinate_fills():
    h100, edge = load_hardware("hw_configs/h100.yaml").array, load_hardware(EDGE).array
    assert cell("rows", 20, h100) == (17, 25, 3 / 8)  # tiles of 16 rows
    assert cell("rows", 40, edge) == (33, 41, 7 / 8) and cell("rows", 64, edge) == (64, 64, 0.0)
    assert cell("rows", 5, h100) == (5, 5, 0.0)  # the first tile: a point on every row
    assert cell("rows", 20.5, edge) == (20, 21, 0.5)
    assert cell("kv", 40, h100) == (33, 64, 7 / 31)  # output stationary: the scores' N, 32 columns
    assert cell("count", 13, h100) == (12, 14, 0.5)  # groups: 4 points per octave


def test_corners_weigh_multilinearly():
    got = dict(corners([(1, 5, 0.25), (10, 20, 0.5), (7, 7, 0.0)]))
    assert got == {(1, 10, 7): 0.375, (1, 20, 7): 0.375, (5, 10, 7): 0.125, (5, 20, 7): 0.125}
    assert corners([(3, 3, 0.0)]) == [((3,), 1.0)]


def test_keys_of_a_verify_wave_and_the_part_at_a_corner():
    """Rows, groups, the KV length of the batched attention (Σ over rows of base +
    offset + 1, over groups × t_max: 560 / 9) and the skew (mean base over the groups,
    270 / 3, less over the rows, 550 / 6); a corner fills groups of t_max rows first,
    then one with what is left, the others of one row, and sets every group at the base
    that gives that length, the
    groups of fewer rows Δ further for a skew (Δ = skew / (n_p / n − R_p / R))."""
    every_k = tuple(tuple(range(k + 1)) for k in range(5))
    w = Wave("", "decode", (0, 1), ((90, (0, 1, 2)), (100, (0, 1)), (80, (0,))), every_k)
    structure, coords = coordinates(w)
    assert coords == [("rows", 6), ("count", 3), ("kv", pytest.approx(560 / 9, rel=1e-15)),
                      ("skew", pytest.approx(90 - 550 / 6, rel=1e-15))]
    # (62 · 9 − (6 + 3 + 1)) / 6 = 91.3; 7 rows fill groups of 3 first: 3 + 3 + 1 rows,
    # (558 − 13) / 7 = 77.9
    assert corner(structure, (6, 3, 62, 0)).groups == ((91, (0, 1, 2)), (91, (0, 1)), (91, (0,)))
    assert corner(structure, (7, 3, 62, 0)).groups == ((78, (0, 1, 2)), (78, (0, 1, 2)), (78, (0,)))
    # skew 8: Δ = 8 / (2/3 − 3/6) = 48, the base (558 − 10 − 3 · 48) / 6 = 67.3
    assert corner(structure, (6, 3, 62, 8)).groups == ((67, (0, 1, 2)), (115, (0, 1)), (115, (0,)))
    assert coordinates(corner(structure, (6, 3, 62, 8)))[1][3] == ("skew", 8)
    full = Wave("", "decode", (0, 1), ((90, (0, 1, 2)), (80, (0, 1, 2))), every_k)
    assert coordinates(full)[1][3] == ("skew", 0)  # every group of t_max rows: no skew
    assert corner(coordinates(full)[0], (6, 2, 88, 8)) is None  # no shorter group to skew
    drafts = Wave("draft", "decode", (0, 1), w.groups, every_k)
    assert coordinates(drafts)[1][3] == ("skew", 0)  # a draft model's waves: never skewed
    assert corner(structure, (4, 3, 62, 0)) is None  # t_max = 3 and two more groups: 5 rows at least
    assert corner(structure, (10, 3, 62, 0)) is None  # more than 3 rows in a group
    assert corner(structure, (6, 3, 1, 0)) is None  # a row before position 1
    single = Wave("", "decode", (0,), ((90, (0,)), (95, (0,))))
    assert coordinates(single)[1] == [("rows", 2), ("kv", 93.5)]
    # one group: its merged attention reads its longest KV (positions 90..94: 95), the
    # length whose tiles its cost steps with; the corner there is the same group
    alone = Wave("", "decode", (0, 1), ((90, (0, 1, 2, 3, 4)),), every_k)
    structure, coords = coordinates(alone)
    assert coords == [("rows", 5), ("count", 1), ("kv", 95), ("skew", 0)]
    assert corner(structure, (5, 1, 95, 0)).groups == alone.groups


def test_keys_of_a_speed_step_and_of_a_prefill():
    step = SpeedStep(4, (0,) * 8, ((90,), (80, 70), (), (60,)))
    structure, coords = coordinates(step)
    assert coords == [("rows", 4), ("kv", 76.0)]
    assert structure[-1] == (True, True, False, True)  # the occupied stages
    assert corner(structure, (5, 76)).in_stage == ((75, 75), (75, 75), (), (75,))
    assert corner(structure, (2, 76)) is None  # three stages occupied: three executions at least
    middle = coordinates(SpeedStep(4, (0,) * 8, ((), (80, 70), (60,), ())))[0]
    assert corner(middle, (3, 71)).in_stage == ((), (70, 70), (70,), ())
    prefill = Wave("", "prefill", (-1, 0), ((64, (0,)), (20, (0,))))
    structure, coords = coordinates(prefill)
    assert coords == [] and corner(structure, ()) == prefill  # never interpolated


def test_a_corner_is_composed_from_a_few_layers_exactly():
    """A replay of two layers per part, each left-out layer costing what the last kept one
    added, is the replay of all of them, to the cycle (edge: the trained model)."""
    hw, wl = load_hardware(EDGE), load_workload(STRATEGIES)
    bank = RowBank({"": wl.model}, hw.bytes_per_element)
    costs = IterationCosts(hw, bank, depth=bank.depth)
    N = wl.model.n_layers
    step = (SpeedStep(wl.stages, (0,) * N, ((90, 91), (88,), (87,), (80, 84))[:wl.stages]),)
    verify = (Wave("", "decode", (-1, 0), ((90, (0,)),) * 3),
              Wave("", "decode", (*range(1, N), N), ((90, (0, 1)),) * 3))
    for it in (step, verify):
        whole, composed = costs.replayed(it), costs._composed(it)
        assert composed.cycles == whole.cycles
        assert composed.dynamic_j == pytest.approx(whole.dynamic_j, rel=1e-12)


def stubbed_memo(edge_costs, monkeypatch, cost) -> IterationCosts:
    """A memo whose every corner is a part and costs ``cost(point)`` cycles."""
    hw, bank, _ = edge_costs
    costs = IterationCosts(hw, bank, depth=bank.depth)
    monkeypatch.setattr(costs, "_at", lambda structure, point: Cost(cost(point), 0.0))
    monkeypatch.setattr(costs, "_valid", lambda structure, point_weight: True)
    return costs


def test_a_kv_cell_with_a_jump_is_halved_down_to_it(edge_costs, monkeypatch):
    """KV cell [97, 128] of a cost that jumps by 500 at 110: from its ``LINE_CHECK_USES``-th
    point on, halved while its middle misses the chord (112: chord 1,353.9, cost 1,612;
    104: 1,337.3 against 1,104; 100 on it), so KV 100.5 is read between 97 and 104."""
    costs = stubbed_memo(edge_costs, monkeypatch,
                         lambda point: 1000.0 + point[1] + (500 if point[1] >= 110 else 0))
    structure = (("decode", "", (0,), ((0,),), 1), None)
    coords, cells = [("rows", 4), ("kv", 100.5)], [(4, 4, 0.0), (97, 128, 3.5 / 31)]
    for _ in range(memo.LINE_CHECK_USES - 1):
        assert costs._refined(structure, coords, cells) == cells  # not yet checked
    assert costs._refined(structure, coords, cells) == [(4, 4, 0.0), (97, 104, 0.5)]
    assert costs._interpolated(structure, [(4, 4, 0.0), (97, 104, 0.5)]).cycles == 1100.5
    after = [("rows", 4), ("kv", 120.25)]  # past the jump: its half [112, 128], then [112, 120]...
    assert costs._refined(structure, after, [(4, 4, 0.0), (97, 128, 23.25 / 31)])[1][:2] == (112, 128)


def test_a_skew_steps_as_at_its_cells_lowest_corner(edge_costs, monkeypatch):
    """A verify wave's cell in (rows, groups, KV, skew): the rest multilinear at the skew's
    low end, plus w × the skew's step at the lowest corner (a cost with a KV × skew term
    gives that term's low-corner value, not its interpolation)."""
    cost = lambda p: 10.0 * p[0] + 100.0 * p[1] + p[2] + 3.0 * p[3] + 0.5 * p[2] * p[3]
    costs = stubbed_memo(edge_costs, monkeypatch, cost)
    structure = (("decode", "", (0,), ((0,), (0, 1)), 2), None)
    cells = [(17, 25, 0.5), (8, 10, 0.5), (97, 128, 0.25), (0, 8, 0.5)]
    got = costs._interpolated(structure, cells).cycles
    rest = 10 * 21 + 100 * 9 + 104.75  # at skew 0
    assert got == pytest.approx(rest + 0.5 * (3 * 8 + 0.5 * 97 * 8), rel=1e-12)


@pytest.fixture(scope="module")
def edge_costs():
    hw, wl = load_hardware(EDGE), load_workload(STRATEGIES)
    bank = RowBank({"": wl.model}, hw.bytes_per_element)
    layers = (-1, *range(wl.model.n_layers), wl.model.n_layers)
    at = lambda *bases: (Wave("", "decode", layers, tuple((b, (0,)) for b in bases)),)
    return hw, bank, at


def test_memo_at_grid_points_is_the_replay(edge_costs):
    """One request at 96 (KV 97: the first of a tile of 32); nine at mean 96 (9 rows: a
    point, as every row of the first tile of 32): the memo's cost is the replay of nine at 96."""
    hw, bank, at = edge_costs
    memo, exact = IterationCosts(hw, bank, depth=bank.depth), IterationCosts(hw, bank, exact=True)
    assert memo(at(96)) == exact(at(96))
    got, want = memo(at(*[95, 97] * 4, 96)), exact(at(*[96] * 9))
    assert got.cycles == want.cycles and got.dynamic_j == pytest.approx(want.dynamic_j, rel=1e-12)
    assert (memo.calls, memo.corners) == (2, 3)  # the first corner also replayed whole


def test_memo_between_grid_points_interpolates_over_the_cell(edge_costs):
    """37 requests at 100: rows half-way from 33 to 41 (a point every 8 rows past the first
    tile of 32), KV 101 4/31 of the way from 97 to 128: the four corners' replays weighed
    (1/2 · 27/31, 1/2 · 4/31, ...)."""
    hw, bank, at = edge_costs
    memo, exact = IterationCosts(hw, bank, depth=bank.depth), IterationCosts(hw, bank, exact=True)
    got = memo(at(*[100] * 37))
    want = {(n, b): exact(at(*[b] * n)) for n in (33, 41) for b in (96, 127)}
    w = {96: 27 / 31, 127: 4 / 31}
    for field in ("cycles", "dynamic_j"):
        expected = sum(0.5 * w[b] * getattr(c, field) for (n, b), c in want.items())
        assert getattr(got, field) == pytest.approx(expected, rel=1e-12)
    assert memo.corners == 4 + 1  # the first corner also replayed whole


def test_parts_and_their_boundaries_add_up_to_the_iteration():
    """A draft pass then a verify pass of the 7B shape on h100, both at grid points (one
    row, KV 128): each part alone is a corner's replay, and the iteration costs their sum
    plus each boundary's cycles, the whole replay to the cycle. With weights prefetched
    across kernels (``ahead``) and the pick fused into the LM head the parts alone miss it
    by 3,072 cycles; with a pick kernel ending each head (a row per SM: 10.6 µs at V 32,000) they
    add up (no boundary cycles), and in the shipped h100's kernel stream (``per_op``)
    nothing crosses a part's boundary: they add up."""
    for prefetch, pick, missed in (("ahead", "fused", 3072), ("ahead", "kernel", 0),
                                   ("per_op", "kernel", 0)):
        fused = [("vector.pick_lanes", None), ("vector.cycles_per_element.pick", 1.0)]
        hw = load_hardware(H100, [("weight_prefetch", prefetch), ("pick", pick),
                                  *(fused if pick == "fused" else [])])
        _parts_and_boundaries_add_up(hw, missed)


def _parts_and_boundaries_add_up(hw, missed: int) -> None:
    wl = load_workload("workloads/llama7b_cycle_u8_strategies.yaml")
    bank = RowBank({"": wl.model, "draft": wl.strategies.draft_spec.draft_model},
                   hw.bytes_per_element)
    N, Nd = wl.model.n_layers, wl.strategies.draft_spec.draft_model.n_layers
    it = (Wave("draft", "decode", (-1, *range(Nd), Nd), ((127, (0,)),)),
          Wave("", "decode", (-1, *range(N), N), ((127, (0,)),)))
    costs = IterationCosts(hw, bank, depth=bank.depth)
    whole = costs.replayed(it)
    assert costs(it) == Cost(whole.cycles, pytest.approx(whole.dynamic_j, rel=1e-12))
    alone = sum(costs.part(p, v).cycles for p, v in zip(it, costs.verdicts(it)))
    assert (costs.boundaries(it, costs.verdicts(it)).cycles, whole.cycles - alone) == (missed, missed)


def test_the_memo_is_unbiased_on_a_kv_staircase(monkeypatch):
    """On h100 (a KV read starts when its item issues) a decode wave's cost is a staircase
    in its KV bytes: each stream tile's transfer steps by one granule per DRAM channel
    (``serve.quanta``), and whole KV lengths, the grid's corners, sit on a step. Five
    requests of the 7B shape decoding side by side for 64 iterations (KV 147.4 to 210.4,
    across the change from 2 to 3 stream tiles at 159, a jump that halves its cell; cells
    checked from their first point on, ``LINE_CHECK_USES`` 1): the memo's summed cycles
    are the replay's within 5e-6; a chord through the corners runs 5.2e-5 short."""
    hw, wl = load_hardware(H100), load_workload(LLAMA7B)
    bank = RowBank({"": wl.model}, hw.bytes_per_element)
    N = wl.model.n_layers
    rows = (140, 143, 147, 150, 152)
    its = [(Wave("", "decode", (-1, 0, N), tuple((b + k, (0,)) for b in rows)),) for k in range(64)]
    exact = IterationCosts(hw, bank, exact=True)
    replayed = sum(exact(it).cycles for it in its)
    summed = lambda costs: sum(costs(it).cycles for it in its) / replayed - 1
    monkeypatch.setattr(memo, "LINE_CHECK_USES", 1)
    costs = IterationCosts(hw, bank, depth=bank.depth)
    assert abs(summed(costs)) < 5e-6
    chord = IterationCosts(hw, bank, depth=bank.depth)
    monkeypatch.setattr(chord, "_stepped", lambda structure: False)
    assert summed(chord) < -3e-5


def test_a_corners_kv_staircase_is_taken_from_its_replay():
    """The memo takes each corner's KV staircase (``quanta``) from the items its replay
    built (``quanta.replayed_kv_items``: one repeated layer's KV reads of a replay of the
    first ``KEPT_LAYERS`` layers, or of all): the same staircase as built afresh, to the
    byte and cycle, for the corners of a verify wave and of a SPEED step of the 7B shape
    on h100 (a staircase of both kept layers' reads would double its bytes)."""
    hw, wl = load_hardware(H100), load_workload(LLAMA7B)
    bank = RowBank({"": wl.model}, hw.bytes_per_element)
    N = wl.model.n_layers
    parts = [Wave("", "decode", (-1, *range(N), N), ((149, (0, 1, 2)), (140, (0,)), (151, (0,)))),
             SpeedStep(4, tuple(layer % 8 for layer in range(N)), ((150,), (149,), (148, 147), ()))]
    costs = IterationCosts(hw, bank, depth=bank.depth)
    for p in parts:
        costs.part(p, costs.verdicts((p,))[0])
    kinds = {part[0] for part, _ in costs._stairs}
    assert kinds == {"decode", "speed"}, kinds
    plain = lambda items: [replace(x, id=0, deps=()) for x in items]
    for (part, point), taken in costs._stairs.items():
        built = staircase(corner(part, point), bank, hw, bank.depth)
        assert taken._replace(items=()) == built._replace(items=()), (part, point)
        assert plain(taken.items) == plain(built.items)


def test_kv_lengths_are_what_a_parts_kv_items_read(edge_costs):
    """``quanta.kv_lengths`` (a part's KV positions per KV-reading item of one layer) times
    one position's bytes is each item's KV read: a verify wave (groups read their longest
    row's KV), SPEED steps with attention per stage (edge), over one weight set or one per
    layer."""
    hw, bank, _ = edge_costs
    N = bank.depth("")
    verify = Wave("", "decode", (-1, 0, 1, N), ((90, (0, 1, 2)), (70, (0,)), (95, (0, 1))))
    steps = [SpeedStep(2, sets, ((90, 91), (80, 84, 85))) for sets in ((0,) * N, tuple(range(N)))]
    for p in (verify, *steps):
        _, items = kv_items(p, bank, hw, bank.depth)
        lengths = kv_lengths(p, hw.attention_issue == "batched")
        per_position = {x.kv_read_bytes / n for x, n in zip(items, lengths)}
        assert len(items) == len(lengths) and len(per_position) == 1, (p, lengths)


def test_memo_error_on_a_small_shipped_run_is_within_one_percent():
    """The memo against replaying every iteration of the memo's own run (``audit``: the
    same iteration sequence retimed from the replayed costs) on the first 8 requests of
    traffic/poisson.yaml on edge: every strategy's summed cycles and every audited
    summary metric within 1 % (the issue's bound); a grid whose cells straddle a tile of
    the array breaks it (``test_memo_error_grows_if_its_grid_straddles_a_tile``)."""
    for name, audit in small_shipped_audit().items():
        assert abs(audit["total_rel_error"]) <= 1e-2, (name, audit)
        for metric, err in audit["summary_rel_error"].items():
            assert abs(err) <= 1e-2, (name, metric, err)


def small_shipped_audit() -> dict[str, dict]:
    hw, wl = load_hardware(EDGE), load_workload(STRATEGIES)
    t = load_traffic("traffic/poisson.yaml", [("requests", 8)])
    result = serve(hw, wl, t, audit=True)
    return {n: e["memo"]["audit"] for n, e in result.summary["strategies"].items()}


def test_memo_error_grows_if_its_grid_straddles_a_tile(monkeypatch):
    """The same audit with the KV lengths' grid one position off the array's tiles (cells
    across a tile's edge, where an attention GEMM's cost jumps): some strategy's error
    leaves the bound (SPEED's summed cycles by 1.4 %, its summary metrics by 3 %)."""
    tiling = memo._tiling
    monkeypatch.setattr(memo, "_tiling", lambda kind, array: (
        tuple(x + 1 for x in tiling(kind, array)) if kind == KV else tiling(kind, array)))
    worst = max(max(abs(a["total_rel_error"]), *map(abs, a["summary_rel_error"].values()))
                for a in small_shipped_audit().values())
    assert worst > 1e-2


def test_retime_of_the_same_iterations():
    """``retime`` of a run's own costs is the run; of other costs, the same iterations
    (same admissions) start at the previous end or at their requests' arrival: two
    requests 10 s apart, 2 tokens each, every iteration 2 s instead of 1."""
    requests = constant(2, 0.1, output_tokens=2)
    run = stub_serve(requests)
    same = retime(run, requests, [stub_cost(None)] * len(run.log), 1.0)
    assert same.times == run.times and same.busy_s == run.busy_s
    slow = retime(run, requests, [Cost(2.0, 0.0)] * len(run.log), 1.0)
    assert [(t.admitted_s, t.first_token_s, t.finish_s) for t in slow.times] == \
        [(0, 2, 4), (10, 12, 14)]
    assert (slow.busy_s, slow.decode_s, slow.batch_s) == (8, 4, 4)


# -- strategies on several workers ----------------------------------------------------------

def test_workers_change_nothing_and_each_strategy_has_its_own_memo():
    """The first 8 requests of traffic/poisson.yaml on edge: summary and request table the
    same, to the bit, served on one worker or two (``forking.deal`` by ``serve.WORK``), and
    each strategy's entry, its memo's replays included, what serving it alone gives: no
    strategy's costs or replays depend on another's (with one memo shared across the
    strategies, as before December 2026, draft_spec replayed 101 corners here, 105 alone)."""
    hw, wl = load_hardware(EDGE), load_workload(STRATEGIES)
    t = load_traffic("traffic/poisson.yaml", [("requests", 8)])
    one, two = serve(hw, wl, t, workers=1), serve(hw, wl, t, workers=2)
    assert one.summary == two.summary
    pd.testing.assert_frame_equal(one.requests, two.requests)
    assert list(one.summary["strategies"]) == list(wl.strategies.model_dump(exclude_none=True))
    alone = serve(hw, wl, t, ["draft_spec"]).summary["strategies"]["draft_spec"]
    both = one.summary["strategies"]["draft_spec"]
    assert alone == {k: v for k, v in both.items() if k not in ("throughput_vs_sequential",
                                                                 "tpot_speedup_p50")}

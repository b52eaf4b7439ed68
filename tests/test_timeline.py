"""The Perfetto timeline: slices on every track nest (a viewer drops overlapping ones)."""

from collections import defaultdict

import pytest

from speedsim.report.timeline import chrome_trace, lanes


def cycles(ev: dict) -> tuple[int, int]:
    return ev["args"]["start_cycle"], ev["args"]["end_cycle"]


def viewer_ns(ev: dict) -> tuple[int, int]:
    """What Perfetto's JSON importer sees: ``ts`` and ``dur`` each rounded to integer ns."""
    t0 = round(ev["ts"] * 1000)
    return t0, t0 + round(ev["dur"] * 1000)


def nesting_violations(trace: dict, interval=cycles) -> list[tuple]:
    """Complete events that overlap a sibling on their track without nesting inside it.

    Per (pid, tid), slices taken by start (longest first) must each lie inside the
    innermost open slice or start after it ends: the Trace Event Format's rule."""
    tracks = defaultdict(list)
    for ev in trace["traceEvents"]:
        if ev.get("ph") == "X":
            tracks[(ev["pid"], ev["tid"])].append(interval(ev))
    bad = []
    for key, spans in tracks.items():
        stack: list[int] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start:
                stack.pop()
            if stack and end > stack[-1]:
                bad.append((key, start, end, stack[-1]))
            stack.append(end)
    return bad


def test_the_check_finds_a_crossing_pair_and_accepts_nested_and_touching_ones():
    def trace(*spans):
        return {"traceEvents": [{"ph": "X", "pid": 1, "tid": 1,
                                 "args": {"start_cycle": a, "end_cycle": b}} for a, b in spans]}
    assert nesting_violations(trace((0, 10), (2, 5), (5, 10), (10, 12))) == []
    assert nesting_violations(trace((0, 10), (5, 15))) == [((1, 1), 5, 15, 10)]


def test_lanes_are_the_fewest_that_keep_intervals_apart():
    assert lanes([(0, 10), (5, 15), (10, 20), (12, 13), (20, 21)]) == [0, 1, 0, 2, 0]
    assert lanes([]) == []


@pytest.fixture(scope="module", params=["edge", "h100"])  # 1 GHz, and 1.83 GHz: cycles of 0.546 ns
def gen_trace(request):
    from speedsim.api import simulate
    from speedsim.config import load_hardware, load_workload

    # h100 with weights prefetched across kernels and no per-item overheads, so that its DMA
    # engines overlap transfers (as calibrated, gen's few transfers on h100 never overlap)
    overrides = [("weight_prefetch", "ahead"), ("array.op_overhead_ns", 0),
                 ("vector.op_overhead_ns", 0)] if request.param == "h100" else []
    result = simulate(load_hardware(f"hw_configs/{request.param}.yaml", overrides),
                      load_workload("workloads/gen.yaml", [("generation.new_tokens", 16)]))
    return result, chrome_trace({n: (r.plan, r.sim) for n, r in result.runs.items()},
                                result.hw.clock_hz)


def test_gen_timeline_nests_on_every_track(gen_trace):
    _, trace = gen_trace
    assert nesting_violations(trace) == []
    assert nesting_violations(trace, viewer_ns) == []


def test_spans_are_whole_nanoseconds_that_touch_where_the_cycles_touch():
    from speedsim.report.timeline import span
    ns = 1e9 / 1.83e9
    a, b = span(0, 7, ns), span(7, 9, ns)
    assert (a, b) == ({"ts": 0.0, "dur": 0.004}, {"ts": 0.004, "dur": 0.001})
    assert round(a["ts"] * 1000) + round(a["dur"] * 1000) == round(b["ts"] * 1000)


def test_parallel_dram_transfers_get_their_own_tracks_and_none_is_lost(gen_trace):
    result, trace = gen_trace
    names = {(e["pid"], e["tid"]): e["args"]["name"] for e in trace["traceEvents"]
             if e.get("name") == "thread_name"}
    log = result.runs["sequential"].sim.log
    dram = [e for e in trace["traceEvents"] if e.get("ph") == "X" and e["pid"] == 1
            and e["args"]["unit"] == "dram"]
    assert len(dram) == int((log["unit"] == "dram").sum())
    tracks = {names[(e["pid"], e["tid"])] for e in dram}
    assert "dram" in tracks and "dram #2" in tracks  # DMA engines overlap transfers


def test_the_timeline_joined_from_strategy_parts_is_the_whole_trace(gen_trace, tmp_path):
    """``speedsim run`` writes each strategy's events apart (``RunFiles``) and joins the
    texts: the file is the whole trace's compact JSON."""
    from speedsim.cli.io import write_run
    from speedsim.report.io import json_text
    result, whole = gen_trace
    write_run(result, tmp_path, "full")
    assert (tmp_path / "timeline.json").read_text() == json_text(whole, None) + "\n"

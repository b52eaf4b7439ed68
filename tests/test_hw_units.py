"""DRAM classes, DMA engines, the weight buffer and the parameter cache: exact timelines."""

from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from speedsim.config.hw import hardware_from_dict
from speedsim.hw.cost import busiest_channel_bytes
from speedsim.hw.units import Dram, WeightBuffer
from speedsim.sim.tables import Occupancy


class Period(NamedTuple):
    """The fields of ``speedsim.sim.skipper.Period`` the DRAM and the occupancy read."""

    times: int
    cycles: int
    tiles: int = 1


def hw(engines=2, **dram):
    """16 bytes/cycle, 10 cycles latency."""
    d = {"bandwidth_gb_s": 16.0, "latency_ns": 10.0, "efficiency": 1.0} | dram
    return hardware_from_dict({
        "name": "t", "clock_hz": 1e9, "array": {"rows": 4, "cols": 4}, "vector": {"lanes": 4},
        "dram": d, "dma": {"engines": engines},
        "buffers": {"weight": {"size_kib": 1}, "activation": {"size_kib": 1},
                    "accumulator": {"size_kib": 1}},
        "energy": {"mac_pj": 0.1, "vector_op_pj": 0.1}})


def test_demand_transfers_are_first_come_first_served():
    dram = Dram(hw())
    assert dram.demand(0, 160) == (0, 10, 20)  # 10 cycles of data + 10 latency
    assert dram.demand(0, 320) == (10, 30, 40)
    assert dram.demand(35, 16) == (35, 36, 46)


def test_bulk_transfers_queue_and_hold_an_engine_until_arrival():
    dram = Dram(hw(engines=1))
    a, b = dram.bulk(0, 160), dram.bulk(0, 160)
    assert (a.start, a.finish, a.arrival) == (0, 10, 20)
    assert (b.start, b.finish, b.arrival) == (20, 30, 40)  # waits for the only engine
    two = Dram(hw(engines=2))
    a, b = two.bulk(0, 160), two.bulk(0, 160)
    assert (b.start, b.finish, b.arrival) == (10, 20, 30)  # the latency of one hides behind the other


def test_a_demand_transfer_preempts_bulk_and_pushes_it_back():
    dram = Dram(hw())
    bulk = dram.bulk(0, 1600)  # 100 cycles
    assert dram.demand(30, 512) == (30, 62, 72)  # 32 cycles of its own, no wait
    assert (bulk.start, bulk.finish, bulk.arrival) == (0, 132, 142)
    later = dram.bulk(40, 160)
    assert (later.start, later.finish) == (132, 142)


def test_effective_bandwidth_includes_efficiency():
    assert Dram(hw(efficiency=0.5)).demand(0, 160) == (0, 20, 30)


def test_weight_buffer_lru_keeps_pinned_tiles_and_counts_hits():
    occ = Occupancy()
    buf = WeightBuffer(300, occ.trace("weight", replayed_by_owner=True))
    assert buf.acquire("a", 100, 0) is False
    assert buf.acquire("b", 100, 1) is False
    buf.release("a")
    buf.release("b")
    assert buf.acquire("a", 100, 2) is True  # still resident: a hit, "a" now most recent
    buf.release("a")
    assert buf.acquire("c", 100, 3) is False
    buf.release("c")
    assert buf.acquire("d", 100, 4) is False  # evicts "b", the least recently used
    assert list(buf.resident) == ["a", "c", "d"]
    assert list(occ.points["weight"]) == [0, 100, 1, 200, 3, 300]  # change points only


def test_weight_buffer_never_evicts_a_pinned_tile():
    buf = WeightBuffer(200, Occupancy().trace("weight"))
    buf.acquire("a", 100, 0)
    buf.acquire("b", 100, 0)
    with pytest.raises(AssertionError, match="pinned"):
        buf.acquire("c", 100, 1)


def test_parameter_cache_is_lru_by_key():
    """The parameter cache is a weight buffer whose entries are read and released at once."""
    cache = WeightBuffer(100, Occupancy().trace("weight"))

    def lookup(key, cycle):
        hit = cache.acquire(key, 40, cycle)
        cache.release(key)
        return hit

    assert [lookup(k, 0) for k in "abab"] == [False, False, True, True]
    assert lookup("c", 1) is False  # evicts "a"
    assert list(cache.resident) == ["b", "c"]


def test_occupancy_repeat_appends_shifted_periods():
    occ = Occupancy()
    occ.trace("activation").change(10, 5)
    since = occ.mark(None)
    occ.trace("activation").change(12, 3)
    occ.trace("activation").change(15, -8)
    occ.skip(since, 0, Period(times=2, cycles=10))
    assert list(occ.points["activation"]) == [10, 5, 12, 8, 15, 0, 22, 8, 25, 0, 32, 8, 35, 0]


def test_occupancy_repeat_is_the_same_for_few_and_many_copies_and_nothing_for_no_points():
    def repeated(times: int) -> tuple[list[int], list[int]]:
        occ = Occupancy()
        occ.trace("activation").change(10, 5)
        since = occ.mark(None)
        occ.trace("activation").change(12, 3)
        occ.trace("weight").change(12, 4)  # a buffer first used inside the period
        occ.trace("activation").change(15, -8)
        occ.trace("weight").change(15, -4)
        occ.skip(since, 0, Period(times=times, cycles=10))
        return list(occ.points["activation"]), list(occ.points["weight"])
    few, many = repeated(3), repeated(200)  # plain Python below 256 points, numpy above
    assert few == ([10, 5, 12, 8, 15, 0, 22, 8, 25, 0, 32, 8, 35, 0, 42, 8, 45, 0],
                   [12, 4, 15, 0, 22, 4, 25, 0, 32, 4, 35, 0, 42, 4, 45, 0])
    assert many[0][:len(few[0])] == few[0] and many[1][:len(few[1])] == few[1]
    assert len(many[0]) == 2 + 201 * 4 and many[0][-4:] == [2012, 8, 2015, 0]
    assert len(many[1]) == 201 * 4 and many[1][-4:] == [2012, 4, 2015, 0]
    occ = Occupancy()
    occ.trace("weight").change(3, 7)
    since = occ.mark(None)
    occ.skip(since, 0, Period(times=1000, cycles=5))  # nothing changed in the period: nothing to repeat
    assert list(occ.points["weight"]) == [3, 7]


def test_dram_shift_future_moves_only_what_is_still_ahead():
    d = Dram(hw(efficiency=1.0))
    d.demand(0, 160)            # [0, 10) at 16 B/cycle
    since = d.mark(None)
    d.demand(20, 160)           # [20, 30), still moving at 25
    before = d.relative(25)
    d.skip(since, 25, Period(times=2, cycles=20))
    assert d.relative(65) == before
    assert (d.demand_free, d.busy.starts[-1], d.busy.ends[-1]) == (70, 65, 70)
    assert d.busy.ends[-2] == 25  # the part up to 25 stays where it was
    assert d.demand(70, 16) == (70, 71, 81)


@given(st.integers(0, 5000), st.integers(1, 9), st.sampled_from([1, 3, 64, 256]))
def test_the_busiest_channel_holds_what_laying_out_the_granules_gives(bytes_, channels, gran):
    per_channel = [0] * channels
    for g, first in enumerate(range(0, bytes_, gran)):
        per_channel[g % channels] += min(gran, bytes_ - first)
    assert busiest_channel_bytes(bytes_, channels, gran) == max(per_channel)


def test_dram_channels_slow_small_transfers_only():
    # 16 B/cycle over 4 channels, 256 B granules: 256 B sit on one channel (4 B/cycle);
    # 1024 B spread over all four; 1280 B put two granules on channel 0
    four = Dram(hw(channels=4, interleave_bytes=256))
    assert [four.cycles(b) for b in (256, 1024, 1280, 4096)] == [64, 64, 128, 256]
    one = Dram(hw(channels=1, interleave_bytes=256))
    assert [one.cycles(b) for b in (256, 1024, 1280, 4096)] == [16, 64, 80, 256]


def test_weight_buffer_skip_equals_the_calls_it_stands_for():
    """A run of 100 B tiles through two slots in a 350 B buffer that holds another item's
    150 B tile: one period (release tile t, acquire tile t + 2) played, then 6 more skipped.
    The skip replays the calls until the buffer holds only the run's newest tiles, then
    renames; resident tiles, pins and the occupancy trace equal the calls made one by one."""
    def buffer():
        occ = Occupancy()
        buf = WeightBuffer(350, occ.trace("weight", replayed_by_owner=True))
        buf.acquire(("x", 0), 150, 0)
        buf.release(("x", 0))
        buf.acquire(("w", 0), 100, 0)
        buf.acquire(("w", 1), 100, 0)
        return occ, buf

    occ, skipped = buffer()
    since = skipped.mark(None)
    skipped.release(("w", 0))
    skipped.acquire(("w", 2), 100, 10)
    skipped.skip(since, 10, Period(times=6, cycles=10, tiles=1))
    occ_by_hand, by_hand = buffer()
    for t in range(7):
        by_hand.release(("w", t))
        by_hand.acquire(("w", t + 2), 100, 10 + 10 * t)
    assert list(skipped.resident) == list(by_hand.resident) == [("w", 6), ("w", 7), ("w", 8)]
    assert skipped.pins == by_hand.pins == {("w", 7): 1, ("w", 8): 1}
    # 350 B held until tile 2 evicts the other item's tile, then 300 B: one 100 B tile
    # evicted per 100 B tile fetched
    assert list(occ.points["weight"]) == list(occ_by_hand.points["weight"]) == [0, 350, 10, 300]

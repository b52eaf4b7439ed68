"""DRAM channels, DMA engines and the weight buffer: exact timelines of tiny scenarios."""

import pytest
import simpy

from speedsim.config.hw import hardware_from_dict
from speedsim.hw.units import Dma, Dram, WeightBuffer


def hw(**dram):
    """16 bytes/cycle, 10 cycles latency, one channel unless overridden."""
    d = {"bandwidth_gb_s": 16.0, "latency_ns": 10.0, "efficiency": 1.0, "channels": 1} | dram
    return hardware_from_dict({
        "name": "t", "clock_hz": 1e9, "array": {"rows": 4, "cols": 4}, "vector": {"lanes": 4},
        "dram": d, "dma": {"engines": 2},
        "buffers": {"weight": {"size_kib": 1}, "activation": {"size_kib": 1},
                    "accumulator": {"size_kib": 1}},
        "energy": {"mac_pj": 0.1, "vector_op_pj": 0.1}})


def test_two_transfers_share_one_channel_first_come_first_served():
    env = simpy.Environment()
    dma = Dma(env, hw(), Dram(env, hw()))
    # 160 B = 10 cycles of data + 10 latency; the second waits for the channel
    assert dma.transfer(0, 160) == (0, 20)
    assert dma.transfer(0, 320) == (0, 10 + 20 + 10)
    # a third transfer finds both engines busy until 20 and the channel busy until 30
    assert dma.transfer(5, 16) == (20, 31 + 10)


def test_one_engine_pays_the_latency_every_time():
    h = hw().model_copy(update={"dma": hw().dma.model_copy(update={"engines": 1})})
    env = simpy.Environment()
    dma = Dma(env, h, Dram(env, h))
    assert dma.transfer(0, 160) == (0, 20)
    assert dma.transfer(0, 160) == (20, 40)


def test_interleaving_spreads_a_transfer_over_all_channels():
    h = hw(channels=4, interleave_bytes=64)
    env = simpy.Environment()
    dram = Dram(env, h)
    # 4 channels of 4 B/cycle; 1024 B = 16 granules, 4 per channel: 64 cycles each
    assert dram.reserve(0, 1024) == (0, 64 + 10)
    assert dram.free_at == [64, 64, 64, 64]
    # a small transfer then lands on the next channel in turn
    dram.reserve(64, 64)
    assert dram.free_at == [80, 64, 64, 64]
    dram.reserve(64, 100)  # 2 granules: channels 1 and 2 (36 B on the second)
    assert dram.free_at == [80, 80, 64 + 9, 64]


def test_effective_bandwidth_includes_efficiency():
    h = hw(efficiency=0.5)
    env = simpy.Environment()
    assert Dram(env, h).reserve(0, 160) == (0, 20 + 10)


def test_weight_buffer_lru_keeps_pinned_tiles_and_counts_hits():
    occ = []
    buf = WeightBuffer(simpy.Environment(), 300, occ)
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
    assert occ[-2:] == [("weight", 4, -100), ("weight", 4, 100)]


def test_weight_buffer_never_evicts_a_pinned_tile():
    buf = WeightBuffer(simpy.Environment(), 200, [])
    buf.acquire("a", 100, 0)
    buf.acquire("b", 100, 0)
    with pytest.raises(AssertionError, match="pinned"):
        buf.acquire("c", 100, 1)

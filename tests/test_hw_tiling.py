"""Tiling an op to fit its buffer must not change what the array computes.

SCALE-Sim's cycle count is a sum over folds (R×C blocks of the stationary
operand), so cutting a GEMM on fold boundaries costs at most the unsplit GEMM;
a cut inside a fold would pay a whole fold for a sliver of it.
"""

import pytest

from speedsim.config import load_hardware
from speedsim.hw import cost
from speedsim.hw.systolic import array_gemm_cycles
from speedsim.contracts.workitem import WorkItem


def _item(m, k, n, count=1, weight=True, eb=1):
    nbytes = count * k * n * eb
    return WorkItem(id=0, unit="array", op="attn_value" if not weight else "mlp_up",
                    phase="decode", m=m, k=k, n=n, count=count,
                    weight_key=("w",) if weight else None,
                    weight_bytes=nbytes if weight else 0,
                    kv_read_bytes=0 if weight else nbytes, macs=count * m * k * n)


@pytest.mark.parametrize("dataflow", ["ws", "os", "is"])
@pytest.mark.parametrize("m, k, n, count, weight", [
    (1, 4096, 64, 4, False),     # decode attention x·V over a long context (V from DRAM)
    (1, 256, 1024, 1, True),     # a decode MLP up-projection larger than a weight tile
    (4, 1024, 4096, 1, True),    # fused SPEED rows, a big layer
    (64, 512, 2048, 1, True),    # prefill-like
])
def test_tiles_never_cost_more_than_the_unsplit_gemm(dataflow, m, k, n, count, weight):
    hw = load_hardware("hw_configs/edge.yaml", [("array.dataflow", dataflow)])
    item = _item(m, k, n, count, weight)
    tiles = cost.item_tiles(item, hw, kv_on_chip_=False)
    assert len(tiles) > 1, "the case must actually tile"
    a = hw.array
    whole = array_gemm_cycles(m, k, n, count, a.rows, a.cols, dataflow, a.count)
    split = sum(t.cycles for t in tiles)
    if dataflow == "ws":
        assert split <= whole  # every cut is on a fold boundary: free
    else:
        # os pays R+C-2 per extra cut of k, is pays 2R+C-2 per extra cut of n (per fold);
        # the free dimension is cut first, so the overhead stays a small fraction
        assert split <= 1.25 * whole, (split, whole)
    assert sum(t.macs for t in tiles) == item.macs
    slot = cost.weight_slot_bytes(hw) if weight else cost.stream_slot_bytes(hw, "array")
    assert max(t.weight_bytes + t.stream_bytes for t in tiles) <= slot


@pytest.mark.parametrize("hw_file", ["hw_configs/edge.yaml", "hw_configs/datacenter.yaml"])
@pytest.mark.parametrize("m, k, n", [(1, 4096, 12288), (1, 11008, 4096), (4, 1024, 4096)])
def test_a_big_gemm_is_cut_into_pipeline_tiles_that_cost_nothing(hw_file, m, k, n):
    """With a buffer far larger than the pipeline tile, a weight stream is cut into tiles
    of about ``weight_tile_budget`` (never larger, at most twice as many), on cuts free
    on the ganged arrays (datacenter: 4 MXUs), so the tiles add up to the unsplit GEMM."""
    hw = load_hardware(hw_file, [("buffers.weight.size_kib", 1 << 20)])
    item = _item(m, k, n, eb=hw.bytes_per_element)
    tiles = cost.item_tiles(item, hw, kv_on_chip_=False)
    target = cost.weight_tile_budget(hw)
    assert target == cost.pipeline_tile_bytes(hw, cost.WEIGHT_TILE_LATENCIES) < cost.weight_slot_bytes(hw)
    assert item.weight_bytes / target <= len(tiles) <= 2 * item.weight_bytes / target + 1
    assert max(t.weight_bytes for t in tiles) <= target
    assert sum(t.cycles for t in tiles) == cost.gemm_cycles(m, k, n, 1, hw)


def test_tile_budgets_grow_with_the_buffer_only_up_to_the_pipeline_tile():
    def budgets(kib, double=True):
        hw = load_hardware("hw_configs/edge.yaml", [("buffers.weight.size_kib", kib),
                                                    ("buffers.activation.size_kib", kib),
                                                    ("buffers.double_buffering", double)])
        return cost.weight_tile_budget(hw), cost.stream_tile_budget(hw, "array")
    # edge: 21.76 B/cycle, 120 cycles of latency: 24 and 8 latencies of data
    assert budgets(32) == (28 * 1024 // 2, 32 * 1024 * 3 // 16)  # the slots decide
    assert budgets(1024) == budgets(65536) == (62668, 20889)  # the pipeline decides
    assert budgets(1024, double=False) == (896 * 1024, 384 * 1024)  # one slot: all of it


def test_split_aligned_cuts_on_multiples():
    assert cost.split_aligned(100, 3, 32) == [64, 32, 4]
    sizes = cost.split_aligned(4096, 44, 32)
    assert sum(sizes) == 4096 and all(s % 32 == 0 for s in sizes) and len(sizes) == 44
    assert cost.split_aligned(10, 5, 32) == [10]


def test_decode_attention_is_one_run_of_whole_heads():
    """7B decode attention on edge: 32 heads of 128 × 129 KV bytes need 26 stream tiles; the
    pipeline tiles group the heads uniformly, one head each, rather than 6 tiles of two
    heads and 20 of one: one run of identical tiles (which the engine skips in whole
    periods), each reading exactly its head's KV, at no more cycles than the uneven cut."""
    hw = load_hardware("hw_configs/edge.yaml")
    item = _item(1, 128, 129, count=32, weight=False)
    tiles = cost.item_tiles(item, hw, kv_on_chip_=False)
    assert len(tiles) == 32 and len(set(tiles)) == 1
    assert tiles[0].stream_bytes == 128 * 129 and tiles[0].macs == 128 * 129
    uneven = cost._gemm_tiles(item, hw, 26)  # the slots' cut: whole heads, as few as fit
    assert [g for g, _ in uneven].count(2 * tiles[0].cycles) == 6
    assert sum(t.cycles for t in tiles) <= sum(c for c, _ in uneven)


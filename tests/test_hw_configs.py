"""Every shipped hardware config loads; impossible buffers are config errors."""

from pathlib import Path

import pytest

from speedsim.config.errors import ConfigError
from speedsim.config.hw import hardware_from_dict, load_hardware

HW_DIR = Path(__file__).resolve().parent.parent / "hw_configs"
SHIPPED = sorted(HW_DIR.glob("*.yaml"))


def test_the_four_promised_configs_are_shipped():
    assert {p.stem for p in SHIPPED} >= {"edge", "datacenter", "h100", "tiny"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_loads(path):
    hw = load_hardware(path)
    assert hw.name == path.stem
    assert hw.dram_bytes_per_cycle > 0


def test_h100_peak_is_about_989_tflops():
    hw = load_hardware(HW_DIR / "h100.yaml")
    assert hw.array.pes * 2 * hw.clock_hz == pytest.approx(989e12, rel=0.01)


def test_rtx_pro_6000_datasheet_figures():
    """752 tensor cores x 128 bf16 FMA x 2.617 GHz = 503.8 dense TFLOP/s (the datasheet's
    4,000 sparse FP4 TOPS / 8); 1,792 GB/s GDDR7; 128 MiB L2 as the weight buffer."""
    hw = load_hardware(HW_DIR / "rtx_pro_6000.yaml")
    assert hw.array.pes * 2 * hw.clock_hz == pytest.approx(4000e12 / 8, rel=0.01)
    assert hw.dram.bandwidth_gb_s == 1792 and hw.buffers.weight.size_kib == 128 * 1024


def test_tiny_is_gemmini_default():
    hw = load_hardware(HW_DIR / "tiny.yaml")
    assert (hw.array.rows, hw.array.cols, hw.precision, hw.array.dataflow) == (16, 16, "int8", "ws")
    assert hw.buffers.weight.size_kib + hw.buffers.activation.size_kib == 256
    assert hw.buffers.accumulator.size_kib == 64


def test_buffer_smaller_than_one_array_tile_is_a_config_error():
    data = {
        "name": "x", "clock_hz": 1e9, "precision": "bf16",
        "array": {"rows": 128, "cols": 128}, "vector": {"lanes": 8},
        "dram": {"bandwidth_gb_s": 10.0},
        "buffers": {"weight": {"size_kib": 16}, "activation": {"size_kib": 64},
                    "accumulator": {"size_kib": 64}},
        "energy": {"mac_pj": 0.1, "vector_op_pj": 0.1},
    }
    # one 128x128 bf16 tile is 32 KiB
    with pytest.raises(ConfigError, match=r"buffers\.weight\.size_kib: 16 KiB cannot hold 2 128x128 bf16 array tiles of 32768 bytes"):
        hardware_from_dict(data, file="x.yaml")


def test_block_split_on_a_weight_stationary_array_is_a_config_error():
    data = load_hardware(HW_DIR / "edge.yaml").model_dump()
    data["array"]["split"] = "blocks"
    with pytest.raises(ConfigError, match=r"array\.split: blocks needs dataflow: os"):
        hardware_from_dict(data, file="edge.yaml")


def test_mi210_datasheet_figures():
    """416 matrix cores x 128 fp16 FMA x 1.7 GHz = 181 dense TFLOP/s; 6656 lanes = 22.6
    fp32 vector TFLOP/s; 4096-bit HBM2e at 3.2 Gbps = 1638.4 GB/s; 8 MB L2 (AMD MI210 datasheet)."""
    hw = load_hardware(HW_DIR / "mi210.yaml")
    assert hw.array.pes * 2 * hw.clock_hz == pytest.approx(181e12, rel=0.001)
    assert hw.vector.lanes * 2 * hw.clock_hz == pytest.approx(22.6e12, rel=0.002)
    assert hw.dram.bandwidth_gb_s == 4096 * 3.2 / 8 and hw.buffers.weight.size_kib == 8 * 1024

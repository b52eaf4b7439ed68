"""``attention_waves``: a GPU's fused decode attention costs per wave of thread blocks.

The kernel runs one thread block per (sequence row, head) GEMM of the attention item
(``count``), ``blocks_per_wave`` at a time; each wave beyond the first adds ``wave_ns``,
carried half by the score and half by the value item (``hw.cost.attention_wave_cycles``).
On ``h200.yaml`` (1.83 GHz, 132 blocks a wave, 1127 ns a wave) one extra wave is
1127e-9 · 1.83e9 / 2 = 1031.2 → 1031 cycles per item, two extra waves 2062.4 → 2062.
The values come from each GPU's per-kernel data (``benchmarks/gpu/fit_waves.py``): 1127 ns
on the H200, 1737 ns on the H100.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import pytest
import yaml

from speedsim.api import simulate
from speedsim.config.errors import ConfigError
from speedsim.config.hw import hardware_from_dict
from speedsim.config.workload import workload_from_dict
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost

ROOT = Path(__file__).resolve().parent.parent
H200 = yaml.safe_load((ROOT / "hw_configs" / "h200.yaml").read_text())


def _hw(waves: bool = True, **keys):
    data = copy.deepcopy(H200)
    if not waves:
        data.pop("attention_waves")
    data.update(keys)
    return hardware_from_dict(data)


def _cycles(item: WorkItem, hw) -> int:
    return sum(t.cycles for t in cost.item_tiles(item, hw, False))


def _attention(op: str, count: int) -> WorkItem:
    """A decode attention item of s01b_l2 (head size 64, KV 136) over ``count`` (row, head) pairs."""
    m, k, n = (1, 64, 136) if op == "attn_score" else (1, 136, 64)
    return WorkItem(id=0, unit="array", op=op, phase="decode", m=m, k=k, n=n, count=count,
                    kv_read_bytes=count * 136 * 64 * 2, macs=count * 136 * 64)


@pytest.mark.parametrize("op", ["attn_score", "attn_value"])
@pytest.mark.parametrize("count, extra", [(1, 0), (132, 0), (133, 1031), (264, 1031),
                                          (265, 2062), (384, 2062)])
def test_each_wave_beyond_the_first_adds_half_a_wave_to_each_item(op, count, extra):
    item = _attention(op, count)
    assert _cycles(item, _hw()) - _cycles(item, _hw(waves=False)) == extra


def test_other_items_do_not_pay_waves():
    """A GEMM of as many output blocks, and a vector item, cost the same with or without."""
    qkv = WorkItem(id=0, unit="array", op="qkv", phase="decode", m=32, k=768, n=2304, count=1,
                   weight_key=("w",), weight_bytes=768 * 2304 * 2, macs=32 * 768 * 2304)
    norm = WorkItem(id=1, unit="vector", op="norm", phase="decode", elements=24576,
                    vector_kind="norm", vector_ops=24576)
    for it in (qkv, norm):
        assert cost.item_tiles(it, _hw(), False) == cost.item_tiles(it, _hw(waves=False), False)


def test_two_items_of_one_shape_but_different_ops_are_costed_apart():
    """The plan's shape cache must not hand an attention item's waves to a GEMM of the same
    dimensions (or the reverse)."""
    attn = _attention("attn_score", 384)
    gemm = WorkItem(id=1, unit="array", op="mlp_up", phase="decode", m=1, k=64, n=136,
                    count=384, kv_read_bytes=attn.kv_read_bytes, macs=attn.macs)
    p = cost.plan([attn, gemm], _hw())
    assert p.sums[0].cycles - p.sums[1].cycles == 2062


def _speed_workload(batch: int) -> dict:
    return {"name": "w", "model": {"d_model": 256, "n_heads": 32, "d_ff": 512, "n_layers": 4,
                                   "vocab_size": 512, "sharing": {"scheme": "cycle", "unique_layers": 1},
                                   "weights": {"source": "shape_only"}},
            "generation": {"prompt_tokens": 16, "new_tokens": 8, "batch": batch, "seed": 0},
            "strategies": {"sequential": {}, "speed": {"stages": 4, "acceptance": {
                "source": "bernoulli", "rate": 0.8, "seed": 0}}}}


def test_one_wave_changes_nothing_and_more_rows_in_flight_pay_for_theirs():
    """Batch 4 × 32 heads = 128 blocks: sequential decode is one wave, unchanged to the
    cycle; SPEED stacks up to 4 stages (512 blocks, 4 waves) and is slower by at most the
    waves it adds (some of them hide under the KV stream)."""
    wl = workload_from_dict(_speed_workload(4))
    on, off = (simulate(_hw(waves=w), wl) for w in (True, False))
    seq = [r.runs["sequential"].metrics["cycles"] for r in (on, off)]
    assert seq[0] == seq[1]
    spd = [r.runs["speed"].metrics["cycles"] for r in (on, off)]
    items = on.runs["speed"].plan.items
    bound = sum(cost.attention_wave_cycles(it, _hw()) for it in items)
    assert 0 < spd[0] - spd[1] <= bound


def test_waves_with_attention_on_the_vector_unit_are_refused():
    with pytest.raises(ConfigError, match="attention_waves.*attention_on: vector"):
        _hw(attention_on="vector")


@pytest.mark.parametrize("waves, key", [({"blocks_per_wave": 0, "wave_ns": 1.0}, "blocks_per_wave"),
                                        ({"blocks_per_wave": 132, "wave_us": 1.0}, "wave_us")])
def test_bad_wave_keys_name_their_path(waves, key):
    with pytest.raises(ConfigError, match=f"attention_waves.{key}"):
        _hw(attention_waves=waves)


def _fit_waves():
    spec = importlib.util.spec_from_file_location("fit_waves", ROOT / "benchmarks/gpu/fit_waves.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("gpu, one_wave_us, wave_ns, steps, worst", [
    ("h100", 4.82, 1737, 54, 0.14), ("h200", 4.90, 1127, 27, 0.11)])
def test_each_config_carries_the_wave_fitted_to_its_own_kernels(gpu, one_wave_us, wave_ns,
                                                                 steps, worst):
    """fit_waves.py on each GPU's short-KV kernels (context 128): one wave and the time of
    each further one, every step within ``worst``; the config holds that value."""
    a, fitted, df = _fit_waves().fit(ROOT / "benchmarks/gpu/results" / gpu)
    assert (round(a, 2), round(fitted)) == (one_wave_us, wave_ns)
    assert len(df) == steps and df.err.abs().max() < worst
    assert sorted(df.waves.unique()) == [1, 2, 3]  # the data spans the waves it fits
    w = yaml.safe_load((ROOT / f"hw_configs/{gpu}.yaml").read_text())["attention_waves"]
    assert w == {"blocks_per_wave": 132, "wave_ns": wave_ns}

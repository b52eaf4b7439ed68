"""``buffers.weight.kind: cache``: the weight buffer as a GPU's L2 (speedsim/hw/l2.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from speedsim.api import simulate
from speedsim.config.hw import hardware_from_dict
from speedsim.config.workload import workload_from_dict
from speedsim.contracts.workitem import WorkItem
from speedsim.hw.l2 import CHUNK_BYTES, through_cache

HW = Path(__file__).resolve().parent.parent / "hw_configs"
MIB = CHUNK_BYTES


def _hw(kind: str = "cache", mib: float = 4, name: str = "h200"):
    data = yaml.safe_load((HW / f"{name}.yaml").read_text())
    data["buffers"]["weight"].update(size_kib=mib * 1024, kind=kind)
    return hardware_from_dict(data)


def _gemm(i: int, key: str, mib: int, kv: int = 0) -> WorkItem:
    return WorkItem(id=i, unit="array", op="qkv", phase="decode", m=1, k=512, n=1024 * mib,
                    count=1, weight_key=(key,), weight_bytes=mib * MIB, kv_read_bytes=kv, macs=1)


def test_a_working_set_that_fits_stays_resident():
    items = [_gemm(0, "A", 2), _gemm(1, "B", 2), _gemm(2, "A", 2), _gemm(3, "B", 2)]
    out = through_cache(items, _hw(mib=4))
    assert [it.weight_bytes for it in out] == [2 * MIB, 2 * MIB, 0, 0]
    assert out[2].weight_key is None and out[0].weight_key == ("l2 miss", 0)


def test_a_cyclic_sweep_one_chunk_too_big_hits_nothing():
    """Strict LRU: A0 A1 B0 B1 evicts A0; A0 then evicts A1, A1 evicts B0, ..."""
    items = [_gemm(i, "AB"[i % 2], 2) for i in range(6)]
    out = through_cache(items, _hw(mib=3))
    assert [it.weight_bytes // MIB for it in out] == [2] * 6


def test_partial_chunks_and_partial_hits():
    """A tensor of 2.5 MiB is three chunks, the last of half a MiB; with room for four
    chunks, B (2 chunks) after A leaves A's last two chunks, which sweep A again evicts in
    turn: A0 misses, evicting A1, ..."""
    a = WorkItem(id=0, unit="array", op="qkv", phase="decode", m=1, k=512, n=2560, count=1,
                 weight_key=("A",), weight_bytes=5 * MIB // 2, macs=1)
    again = WorkItem(**{**{f: getattr(a, f) for f in ("unit", "op", "phase", "m", "k", "n",
                                                      "count", "weight_key", "weight_bytes",
                                                      "macs")}, "id": 2})
    out = through_cache([a, _gemm(1, "B", 1), again], _hw(mib=4))
    assert [it.weight_bytes for it in out] == [5 * MIB // 2, MIB, 0]
    out = through_cache([a, _gemm(1, "B", 2), again], _hw(mib=4))
    assert out[2].weight_bytes == 5 * MIB // 2


def test_kv_traffic_passes_through_and_evicts():
    items = [_gemm(0, "A", 2), _gemm(1, "B", 1, kv=3 * MIB), _gemm(2, "A", 2)]
    fits = through_cache(items[:1] + [_gemm(1, "B", 1)] + items[2:], _hw(mib=4))
    evicted = through_cache(items, _hw(mib=4))
    assert fits[2].weight_bytes == 0
    assert evicted[2].weight_bytes == 2 * MIB


def test_a_scratchpad_is_left_alone():
    items = [_gemm(0, "A", 2), _gemm(1, "A", 2)]
    assert through_cache(items, _hw(kind="scratchpad")) == items


WL = {"name": "l2", "model": {"d_model": 768, "n_heads": 12, "d_ff": 3072, "n_layers": 8,
                              "vocab_size": 8192, "max_seq_len": 4096, "mlp": "gated_gelu",
                              "sharing": {"scheme": "cycle", "unique_layers": 1},
                              "weights": {"source": "shape_only"}},
      "generation": {"prompt_tokens": 64, "new_tokens": 16, "batch": 1, "seed": 0},
      "strategies": {"sequential": {}}}


def _weight_bytes(hw, wl=WL) -> int:
    run = simulate(hw, workload_from_dict(wl), ["sequential"]).runs["sequential"]
    return run.metrics["dram_bytes_by_kind"]["weight_bytes"]


def test_a_model_that_fits_the_l2_fetches_its_weights_once():
    """One weight set (19 MB) and a head of 12.6 MB fit a 60 MiB L2: the run's DRAM weight
    bytes are one model's worth (prefill's compulsory fetch), not 16 tokens' worth."""
    layer = 2 * (4 * 768 * 768 + 3 * 768 * 3072)
    head = 2 * 8192 * 768
    once = _weight_bytes(_hw(mib=60))
    assert layer + head <= once < 1.1 * (layer + head)
    assert _weight_bytes(_hw(mib=16)) > 10 * (layer + head)  # 16 MiB: swept every token


def test_vector_parameters_are_one_tensor_in_prefill_and_decode():
    """A norm's parameters keep their engine-side residency but are named by their tensor,
    so that decode finds prefill's resident (the same bytes); a matrix item's misses get a
    key of their own. Keyed by phase (as the strategies key them), the first decode token
    of a run on h100 paid one DRAM latency per norm."""
    norm = [WorkItem(id=i, unit="vector", op="norm", phase=ph, elements=768, vector_kind="norm",
                     weight_key=(ph, 0, "norm", 0), weight_bytes=1536, vector_ops=768)
            for i, ph in enumerate(("prefill", "decode"))]
    out = through_cache(norm, _hw())
    assert [x.weight_key for x in out] == [(0, "norm", 0)] * 2
    assert [x.weight_bytes for x in out] == [1536] * 2
    gemm = through_cache([_gemm(0, "A", 2)], _hw())[0]
    assert (gemm.weight_key, gemm.weight_bytes) == (("l2 miss", 0), 2 * MIB)

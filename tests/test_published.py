"""speedsim's A100 model against LLMCompass's published A100 measurements, out of sample
(none of them was fitted): ``benchmarks/gpu/published.py`` builds every table, read from
``../shared/data/llmcompass/`` (skipped when absent). Each test bounds the region the
model holds with the measured worst error beside it, and the region it misses is a strict
xfail with its numbers (docs/calibration.md, "Published measurements"). Errors are
simulated / measured latency - 1: negative, the model is faster than the GPU.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path

import pytest

from speedsim.config.hw import load_hardware

ROOT = Path(__file__).resolve().parent.parent


@cache
def _published():
    spec = importlib.util.spec_from_file_location("gpu_published", ROOT / "benchmarks/gpu/published.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@cache
def _tables():
    mod = _published()
    data = mod.data_dir([])
    if data is None:
        return None
    return mod.tables(load_hardware(mod.A100), data)


@pytest.fixture
def tables():
    t = _tables()
    if t is None:
        pytest.skip("../shared/data/llmcompass is absent")
    return t


def _matmuls(tables, large: bool):
    """The matmuls of at least 0.19 ms (the M sweep at N = K = 12288, and N = K >= 2048 at
    M = 8192), or the rest: N = K <= 1024 at M = 8192."""
    t = tables["matmul"]
    return t[(t.latency_ms >= 0.19) == large]


def test_every_large_matmul_within_11_percent(tables):
    """15 matmuls, worst -10.6 % (M = 1024, N = K = 12288), all but one faster: the array's
    fold waves at 1.41 GHz and the weights at the DRAM efficiency. A clock 10 % high, the
    tensor cores' rows halved or a wave miscounted leaves this band."""
    t = _matmuls(tables, large=True)
    assert len(t) == 15 and t.error.abs().max() < 0.11, t


@pytest.mark.xfail(strict=True, reason="launch floor: LLMCompass times eager kernels, >= 29.6 us "
                   "even for 8192x64x64; speedsim charges 2.4 us (the CUDA-graph overhead of "
                   "the H200 fit): -89 % at N = K = 64, -17 % at 1024")
def test_small_matmuls_within_11_percent(tables):
    t = _matmuls(tables, large=False)
    assert len(t) == 5 and t.error.abs().max() < 0.11, t


def test_gelu_at_the_dram_asymptote_within_18_percent(tables):
    """GeLU of >= 128 M elements streams 4 B per element: measured 360..390 G elements/s,
    simulated 435..441 (-17.2 % at 128 M, -11.4 % at 512 M; the model's DRAM efficiency
    0.87 against the measured ~0.77 of read+write streams). Two bytes per element wrong
    (fp32 for fp16) doubles the time."""
    t = tables["gelu"]
    t = t[t.elements >= 2 ** 27]
    assert len(t) == 3 and (t.error < 0).all() and t.error.abs().max() < 0.18, t


@pytest.mark.xfail(strict=True, reason="launch floor: the measured GeLU takes >= 47.7 us up to "
                   "4 M elements (CPU-issued eager kernels); speedsim 3.6 us + DRAM: -92 % up to 1 M")
def test_small_gelu_within_18_percent(tables):
    t = tables["gelu"]
    assert t[t.elements <= 2 ** 22].error.abs().max() < 0.18


def test_largest_layernorm_within_11_percent(tables):
    """LayerNorm over 32768 rows of 4096: 386 G elements/s measured, 432 simulated (-10.6 %)."""
    t = tables["layernorm"]
    row = t[(t.M == 32768) & (t.N == 4096)]
    assert len(row) == 1 and -0.11 < row.error.iloc[0] < 0, row


@pytest.mark.xfail(strict=True, reason="softmax and layernorm below 128 M elements and wide rows: "
                   "launch floors (53 us layernorm, 13 us softmax) and multi-pass row "
                   "reductions the one-pass element cost does not see: softmax -35..-78 %, "
                   "layernorm at 4096 x 32768 -54 %")
def test_softmax_and_layernorm_within_18_percent(tables):
    worst = max(tables[k].error.abs().max() for k in ("softmax", "layernorm"))
    assert worst < 0.18


def _gpt3(tables, phase: str, operators: tuple[str, ...]):
    t = tables[f"gpt3_{phase}"].set_index("operator")
    return t.loc[list(operators), "error"]


def test_gpt3_prefill_projections_and_scores_within_7_percent(tables):
    """One TP shard of a GPT-3-175B layer, 8 x 2048 tokens: QKV -7.0 %, Q x K^T -5.7 %,
    Wo -5.3 %, W1 -6.4 %, W2 -6.6 % (all compute-bound)."""
    errors = _gpt3(tables, "prefill", ("Q_K_V", "Q_mul_K", "Wo_proj", "W1_proj", "W2_proj"))
    assert errors.abs().max() < 0.07, errors


def test_gpt3_decode_mlp_within_3_percent(tables):
    """Decode, batch 8: W1 and W2 stream 302 MB of weights each: -2.0 % and -2.1 %."""
    errors = _gpt3(tables, "decode", ("W1_proj", "W2_proj"))
    assert errors.abs().max() < 0.03, errors


@pytest.mark.xfail(strict=True, reason="GPT-3 layer misses: prefill A x V +26 % (192 GEMMs of "
                   "n = 128: the model's fold waves slower than cuBLAS), softmax -34 %, "
                   "layernorm -32 %; decode QKV -34 %, Wo -31 % (measured at 1.07 TB/s against "
                   "W1's 1.62), A x V -29 %, and the vector ops -77..-92 % (launch floors)")
def test_every_gpt3_operator_within_10_percent(tables):
    errors = [tables[p].error.dropna().abs().max() for p in ("gpt3_prefill", "gpt3_decode")]
    assert max(errors) < 0.10


def test_allreduce_is_listed_never_simulated(tables):
    """speedsim has no interconnect: AllReduce rows stay unsimulated (NaN), never zero."""
    for phase in ("prefill", "decode"):
        t = tables[f"gpt3_{phase}"]
        sim = t[t.operator.str.startswith("AllReduce")].sim_s
        assert len(sim) == 2 and sim.isna().all()


# -- the MI210 (hw_configs/mi210.yaml: datasheet values, nothing fitted to these) -----

@cache
def _mi210_tables():
    mod = _published()
    return mod.tables(load_hardware(mod.MI210), mod.data_dir([]), "MI210")


@pytest.fixture
def mi210(tables):
    return _mi210_tables()


def _mi210_compute_bound(mi210):
    """The matmuls of at least 2 ms: M >= 1024 at N = K = 12288, N = K >= 4096 at M = 8192."""
    t = mi210["matmul"]
    return t[t.latency_ms >= 2]


def test_mi210_skinny_matmuls_within_11_percent(mi210):
    """M = 32..128 at N = K = 12288: +10.4, +9.1, +3.0 %. The measured 0.55..0.59 ms is 302 MB
    at 0.55 TB/s, a third of the datasheet's 1.64; the model's 0.61 ms comes from its 8 MB
    L2 capping the weight tiles (with a 40 MB weight buffer it predicts 0.22 ms), so this
    agreement is partly the model's, not the GPU's (docs/calibration.md §8)."""
    t = mi210["matmul"]
    t = t[(t.N == 12288) & (t.M <= 128)]
    assert len(t) == 3 and t.error.abs().max() < 0.11, t


def test_mi210_compute_bound_matmuls_miss_by_one_uniform_rate(mi210):
    """The 10 compute-bound matmuls are all predicted 27.1..31.7 % fast: the card ran at ~70 %
    of the datasheet's 181 TFLOP/s (118..122 measured), as a 300 W part below its 1.7 GHz
    peak would; the spread is shape-independent (fold waves right), the level is the clock.
    A wave miscount or a per-shape bug spreads the errors past 6 points."""
    errors = _mi210_compute_bound(mi210).error
    assert len(errors) == 10 and errors.max() - errors.min() < 0.06, errors
    assert -0.33 < errors.min() and errors.max() < -0.26, errors


@pytest.mark.xfail(strict=True, reason="MI210 at the datasheet clock: compute-bound matmuls "
                   "-27..-32 % (measured 118..122 of 181 TFLOP/s; no published sustained clock "
                   "to set sustained_clock_hz from)")
def test_mi210_compute_bound_matmuls_within_15_percent(mi210):
    assert _mi210_compute_bound(mi210).error.abs().max() < 0.15


@pytest.mark.xfail(strict=True, reason="MI210 vector ops: measured at most 154 G elements/s "
                   "(GeLU: 0.62 TB/s, 38 % of 1.64) against the model's 296: -48 % at best, "
                   "-83..-93 % under the launch floor")
def test_mi210_vector_ops_within_18_percent(mi210):
    assert max(mi210[k].error.abs().max() for k in ("gelu", "layernorm", "softmax")) < 0.18

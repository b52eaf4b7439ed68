"""The A100 model against the published real-GPU measurements it was not fitted to.

LLMCompass (Zhang et al., "LLMCompass: Enabling Efficient Hardware Design for Large
Language Model Inference", ISCA 2024) publishes measured A100 latencies: matmuls (M
sweep at N = K = 12288 and N = K sweep at M = 8192), layernorm / softmax / gelu
throughput over sizes, and one GPT-3-175B layer per operator on 4 x A100 (4-way tensor
parallel, batch 8, fp16; prefill of 2048 tokens and decode at KV 3072), and the same
matmuls and vector ops on an MI210 (``hw_configs/mi210.yaml``). The CSVs live in
``../shared/data/llmcompass/`` (never in this repository). Every row here is simulated
by speedsim's own cost path on ``hw_configs/a100.yaml``: a matmul through
``speedsim.api.gemm_time_s``, a vector op and a batched attention GEMM as one work item
through the replay engine (``item_time_s``), as ``gemm_time_s`` does a matmul.

The GPT-3 layer is one tensor-parallel shard (speedsim has no TP): d_model 12288, 96 / 4
= 24 heads of 128 per GPU, QKV 12288 -> 3 x 3072, Wo 3072 -> 12288, W1 12288 -> 12288
(49152 / 4), W2 12288 -> 12288. AllReduce is outside the model (no interconnect): it is
listed, never compared. Run: ``python benchmarks/gpu/published.py [DATA_DIR]``; it prints
one table per dataset (deterministic).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from speedsim.api import gemm_time_s
from speedsim.config.hw import Hardware, load_hardware
from speedsim.contracts.workitem import WorkItem
from speedsim.sim.engine import replay

ROOT = Path(__file__).resolve().parents[2]
A100 = ROOT / "hw_configs" / "a100.yaml"
MI210 = ROOT / "hw_configs" / "mi210.yaml"
D_MODEL, HEADS, D_HEAD, TP, BATCH = 12288, 96, 128, 4, 8
PREFILL_TOKENS, DECODE_KV = 2048, 3072
VECTOR_OPS = {"layernorm": "norm", "softmax": "softmax", "gelu": "activation"}


def data_dir(argv: list[str]) -> Path | None:
    """The LLMCompass CSV folder: ``argv[1]``, else ``shared/data/llmcompass`` above the repo."""
    if len(argv) > 1:
        return Path(argv[1])
    for base in (ROOT.parent, ROOT.parent.parent):
        if (base / "shared" / "data" / "llmcompass").is_dir():
            return base / "shared" / "data" / "llmcompass"
    return None


def item_time_s(hw: Hardware, item: WorkItem) -> float:
    """Simulated seconds of ``item`` alone on ``hw``."""
    return replay([item], hw).total_cycles / hw.clock_hz


def vector_time_s(hw: Hardware, kind: str, elements: int) -> float:
    """One elementwise op of ``elements`` inputs (read once, written once) on the vector unit."""
    e = hw.bytes_per_element
    return item_time_s(hw, WorkItem(id=0, unit=hw.placement.elementwise, op=kind, phase="prefill",
                                    elements=elements, vector_kind=VECTOR_OPS[kind],
                                    act_in_bytes=elements * e, act_out_bytes=elements * e,
                                    vector_ops=elements))


def batched_gemm_time_s(hw: Hardware, count: int, m: int, k: int, n: int) -> float:
    """``count`` independent ``[m,k] x [k,n]`` GEMMs as one item (batched attention), every
    operand from DRAM: the second operand (K^T or V) read once per GEMM."""
    e = hw.bytes_per_element
    return item_time_s(hw, WorkItem(id=0, unit=hw.placement.attention, op="attn", phase="prefill",
                                    m=m, k=k, n=n, count=count, weight_key=None,
                                    kv_read_bytes=count * k * n * e, act_in_bytes=count * m * k * e,
                                    act_out_bytes=count * m * n * e, macs=count * m * k * n))


def matmul_table(hw: Hardware, real: pd.DataFrame) -> pd.DataFrame:
    """Every published matmul with speedsim's latency and the relative error."""
    sim = [gemm_time_s(hw, int(r.M), int(r.K), int(r.N)) * 1e3 for r in real.itertuples()]
    return real[["M", "N", "K", "latency_ms"]].assign(sim_ms=sim, error=lambda t: t.sim_ms / t.latency_ms - 1)


def vector_table(hw: Hardware, kind: str, real: pd.DataFrame) -> pd.DataFrame:
    """Every published size of a vector op: throughput in G elements/s, measured and simulated."""
    elements = real.num_elements if "num_elements" in real else real.M * real.N
    sim = [e / vector_time_s(hw, kind, int(e)) / 1e9 for e in elements]
    out = real.assign(elements=elements, sim_G_per_s=sim)
    return out.assign(error=out.throughput_Gelements_per_s / out.sim_G_per_s - 1)  # latency error


def gpt3_operators(hw: Hardware, decode: bool) -> dict[str, float]:
    """Simulated seconds of each operator of one TP shard of a GPT-3-175B layer."""
    heads = HEADS // TP
    tokens = BATCH * (1 if decode else PREFILL_TOKENS)
    q, kv = (1, DECODE_KV) if decode else (PREFILL_TOKENS, PREFILL_TOKENS)
    norm = vector_time_s(hw, "layernorm", tokens * D_MODEL)
    return {"Q_K_V": gemm_time_s(hw, tokens, D_MODEL, 3 * D_MODEL // TP),
            "Q_mul_K": batched_gemm_time_s(hw, BATCH * heads, q, D_HEAD, kv),
            "A_mul_V": batched_gemm_time_s(hw, BATCH * heads, q, kv, D_HEAD),
            "Wo_proj": gemm_time_s(hw, tokens, D_MODEL // TP, D_MODEL),
            "W1_proj": gemm_time_s(hw, tokens, D_MODEL, 4 * D_MODEL // TP),
            "W2_proj": gemm_time_s(hw, tokens, 4 * D_MODEL // TP, D_MODEL),
            "Softmax": vector_time_s(hw, "softmax", BATCH * heads * q * kv),
            "LayerNorm_MHA": norm, "LayerNorm_FFN": norm,
            "GeLU": vector_time_s(hw, "gelu", tokens * 4 * D_MODEL // TP)}


def gpt3_table(hw: Hardware, real: pd.DataFrame, decode: bool) -> pd.DataFrame:
    """Every published operator, simulated where speedsim models it (AllReduce: NaN)."""
    sim = gpt3_operators(hw, decode)
    out = real.assign(sim_s=[sim.get(op, float("nan")) for op in real.operator])
    return out.assign(error=out.sim_s / out.latency_s - 1)


def tables(hw: Hardware, data: Path, gpu: str = "A100") -> dict[str, pd.DataFrame]:
    """Every dataset's table of ``gpu`` (A100 or MI210; the GPT-3 layer: A100 only), by name."""
    read = lambda name: pd.read_csv(data / f"llmcompass_real_{name}.csv")  # noqa: E731
    out = {"matmul": matmul_table(hw, read(f"{gpu}_matmul_fp16"))}
    for kind in VECTOR_OPS:
        out[kind] = vector_table(hw, kind, read(f"{gpu}_{kind}"))
    if gpu != "A100":
        return out
    out["gpt3_prefill"] = gpt3_table(hw, read("4xA100_gpt3_layer_transformer"), decode=False)
    out["gpt3_decode"] = gpt3_table(hw, read("4xA100_gpt3_layer_transformerAR"), decode=True)
    return out


def main(argv: list[str]) -> int:
    data = data_dir(argv)
    if data is None:
        print("no LLMCompass data: pass its folder", file=sys.stderr)
        return 2
    with pd.option_context("display.width", 200, "display.max_rows", 100,
                           "display.float_format", "{:.4g}".format):
        for gpu, config in (("A100", A100), ("MI210", MI210)):
            for name, table in tables(load_hardware(config), data, gpu).items():
                print(f"\n== {gpu} {name}: worst |error| {table.error.abs().max():.1%}\n{table.to_string(index=False)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

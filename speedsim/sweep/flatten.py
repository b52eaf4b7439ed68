"""One sweep point's result row: a run summary flattened to ``a.b.c`` columns, plus silicon.

``silicon.cost_proxy`` = PEs + on-chip SRAM in KiB: a crude area stand-in for
Pareto fronts (one PE ~ one KiB of SRAM), not a cost model.
"""

from __future__ import annotations

from typing import Any

from speedsim.config.hw import Hardware


def flatten_summary(summary: dict[str, Any], hw: Hardware) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, m in summary["strategies"].items():
        _walk(flat, name, m)
    _walk(flat, "speedup", summary["speedup"])
    _walk(flat, "roofline", summary["roofline"])
    flat["tokens_match"] = summary["tokens_match"]
    flat.update(silicon(hw))
    return flat


def _walk(flat: dict[str, Any], prefix: str, obj: Any) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            _walk(flat, f"{prefix}.{k}" if prefix else str(k), v)
    else:
        flat[prefix] = obj


def silicon(hw: Hardware) -> dict[str, Any]:
    b = hw.buffers
    pes = hw.array.pes
    sram_kib = sum(x.size_kib for x in (b.weight, b.activation, b.accumulator, b.kv)
                   if x is not None)
    return {"silicon.pes": pes, "silicon.sram_kib": sram_kib,
            "silicon.cost_proxy": pes + sram_kib}

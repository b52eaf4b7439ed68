"""Energy of a replay (DESIGN §6): a pure function of a ``SimResult`` and its ``Hardware``.

All parts in joules:

* ``compute`` = Σ MACs of array items × ``energy.mac_pj``
* ``vector``  = Σ (vector_ops + MACs of vector-unit items) × ``energy.vector_op_pj``
* ``sram``    = Σ over buffers of bytes written into plus bytes read out of the
  buffer × its ``energy_pj_per_byte``. Per item (columns of ``SimResult.items``):
  weight buffer = bytes fetched into it + the item's weight bytes read out
  (``weight_sram_bytes``); activation buffer = activations read and written
  on chip, spilled activations once more (DMA side), bytes passing through it
  to or from DRAM (KV, vector-unit parameters) written once and read once
  (``act_sram_bytes``); accumulator = outputs written and read out once
  (``acc_sram_bytes``); KV buffer = KV bytes read and written on chip
  (``kv_sram_bytes``).
* ``dram``    = bits moved (weights fetched, KV reads and writes, spilled
  activations) × ``dram.energy_pj_per_bit``
* ``static``  = ``static_power_w`` × total cycles / ``clock_hz`` (idle cycles cost too)
* ``total``   = the sum of the five parts
* ``wasted``  = Σ over items of the item's dynamic energy × its ``wasted_fraction``
  (a share of the total, not an extra part; static energy is not attributed)
"""

from __future__ import annotations

import numpy as np

from speedsim.config.hw import Hardware

PJ = 1e-12


def _per_item_parts(items, hw: Hardware) -> dict[str, np.ndarray]:
    on_array = (items["unit"] == "array").to_numpy()
    macs = items["macs"].to_numpy(dtype=float)
    vops = items["vector_ops"].to_numpy(dtype=float)
    b = hw.buffers
    sram = (items["weight_sram_bytes"].to_numpy(dtype=float) * b.weight.energy_pj_per_byte
            + items["act_sram_bytes"].to_numpy(dtype=float) * b.activation.energy_pj_per_byte
            + items["acc_sram_bytes"].to_numpy(dtype=float) * b.accumulator.energy_pj_per_byte)
    if b.kv is not None:
        sram = sram + items["kv_sram_bytes"].to_numpy(dtype=float) * b.kv.energy_pj_per_byte
    dram_bytes = items[["weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes",
                        "act_bytes"]].to_numpy(dtype=float).sum(axis=1)
    return {
        "compute": np.where(on_array, macs, 0.0) * hw.energy.mac_pj * PJ,
        "vector": (vops + np.where(on_array, 0.0, macs)) * hw.energy.vector_op_pj * PJ,
        "sram": sram * PJ,
        "dram": dram_bytes * 8 * hw.dram.energy_pj_per_bit * PJ,
    }


def energy(result, hw: Hardware | None = None) -> dict[str, float]:
    """Energy breakdown in joules: total, dram, sram, compute, vector, static, wasted."""
    hw = hw or result.hw
    parts = _per_item_parts(result.items, hw)
    out = {name: float(v.sum()) for name, v in parts.items()}
    out["static"] = hw.energy.static_power_w * result.total_cycles / hw.clock_hz
    out["total"] = out["dram"] + out["sram"] + out["compute"] + out["vector"] + out["static"]
    dynamic = sum(parts.values())
    out["wasted"] = float((dynamic * result.items["wasted_fraction"].to_numpy(dtype=float)).sum())
    return {k: out[k] for k in ("total", "dram", "sram", "compute", "vector", "static", "wasted")}

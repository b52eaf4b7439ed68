"""Energy of a replay (DESIGN §6): a pure function of the work items, the replay's
per-item table and the ``Hardware``. Every byte count comes from the item table's
DRAM columns, the work items' own sizes and the pure placement rules of
``speedsim.hw.cost`` (which KV stays on chip); the engine only reports what moved.

All parts in joules:

* ``compute`` = Σ MACs of array items × ``energy.mac_pj``
* ``vector``  = Σ (vector_ops + MACs of vector-unit items) × ``energy.vector_op_pj``
* ``sram``    = Σ over buffers of bytes written into plus bytes read out of the
  buffer × its ``energy_pj_per_byte`` (``sram_bytes``). Per item:
  weight buffer = bytes fetched into it + the item's weight bytes read out
  (array items); activation buffer = activations read and written on chip
  (``act_in_bytes + act_out_bytes``), spilled activations once more (DMA side),
  bytes passing through it to or from DRAM (KV, vector-unit parameters) written
  once and read once; accumulator = outputs written and read out once (array
  items); KV buffer = KV bytes read and written on chip (when it holds the run's
  KV, ``cost.kv_on_chip``).
* ``dram``    = bits moved (weights fetched, KV reads and writes, spilled
  activations) × ``dram.energy_pj_per_bit``
* ``static``  = ``static_power_w`` × total cycles / ``clock_hz`` (idle cycles cost too)
* ``total``   = the sum of the five parts
* ``wasted``  = Σ over items of the item's dynamic energy × its ``wasted_fraction``
  (a share of the total, not an extra part; static energy is not attributed)
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter
from typing import Any, Sequence

import numpy as np
import pandas as pd

from speedsim.config.hw import Hardware
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost
from speedsim.metrics.core import item_dram_bytes

PJ = 1e-12
PARTS = ("total", "dram", "sram", "compute", "vector", "static", "wasted")


def _columns(items: Sequence[WorkItem], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The items' integer fields ``names`` as float64 columns, read in one pass."""
    flat = np.fromiter(chain.from_iterable(map(attrgetter(*names), items)), np.float64,
                       len(items) * len(names))
    return dict(zip(names, flat.reshape(len(items), len(names)).T))


def sram_bytes(items: Sequence[WorkItem], table: pd.DataFrame, hw: Hardware) -> dict[str, np.ndarray]:
    """Per item (in id order) and buffer: bytes written into plus read out of it."""
    items = sorted(items, key=lambda it: it.id)
    on_array = np.array([it.unit == "array" for it in items])
    size = _columns(items, _SIZES)
    fetched = table["weight_bytes_fetched"].to_numpy(dtype=np.float64)
    kv_dram = table["kv_read_bytes"].to_numpy(dtype=np.float64) + table["kv_write_bytes"].to_numpy(dtype=np.float64)
    passing = kv_dram + np.where(on_array, 0.0, fetched)  # written once, read once
    kv_chip = cost.kv_on_chip(items, hw)
    return {
        "weight": np.where(on_array, fetched + size["weight_bytes"], 0.0),
        "activation": size["act_in_bytes"] + size["act_out_bytes"]
        + table["act_bytes"].to_numpy(dtype=np.float64) + 2 * passing,
        "accumulator": np.where(on_array, 2 * size["act_out_bytes"], 0.0),
        "kv": (size["kv_read_bytes"] + size["kv_write_bytes"]) * kv_chip,
    }


_SIZES = ("weight_bytes", "act_in_bytes", "act_out_bytes", "kv_read_bytes", "kv_write_bytes")


def _sram_pj(items: Sequence[WorkItem], table: pd.DataFrame, hw: Hardware) -> np.ndarray:
    total = np.zeros(len(table))
    for name, bytes_ in sram_bytes(items, table, hw).items():
        buf = getattr(hw.buffers, name)
        if buf is not None:
            total = total + bytes_ * buf.energy_pj_per_byte
    return total


def per_item_energy_j(items: Sequence[WorkItem], table: pd.DataFrame, hw: Hardware) -> dict[str, np.ndarray]:
    """Dynamic energy of each item (in id order), by part."""
    on_array = (table["unit"] == "array").to_numpy()
    macs = table["macs"].to_numpy(dtype=float)
    vops = table["vector_ops"].to_numpy(dtype=float)
    return {
        "compute": np.where(on_array, macs, 0.0) * hw.energy.mac_pj * PJ,
        "vector": (vops + np.where(on_array, 0.0, macs)) * hw.energy.vector_op_pj * PJ,
        "sram": _sram_pj(items, table, hw) * PJ,
        "dram": item_dram_bytes(table) * 8 * hw.dram.energy_pj_per_bit * PJ,
    }


def energy(items: Sequence[WorkItem], sim: Any, hw: Hardware) -> dict[str, float]:
    """Energy breakdown in joules (``PARTS``) of the replay ``sim`` of ``items`` on ``hw``."""
    parts = per_item_energy_j(items, sim.items, hw)
    out = {name: float(v.sum()) for name, v in parts.items()}
    out["static"] = hw.energy.static_power_w * sim.total_cycles / hw.clock_hz
    out["total"] = out["dram"] + out["sram"] + out["compute"] + out["vector"] + out["static"]
    out["wasted"] = wasted_j(parts, sim.items)
    return {k: out[k] for k in PARTS}


def wasted_j(parts: dict[str, np.ndarray], table: pd.DataFrame) -> float:
    """Σ over items of the item's dynamic energy × its ``wasted_fraction``."""
    return float((sum(parts.values()) * table["wasted_fraction"].to_numpy(dtype=float)).sum())

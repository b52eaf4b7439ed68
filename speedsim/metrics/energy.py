"""Energy of a replay (DESIGN §6): a pure function of the work items, the replay's
per-item table and the ``Hardware``. Every byte count comes from the item table's
DRAM columns, the work items' own sizes and the pure placement rules of
``speedsim.hw.cost`` (which KV stays on chip); the engine only reports what moved.

All parts in joules. Each compute unit's operations go to its ``energy_part``
(``Hardware.units``: the array's to ``compute``, the vector unit's to ``vector``), priced
by its kind:

* matrix units: Σ MACs of their items × ``energy.mac_pj``
* elementwise units: Σ (vector_ops + MACs of their items) × ``energy.vector_op_pj``
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
* ``total``   = the sum of the parts above
* ``wasted``  = Σ over items of the item's dynamic energy × its ``wasted_fraction``
  (a share of the total, not an extra part; static energy is not attributed)
"""

from __future__ import annotations

from itertools import chain
from operator import attrgetter
from typing import Any, Mapping, Sequence, Union

import numpy as np
import pandas as pd

from speedsim.config.hw import Hardware
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost
from speedsim.metrics.core import item_dram_bytes

PJ = 1e-12
# a replay's items table (``SimResult.items``), or its columns by name (``frames=False``)
Table = Union[pd.DataFrame, Mapping[str, np.ndarray]]


def parts(hw: Hardware) -> tuple[str, ...]:
    """The ``energy_j`` keys, in order: the units' parts between ``sram`` and ``static``
    (``compute`` and ``vector`` for the array and the vector unit)."""
    units = tuple(dict.fromkeys(u.energy_part for u in hw.units))
    return ("total", "dram", "sram", *units, "static", "wasted")


def _on_matrix(unit: np.ndarray, hw: Hardware) -> np.ndarray:
    """Per item, from its ``unit`` column: it runs on a matrix unit."""
    return np.isin(unit, [u.name for u in hw.units if u.kind == "matrix"])


def _columns(items: Sequence[WorkItem], names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The items' integer fields ``names`` as float64 columns, read in one pass."""
    flat = np.fromiter(chain.from_iterable(map(attrgetter(*names), items)), np.float64,
                       len(items) * len(names))
    return dict(zip(names, flat.reshape(len(items), len(names)).T))


def sram_bytes(items: Sequence[WorkItem], table: Table, hw: Hardware) -> dict[str, np.ndarray]:
    """Per item (in id order) and buffer: bytes written into plus read out of it."""
    items = sorted(items, key=lambda it: it.id)
    on_array = _on_matrix(np.array([it.unit for it in items]), hw)
    size = _columns(items, _SIZES)
    fetched = np.asarray(table["weight_bytes_fetched"], dtype=np.float64)
    kv_dram = np.asarray(table["kv_read_bytes"], dtype=np.float64) + np.asarray(table["kv_write_bytes"], dtype=np.float64)
    passing = kv_dram + np.where(on_array, 0.0, fetched)  # written once, read once
    kv_chip = cost.kv_on_chip(items, hw)
    return {
        "weight": np.where(on_array, fetched + size["weight_bytes"], 0.0),
        "activation": size["act_in_bytes"] + size["act_out_bytes"]
        + np.asarray(table["act_bytes"], dtype=np.float64) + 2 * passing,
        "accumulator": np.where(on_array, 2 * size["act_out_bytes"], 0.0),
        "kv": (size["kv_read_bytes"] + size["kv_write_bytes"]) * kv_chip,
    }


_SIZES = ("weight_bytes", "act_in_bytes", "act_out_bytes", "kv_read_bytes", "kv_write_bytes")


def _sram_pj(items: Sequence[WorkItem], table: Table, hw: Hardware) -> np.ndarray:
    total = np.zeros(len(table["item"]))
    for name, bytes_ in sram_bytes(items, table, hw).items():
        buf = getattr(hw.buffers, name)
        if buf is not None:
            total = total + bytes_ * buf.energy_pj_per_byte
    return total


def per_item_energy_j(items: Sequence[WorkItem], table: Table, hw: Hardware) -> dict[str, np.ndarray]:
    """Dynamic energy of each item (in id order), by part."""
    out = {part: np.zeros(len(table["item"])) for part in parts(hw)[3:-2]}
    for unit, pj in _operation_pj(table, hw).items():
        out[hw.unit(unit).energy_part] += pj * PJ
    out["sram"] = _sram_pj(items, table, hw) * PJ
    out["dram"] = item_dram_bytes(table) * 8 * hw.dram.energy_pj_per_bit * PJ
    return out


def _operation_pj(table: Table, hw: Hardware) -> dict[str, np.ndarray]:
    """Per compute unit, per item (0 off the unit): picojoules of its operations."""
    unit = np.asarray(table["unit"])
    macs = np.asarray(table["macs"], dtype=float)
    vops = np.asarray(table["vector_ops"], dtype=float)
    out = {}
    for u in hw.units:
        ops = macs * hw.energy.mac_pj if u.kind == "matrix" else (vops + macs) * hw.energy.vector_op_pj
        out[u.name] = np.where(unit == u.name, ops, 0.0)
    return out


def energy(items: Sequence[WorkItem], sim: Any, hw: Hardware) -> dict[str, float]:
    """Energy breakdown in joules (``parts``) of the replay ``sim`` of ``items`` on ``hw``."""
    per_item = per_item_energy_j(items, sim.items, hw)
    out = {name: float(v.sum()) for name, v in per_item.items()}
    out["static"] = hw.energy.static_power_w * sim.total_cycles / hw.clock_hz
    total = out["dram"] + out["sram"]
    for part in parts(hw)[3:-2]:  # the units' parts
        total += out[part]
    out["total"] = total + out["static"]
    out["wasted"] = wasted_j(per_item, sim.items)
    return {k: out[k] for k in parts(hw)}


def wasted_j(parts: dict[str, np.ndarray], table: pd.DataFrame) -> float:
    """Σ over items of the item's dynamic energy × its ``wasted_fraction``."""
    return float((sum(parts.values()) * table["wasted_fraction"].to_numpy(dtype=float)).sum())

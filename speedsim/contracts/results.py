"""What a replay hands on: ``SimResult`` and the columns of its tables.

Produced by ``speedsim.sim`` (the production engine and the tile-level reference),
read by ``speedsim.metrics`` and ``speedsim.report``, which therefore need not import
the engine. ``Roofline`` is the lower bound ``speedsim.hw.cost`` computes beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from speedsim.config.hw import Hardware

if TYPE_CHECKING:
    import pandas as pd

LOG_COLUMNS = ("unit", "item", "op", "kind", "category", "start_cycle", "end_cycle", "bytes",
               "macs", "vector_ops", "wasted_fraction", "step", "tile", "busy_cycles")
LOG_TEXT_COLUMNS = ("unit", "op", "kind", "category")
ITEM_COLUMNS = ("item", "op", "unit", "phase", "label", "ready_cycle", "start_cycle",
                "compute_end_cycle", "end_cycle", "tokens", "step", "wasted_fraction", "macs",
                "vector_ops", "tiles", "weight_bytes_fetched", "kv_read_bytes", "kv_write_bytes",
                "act_bytes", "weight_sram_bytes", "act_sram_bytes", "acc_sram_bytes",
                "kv_sram_bytes")
OCCUPANCY_COLUMNS = ("buffer", "cycle", "bytes")


class Roofline(NamedTuple):
    cycles: int  # max of the bounds: each compute unit's and the DRAM's
    unit_cycles: dict[str, int]  # per compute unit (``Hardware.compute_units``): its busy cycles
    dram_cycles: int
    dram_bytes: int


@dataclass(frozen=True)
class SimResult:
    """Everything a replay produced, with the hardware that produced it.

    ``log``: one row per item and interval kind (``LOG_COLUMNS``): its compute
    span on its unit (kind ``compute``) and its transfers on
    ``dram`` (kind ``load``/``store``, category ``weight``/``stream``/``param``/
    ``output``), each from the first transfer's start to the last one's end.
    ``items``: one row per work item (``ITEM_COLUMNS``); DRAM bytes by
    category; SRAM bytes written into plus read out of each buffer.
    ``occupancy``: bytes held per buffer at each cycle the total changed
    (``OCCUPANCY_COLUMNS``).
    ``events``: SimPy events processed.
    A lean replay (``speedsim.sim.engine.replay(frames=False)``, for callers that read
    only the items' cycles and bytes) has ``items`` as its columns by name (NumPy arrays,
    the same values) and no ``log`` or ``occupancy`` (None).
    """

    log: pd.DataFrame | None
    items: pd.DataFrame | dict[str, Any]
    occupancy: pd.DataFrame | None
    total_cycles: int
    events: int
    roofline: Roofline
    hw: Hardware
    costed: Any = None  # the items' ``speedsim.hw.cost.plan`` (``speedsim.api`` drops it: see there)

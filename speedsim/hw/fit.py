"""Whether a run's tiles fit its buffers, checked before the replay starts.

``cost.item_tiles`` cuts an item into tiles no larger than its buffer slot
where it can, but never below one array fold: a GEMM piece streams at least
its rows of one R-deep (or C-wide) fold. Each unit keeps up to ``cost.slots``
stream tiles in flight in the activation buffer, so a buffer smaller than
``slots`` times the largest indivisible tile cannot run the workload. That is
a property of the configuration, not a bug of the replay: it is reported as a
``ConfigError`` naming the buffer and the size it needs.
"""

from __future__ import annotations

import math
from typing import Sequence

from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware
from speedsim.hw import cost
from speedsim.contracts.workitem import WorkItem


def largest_stream_tile(items: Sequence[WorkItem], hw: Hardware,
                        costed: cost.CostPlan | None = None) -> tuple[int, WorkItem | None]:
    """(bytes, item) of the largest stream tile of any item (``costed``: their ``cost.plan``)."""
    sums = (costed if costed is not None else cost.plan(items, hw)).sums
    best, where = 0, None
    for it in items:
        size = sums[it.id].largest_stream
        if size > best:
            best, where = size, it
    return best, where


def check_tiles_fit(items: Sequence[WorkItem], hw: Hardware,
                    costed: cost.CostPlan | None = None) -> None:
    """``ConfigError`` naming ``hw.buffers.activation.size_kib`` when its slots cannot hold
    the largest stream tile."""
    tile_bytes, item = largest_stream_tile(items, hw, costed)
    slots = cost.slots(hw)
    capacity = hw.buffers.activation.size_kib * 1024
    if item is None or slots * tile_bytes <= capacity:
        return
    need_kib = math.ceil(slots * tile_bytes / 1024)
    raise ConfigError(
        f"{hw.buffers.activation.size_kib:g} KiB cannot hold {slots} stream tile(s) of "
        f"{tile_bytes} bytes ({item.op} in {item.phase}: one array fold of its operands); "
        f"this workload needs at least {need_kib} KiB", key="hw.buffers.activation.size_kib")

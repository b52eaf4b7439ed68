"""Every per-strategy number of the summary, from one plan, its replay and the configs.

The one place the summary's per-strategy metrics are assembled; each formula
lives in ``speedsim.metrics.core`` (latency, utilization, work, speculation),
``speedsim.metrics.energy`` and ``speedsim.metrics.roofline``, and is written
out in ``docs/metrics.md``.
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from speedsim.config.hw import Hardware
from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan
from speedsim.metrics import core
from speedsim.metrics.energy import energy
from speedsim.metrics.roofline import roofline_decode_s
from speedsim.contracts.results import SimResult


def strategy_metrics(plan: Plan, sim: SimResult, hw: Hardware, wl: Workload,
                     accepted: Optional[np.ndarray],
                     expected: Optional[np.ndarray] = None) -> dict[str, Any]:
    """The summary's metrics of one strategy; ``accepted`` None: not speculative;
    ``expected``: the probability each draft is kept, when known."""
    m: dict[str, Any] = {}
    m.update(core.latency(plan, sim.items, hw, wl))
    m["cycles"] = int(sim.total_cycles)
    m.update(core.utilization(sim, hw))
    m.update(core.work(sim))
    m["energy_j"] = energy(plan.items, sim, hw)
    m["energy_per_token_j"] = m["energy_j"]["total"] / core.run_tokens(wl)
    m["committed_tokens"] = wl.generation.new_tokens
    m["roofline_decode_s"] = roofline_decode_s(plan, hw, sim.costed)
    m["bound_by"] = core.decode_bound_by(plan, sim, hw)
    if accepted is not None:
        m["speculation"] = core.speculation(plan, accepted, expected)
    return m

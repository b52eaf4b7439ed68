"""SPEED's speedup over a (stages G × Bernoulli acceptance rate) grid, simulated in process.

A small sweep for notebooks and the speedup map: its columns are named like a
sweep's result file, so ``speedsim.report.plots.plot_speedup_map`` draws either.
"""

from __future__ import annotations

from typing import Sequence

import pandas as pd

from speedsim.api import simulate
from speedsim.config import workload_from_dict
from speedsim.config.loader import apply_overrides
from speedsim.report.plots import RATE_KEY, SPEEDUP_KEY, STAGES_KEY


def speedup_grid(hw, wl, stages: Sequence[int], rates: Sequence[float], *, seed: int = 1) -> pd.DataFrame:
    """Decode speedup of SPEED over sequential on a (stages G × Bernoulli acceptance) grid.

    ``hw``/``wl`` are validated configs (``speedsim.config``); ``wl`` must
    configure both strategies. Each point overrides
    ``strategies.speed.stages`` and ``strategies.speed.acceptance`` (bernoulli,
    ``rate``, ``seed``) through the public config API. Sequential decoding does
    not depend on either knob, so it is simulated once. Columns are named like
    a sweep's result file: ``STAGES_KEY, RATE_KEY, SPEEDUP_KEY`` plus
    ``speed.decode_time_s``, ``sequential.decode_time_s``,
    ``speed.energy_per_token_j`` and the measured ``speed.acceptance_rate``.
    """
    if not stages or not rates:
        raise ValueError("speedup_grid needs at least one stage count and one rate")
    base = wl.model_dump(mode="json")

    def point(g: int, rate: float):
        data = apply_overrides(base, [("strategies.speed.stages", int(g)),
                                      ("strategies.speed.acceptance",
                                       {"source": "bernoulli", "rate": float(rate), "seed": seed})])
        return workload_from_dict(data, file=f"{wl.name} (G={g}, rate={rate})")

    seq = simulate(hw, point(stages[0], rates[0]), ["sequential"]).summary["strategies"]["sequential"]
    rows = []
    for g in stages:
        for rate in rates:
            sp = simulate(hw, point(g, rate), ["speed"]).summary["strategies"]["speed"]
            rows.append({STAGES_KEY: int(g), RATE_KEY: float(rate),
                         SPEEDUP_KEY: seq["decode_time_s"] / sp["decode_time_s"],
                         "speed.decode_time_s": sp["decode_time_s"],
                         "sequential.decode_time_s": seq["decode_time_s"],
                         "speed.energy_per_token_j": sp["energy_per_token_j"],
                         "speed.acceptance_rate": sp["speculation"]["acceptance_rate"]})
    return pd.DataFrame(rows)

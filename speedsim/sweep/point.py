"""The real sweep point function: plain config dicts in, one flat result row out."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence

from speedsim.api import simulate
from speedsim.config.hw import hardware_from_dict
from speedsim.config.traffic import traffic_from_dict
from speedsim.config.workload import workload_from_dict
from speedsim.serve import serve
from speedsim.report.io import ReferenceCache
from speedsim.sweep.flatten import flatten_summary


def simulate_point(hw: dict[str, Any], workload: dict[str, Any],
                   strategies: Optional[Sequence[str]] = None, *, hw_file: str = "<hw>",
                   workload_file: str = "<workload>", base_dir: Optional[str] = None,
                   reference_cache_dir: Optional[str] = None,
                   traffic: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """One sweep point: validate both configs, simulate, flatten the summary.
    ``reference_cache_dir``: reuse / keep the reference decoder run there. With
    ``traffic`` the point is served instead (``speedsim.serve``): its summary's per-strategy
    entries flattened as ``<strategy>.<key>[.<percentile>]``."""
    hwc = hardware_from_dict(hw, file=hw_file)
    wlc = workload_from_dict(workload, file=workload_file, base_dir=base_dir)
    if traffic is not None:
        # one worker: the sweep already runs its points on processes of their own
        served = serve(hwc, wlc, traffic_from_dict(traffic, file="<traffic>"), strategies,
                       workers=1)
        return flat_entries(served.summary["strategies"])
    cache = ReferenceCache(Path(reference_cache_dir)) if reference_cache_dir else None
    return flatten_summary(simulate(hwc, wlc, strategies, reference_cache=cache).summary, hwc)


def flat_entries(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> ``{"a.b.c": leaf}``."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flat_entries(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out

"""Expanding a sweep into points, each with a config hash.

Expansion is deterministic: the same spec gives the same points, in the same
order, on any machine. Sampled modes draw only from ``random.Random(seed).random()``,
whose sequence Python guarantees across versions and platforms; the Latin
hypercube permutes its strata with a Fisher–Yates shuffle driven by the same
stream.

A point's configs are the base files with ``fixed`` and then its axis values
applied at their key paths. Its hash is the SHA-256 of the canonical JSON of
``{hw, workload, strategies}`` (sorted keys, no whitespace): the identity of
what was simulated, independent of dict order, process or machine.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from typing import Any, Optional

from speedsim.config.hw import Hardware
from speedsim.config.loader import apply_overrides
from speedsim.config.workload import Workload
from speedsim.sweep.spec import Sweep, SweepSpec, UniformAxis, axis_values


@dataclass(frozen=True)
class Point:
    index: int
    values: dict[str, Any]  # axis key path -> value, in axis order
    hw: dict[str, Any]
    workload: dict[str, Any]
    strategies: tuple[str, ...]
    config_hash: str
    traffic: Optional[dict[str, Any]] = None  # served points only


def config_hash(hw: dict[str, Any], workload: dict[str, Any], strategies: list[str] | tuple[str, ...],
                traffic: Optional[dict[str, Any]] = None) -> str:
    served = {} if traffic is None else {"traffic": traffic}
    blob = json.dumps({"hw": hw, "workload": workload, "strategies": list(strategies), **served},
                      sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


def axis_combinations(spec: SweepSpec) -> list[dict[str, Any]]:
    """The axis values of every point, in point order."""
    keys = list(spec.axes)
    if spec.mode == "grid":
        combos = itertools.product(*(axis_values(spec.axes[k]) for k in keys))
        return [dict(zip(keys, c)) for c in combos]
    if spec.mode == "zip":
        return [dict(zip(keys, c)) for c in zip(*(axis_values(spec.axes[k]) for k in keys))]
    rng = random.Random(spec.seed)
    n = spec.samples
    if spec.mode == "random":
        quantiles = [[rng.random() for _ in keys] for _ in range(n)]
    else:
        columns = [_lhs_column(rng, n) for _ in keys]
        quantiles = [[col[i] for col in columns] for i in range(n)]
    return [{k: _at(spec.axes[k], u) for k, u in zip(keys, row)} for row in quantiles]


def _lhs_column(rng: random.Random, n: int) -> list[float]:
    """One quantile in each of the n strata [i/n, (i+1)/n), in shuffled order."""
    strata = list(range(n))
    for i in range(n - 1, 0, -1):  # Fisher–Yates, so only random() is consumed
        j = int(rng.random() * (i + 1))
        strata[i], strata[j] = strata[j], strata[i]
    return [(s + rng.random()) / n for s in strata]


def _at(axis: Any, u: float) -> Any:
    if isinstance(axis, UniformAxis):
        return axis.at(u)
    vals = axis_values(axis)
    return vals[min(int(u * len(vals)), len(vals) - 1)]


def _split(items: dict[str, Any]) -> tuple[list[tuple[str, Any]], list[tuple[str, Any]]]:
    hw = [(k[len("hw."):], v) for k, v in items.items() if k.startswith("hw.")]
    wl = [(k[len("workload."):], v) for k, v in items.items() if k.startswith("workload.")]
    return hw, wl


def _traffic(items: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k[len("traffic."):], v) for k, v in items.items() if k.startswith("traffic.")]


def expand(sweep: Sweep) -> list[Point]:
    """Every point of the sweep, in index order."""
    spec = sweep.spec
    fixed_hw, fixed_wl = _split(spec.fixed)
    base_hw = apply_overrides(sweep.hw, fixed_hw, root=Hardware)
    base_wl = apply_overrides(sweep.workload, fixed_wl, root=Workload)
    strategies = tuple(spec.strategies)
    points = []
    for index, values in enumerate(axis_combinations(spec)):
        ax_hw, ax_wl = _split(values)
        hw = apply_overrides(base_hw, ax_hw, root=Hardware)
        wl = apply_overrides(base_wl, ax_wl, root=Workload)
        tr = None if sweep.traffic is None else apply_overrides(
            sweep.traffic, _traffic(spec.fixed) + _traffic(values))
        points.append(Point(index=index, values=values, hw=hw, workload=wl, strategies=strategies,
                            config_hash=config_hash(hw, wl, strategies, tr), traffic=tr))
    return points

"""Sweep specification: which base configs, which axes, how they combine.

A sweep file names a hardware and a workload YAML (relative to the sweep
file), a set of *axes* — contract key paths such as ``hw.array.rows`` or
``workload.strategies.speed.acceptance.rate``, each with the values it takes —
and a *mode* that combines them:

- ``grid``: the Cartesian product, last axis varying fastest;
- ``zip``: the i-th value of every axis together (all axes the same length);
- ``random``: ``samples`` independent draws, seeded by ``seed``;
- ``lhs``: a Latin hypercube of ``samples`` points, seeded by ``seed``.

An axis is written as a list, or as one of
``{values: [...]}``, ``{range: {start, stop, step}}`` (stop included when it
lands on the grid), ``{linspace: {start, stop, num}}``, ``{log2: {start, stop}}``
(start, 2·start, 4·start … up to stop), or — for ``random``/``lhs`` only — a
continuous ``{low, high, integer: false, log: false}``. Discrete axes in
``random``/``lhs`` are sampled as categories.

Every axis and ``fixed`` key must start with ``hw.`` or ``workload.`` and be a
key of the config schema, whether or not the base file sets it: a misspelt key
is rejected here with a suggestion, never silently added as a no-op. Values
are checked per point by the point function (an invalid combination becomes an
error row, the sweep goes on).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, Discriminator, Field, Tag, model_validator

from speedsim.config.base import Frozen, NonNegInt, PosInt
from speedsim.config.errors import ConfigError, KeyedValueError
from speedsim.config.hw import Hardware
from speedsim.config.keys import models_in
from speedsim.config.loader import load_mapping, validate
from speedsim.config.traffic import Traffic
from speedsim.config.workload import Strategies, Workload
from speedsim.strategies.registry import get_strategy
from speedsim.sweep.flatten import metric_problem

Number = Union[int, float]
Scalar = Union[bool, int, float, str, None]

ROOTS: dict[str, type[BaseModel]] = {"hw": Hardware, "workload": Workload, "traffic": Traffic}


def _round(x: float) -> float:
    """Float steps accumulate noise (0.1·3 = 0.30000000000000004); 12 significant digits do not."""
    return float(f"{x:.12g}")


class ValuesAxis(Frozen):
    values: Annotated[list[Scalar], Field(min_length=1)]

    def discrete(self) -> list[Any]:
        return list(self.values)


class RangeBounds(Frozen):
    start: Number
    stop: Number
    step: Number

    @model_validator(mode="after")
    def _step_reaches_stop(self) -> "RangeBounds":
        if self.step == 0 or (self.stop - self.start) * self.step < 0:
            raise KeyedValueError("step", f"step {self.step} never goes from {self.start} to {self.stop}")
        return self


class RangeAxis(Frozen):
    range: RangeBounds

    def discrete(self) -> list[Any]:
        r = self.range
        n = int(math.floor((r.stop - r.start) / r.step * (1 + 1e-12) + 1e-9)) + 1
        if all(isinstance(v, int) for v in (r.start, r.stop, r.step)):
            return [r.start + k * r.step for k in range(n)]
        return [_round(r.start + k * r.step) for k in range(n)]


class LinspaceBounds(Frozen):
    start: Number
    stop: Number
    num: Annotated[int, Field(ge=2)]


class LinspaceAxis(Frozen):
    linspace: LinspaceBounds

    def discrete(self) -> list[Any]:
        s = self.linspace
        return [_round(s.start + (s.stop - s.start) * k / (s.num - 1)) for k in range(s.num)]


class Log2Bounds(Frozen):
    start: Annotated[Number, Field(gt=0)]
    stop: Annotated[Number, Field(gt=0)]

    @model_validator(mode="after")
    def _ordered(self) -> "Log2Bounds":
        if self.stop < self.start:
            raise KeyedValueError("stop", f"stop {self.stop} is below start {self.start}")
        return self


class Log2Axis(Frozen):
    log2: Log2Bounds

    def discrete(self) -> list[Any]:
        out, v = [], self.log2.start
        while v <= self.log2.stop * (1 + 1e-12):
            out.append(v)
            v = v * 2
        return out


class UniformAxis(Frozen):
    """A continuous axis for ``random``/``lhs``: uniform (or log-uniform) on [low, high]."""

    low: Number
    high: Number
    integer: bool = False  # sample integers low … high, both included
    log: bool = False  # uniform in log space (low must be > 0)

    def problem(self) -> tuple[str, str] | None:
        """(key, message) of an inconsistency, checked by the spec (tag-free error paths)."""
        if self.high < self.low:
            return "high", f"high {self.high} is below low {self.low}"
        if self.log and self.low <= 0:
            return "low", "log sampling needs low > 0"
        if self.integer and not (float(self.low).is_integer() and float(self.high).is_integer()):
            return "low", "integer sampling needs integer low and high"
        return None

    def at(self, u: float) -> Any:
        """The value at quantile ``u`` in [0, 1)."""
        lo, hi = float(self.low), float(self.high)
        if self.integer:
            hi += 1.0  # floor maps [low, high+1) evenly onto low … high
            if self.log:
                v = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
            else:
                v = lo + u * (hi - lo)
            return int(min(math.floor(v), self.high))
        if self.log:
            return _round(math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return _round(lo + u * (hi - lo))


_FORMS = ("values", "range", "linspace", "log2")


def _axis_form(raw: Any) -> str | None:
    if isinstance(raw, list):
        return "list"
    if isinstance(raw, dict):
        for form in _FORMS:
            if form in raw:
                return form
        if "low" in raw or "high" in raw:
            return "uniform"
    if isinstance(raw, BaseModel):
        return {ValuesAxis: "values", RangeAxis: "range", LinspaceAxis: "linspace",
                Log2Axis: "log2", UniformAxis: "uniform"}.get(type(raw))
    return None


Axis = Annotated[
    Union[Annotated[list[Scalar], Tag("list")],
          Annotated[ValuesAxis, Tag("values")],
          Annotated[RangeAxis, Tag("range")],
          Annotated[LinspaceAxis, Tag("linspace")],
          Annotated[Log2Axis, Tag("log2")],
          Annotated[UniformAxis, Tag("uniform")]],
    Discriminator(_axis_form, custom_error_type="axis_form",
                  custom_error_message="an axis is a list of values or a mapping with one of "
                                       "values, range, linspace, log2, or low/high"),
]


def axis_values(axis: Any) -> list[Any]:
    """The values of a discrete axis, in order."""
    return list(axis) if isinstance(axis, list) else axis.discrete()


class SweepSpec(Frozen):
    name: Optional[str] = None
    hw: str  # base hardware YAML, relative to the sweep file
    workload: str  # base workload YAML, relative to the sweep file
    traffic: Optional[str] = None  # base traffic YAML: each point is served (speedsim serve)
    mode: Literal["grid", "zip", "random", "lhs"] = "grid"
    samples: Optional[PosInt] = None  # random / lhs only
    seed: NonNegInt = 0  # random / lhs only
    strategies: Annotated[list[str], Field(min_length=1)] = ["sequential", "speed"]
    metrics: Optional[Annotated[list[str], Field(min_length=1)]] = None  # None: default_metrics()
    fixed: dict[str, Any] = {}  # key path -> value, applied to every point before the axes
    axes: Annotated[dict[str, Axis], Field(min_length=1)]

    @model_validator(mode="after")
    def _consistent(self) -> "SweepSpec":
        for section, keys in (("fixed", self.fixed), ("axes", self.axes)):
            for key in keys:
                problem = schema_key_problem(key)
                if problem:
                    raise KeyedValueError(f"{section}.{key}", problem)
        for key in self.axes:
            if key in self.fixed:
                raise KeyedValueError(f"fixed.{key}", "is also an axis")
        for section, keys in (("fixed", self.fixed), ("axes", self.axes)):
            for key in keys:
                if key.startswith("traffic.") and self.traffic is None:
                    raise KeyedValueError(f"{section}.{key}", "traffic keys need a base traffic "
                                                              "file (traffic: …)")
        self._check_mode()
        self._check_strategies()
        self._check_metrics()
        return self

    def _check_metrics(self) -> None:
        if self.metrics is None:
            return
        if len(set(self.metrics)) != len(self.metrics):
            raise KeyedValueError("metrics", "lists a metric twice")
        for i, metric in enumerate(self.metrics):
            problem = metric_problem(metric, self.strategies, serving=self.traffic is not None)
            if problem:
                raise KeyedValueError(f"metrics[{i}]", f"{metric}: {problem}")

    def _check_mode(self) -> None:
        sampled = self.mode in ("random", "lhs")
        if sampled and self.samples is None:
            raise KeyedValueError("samples", f"required for mode {self.mode}")
        if not sampled and self.samples is not None:
            raise KeyedValueError("samples", f"only random and lhs take samples, not {self.mode}")
        for key, axis in self.axes.items():
            problem = axis.problem() if isinstance(axis, UniformAxis) else None
            if problem:
                raise KeyedValueError(f"axes.{key}.{problem[0]}", problem[1])
            if isinstance(axis, UniformAxis) and not sampled:
                raise KeyedValueError(f"axes.{key}",
                                      f"low/high needs mode random or lhs; mode {self.mode} "
                                      "needs a list, values, range, linspace or log2")
            if not isinstance(axis, UniformAxis):
                vals = axis_values(axis)
                if not vals:
                    raise KeyedValueError(f"axes.{key}", "has no values")
                if self.mode == "grid" and len(set(map(repr, vals))) != len(vals):
                    raise KeyedValueError(f"axes.{key}", f"repeats a value: {vals}")
        if self.mode == "zip":
            lengths = {k: len(axis_values(a)) for k, a in self.axes.items()}
            first = next(iter(lengths))
            for key, n in lengths.items():
                if n != lengths[first]:
                    raise KeyedValueError(f"axes.{key}",
                                          f"zip needs equal lengths: {n} values here, "
                                          f"{lengths[first]} in {first}")

    def _check_strategies(self) -> None:
        known = list(Strategies.model_fields)
        for i, name in enumerate(self.strategies):
            if name not in known:
                raise KeyedValueError(f"strategies[{i}]", f"unknown strategy {name!r} (known: {known})")
        if len(set(self.strategies)) != len(self.strategies):
            raise KeyedValueError("strategies", "lists a strategy twice")

    def kept_metrics(self) -> list[str]:
        if self.metrics is not None:
            return list(self.metrics)
        return (serve_metrics(self.strategies) if self.traffic is not None
                else default_metrics(self.strategies))


def default_metrics(strategies: list[str]) -> list[str]:
    """Time, throughput and energy per strategy, speedups, token agreement and silicon cost."""
    out = []
    for s in strategies:
        out += [f"{s}.decode_time_s", f"{s}.time_per_token_s", f"{s}.tokens_per_s",
                f"{s}.energy_per_token_j"]
    out += [f"speedup.{s}" for s in strategies if not get_strategy(s).baseline]
    return out + ["tokens_match", "silicon.pes", "silicon.sram_kib", "silicon.cost_proxy"]


def serve_metrics(strategies: list[str]) -> list[str]:
    """A serving sweep's (``traffic:``): throughput, TPOT and TTFT percentiles, goodput, and
    the throughput over sequential decoding's."""
    out = []
    for s in strategies:
        out += [f"{s}.throughput_tokens_per_s", f"{s}.tpot_s.p50", f"{s}.tpot_s.p99",
                f"{s}.ttft_s.p50", f"{s}.ttft_s.p99", f"{s}.goodput_rps", f"{s}.mean_batch",
                f"{s}.energy_per_token_j"]
    if "sequential" not in strategies:
        return out
    return out + [f"{s}.{k}" for s in strategies if s != "sequential"
                  for k in ("throughput_vs_sequential", "tpot_speedup_p50")]


def schema_key_problem(key: str) -> str | None:
    """Why ``key`` (``hw.…``, ``workload.…`` or ``traffic.…``) is not a key of the config
    schema, or None."""
    root, _, rest = key.partition(".")
    if root not in ROOTS or not rest:
        return "a key path must start with hw., workload. or traffic. and name a key below it"
    models: list[type[BaseModel]] = [ROOTS[root]]
    walked = root
    for part in rest.split("."):
        if not models:
            return f"{walked} is a value, not a mapping"
        fields = {name: f for m in models for name, f in m.model_fields.items()}
        if part not in fields:
            near = difflib.get_close_matches(part, list(fields), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else f" (keys of {walked}: {sorted(fields)})"
            return f"{part!r} is not a key of {walked}{hint}"
        models = models_in(fields[part].annotation)
        walked = f"{walked}.{part}"
    return None


@dataclass(frozen=True)
class Sweep:
    """A validated spec with its base configs read (plain dicts, as in their files)."""

    spec: SweepSpec
    file: str
    hw: dict[str, Any]
    workload: dict[str, Any]
    workload_dir: str  # relative file paths inside the workload resolve against it
    traffic: Optional[dict[str, Any]] = None  # the base traffic config, when the sweep serves
    traffic_dir: str = ""  # a relative trace path resolves against it

    @property
    def name(self) -> str:
        return self.spec.name or Path(self.file).stem


def sweep_from_dict(data: dict[str, Any], *, file: str) -> SweepSpec:
    raw_axes = data.get("axes")
    axis_keys = list(raw_axes) if isinstance(raw_axes, dict) else []
    return validate(SweepSpec, data, file=file, unions=axis_keys)


def load_sweep(path: str | Path, extra_fixed: list[tuple[str, Any]] = ()) -> Sweep:
    """Read and validate a sweep file and the two base configs it names.

    ``extra_fixed`` (from ``--set``) is merged into ``fixed`` before validation.
    """
    path = Path(path)
    data = load_mapping(path)
    if extra_fixed:
        fixed = dict(data.get("fixed") or {})
        fixed.update(extra_fixed)
        data = {**data, "fixed": fixed}
    try:
        spec = sweep_from_dict(data, file=str(path))
    except ConfigError as exc:
        raise _blamed_on_set(exc, [k for k, _ in extra_fixed]) from None
    hw_path = path.parent / spec.hw
    wl_path = path.parent / spec.workload
    tr_path = path.parent / spec.traffic if spec.traffic is not None else None
    for key, base in (("hw", hw_path), ("workload", wl_path), ("traffic", tr_path)):
        if base is not None and not base.is_file():
            raise ConfigError(f"base config not found: {base}", file=str(path), key=key)
    sweep = Sweep(spec=spec, file=str(path), hw=load_mapping(hw_path), workload=load_mapping(wl_path),
                  workload_dir=str(wl_path.parent),
                  traffic=load_mapping(tr_path) if tr_path is not None else None,
                  traffic_dir=str(tr_path.parent) if tr_path is not None else "")
    _check_strategies_configured(sweep)
    return sweep


def _blamed_on_set(exc: ConfigError, keys: list[str]) -> ConfigError:
    """An error at ``fixed.<key>`` where ``--set`` gave the key: named by the option."""
    for key in keys:
        if exc.key and (exc.key == f"fixed.{key}" or exc.key.startswith(f"fixed.{key}.")):
            return ConfigError(exc.message, file="--set", key=exc.key.removeprefix("fixed."))
    return exc


def _check_strategies_configured(sweep: Sweep) -> None:
    """Every strategy the sweep runs is configured by its workload, or by a fixed key or an
    axis below ``workload.strategies.<name>``: else every point would fail."""
    configured = _configured_strategies(sweep)
    for i, name in enumerate(sweep.spec.strategies):
        if name not in configured:
            raise ConfigError(f"strategy {name!r} is not configured in the workload "
                              f"{sweep.spec.workload} (configured: {', '.join(sorted(configured))})",
                              file=sweep.file, key=f"strategies[{i}]")


def _configured_strategies(sweep: Sweep) -> set[str]:
    """The strategies of the base workload (``sequential`` unless set to null), as the
    sweep's fixed keys and axes change them."""
    raw = sweep.spec.fixed.get("workload.strategies", sweep.workload.get("strategies"))
    raw = raw if isinstance(raw, dict) else {}
    configured = {name for name, v in raw.items() if v is not None}
    if "sequential" not in raw:
        configured.add("sequential")  # the schema's default
    for key in (*sweep.spec.fixed, *sweep.spec.axes):
        parts = key.split(".")
        if parts[:2] != ["workload", "strategies"] or len(parts) < 3:
            continue
        if len(parts) == 3 and key in sweep.spec.fixed and sweep.spec.fixed[key] is None:
            configured.discard(parts[2])  # fixed to null: not run
        else:
            configured.add(parts[2])
    return configured


__all__ = ["Sweep", "SweepSpec", "UniformAxis", "axis_values", "default_metrics", "load_sweep",
           "schema_key_problem", "serve_metrics", "sweep_from_dict"]

"""Traffic schema: how requests arrive, how long they are, how the server batches them.

A traffic file (``traffic/*.yaml``) drives ``speedsim serve``
(``speedsim.serve``). Like the hardware and workload files it is frozen,
strict and free of I/O, except that a trace file is read here once, at
validation, so that an empty, unsorted or non-finite trace is an error naming
``arrivals.path`` before any simulation.

- ``arrivals``: ``poisson`` (exponential gaps at ``rate_rps``, seeded),
  ``constant`` (one request every 1/``rate_rps`` seconds, the first at 0) or
  ``trace`` (a CSV with columns ``arrival_s, prompt_tokens, output_tokens``,
  which then also gives every request's lengths);
- ``requests``: how many (a trace: its first ``requests`` rows, all by default);
- ``prompt_tokens``, ``output_tokens``: a fixed count or a seeded distribution;
- ``scheduler``: continuous batching (``speedsim.serve.scheduler``);
- ``slo``: the latency targets ``goodput_rps`` counts requests against.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, ValidationInfo, field_validator, model_validator

from speedsim.config.base import Frozen, NonNegInt, PosFloat, PosInt
from speedsim.config.errors import KeyedValueError
from speedsim.config.loader import apply_overrides, load_mapping, validate
from speedsim.config.workload import existing_file

TRACE_COLUMNS = ("arrival_s", "prompt_tokens", "output_tokens")


class PoissonArrivals(Frozen):
    """Exponential inter-arrival gaps of mean 1/rate_rps; the first request at its gap."""

    process: Literal["poisson"]
    rate_rps: PosFloat  # mean requests per second
    seed: NonNegInt = 0  # seeds the gaps


class ConstantArrivals(Frozen):
    """One request every 1/rate_rps seconds, the first at t = 0."""

    process: Literal["constant"]
    rate_rps: PosFloat  # requests per second


class TraceArrivals(Frozen):
    """Recorded requests: a CSV with columns arrival_s, prompt_tokens, output_tokens."""

    process: Literal["trace"]
    path: str  # resolved against the traffic file's folder; must exist

    @field_validator("path")
    @classmethod
    def _readable(cls, v: str, info: ValidationInfo) -> str:
        path = existing_file(v, info, "trace file")
        read_trace(Path(path))  # raises on a bad file, blamed on arrivals.path
        return path


Arrivals = Annotated[Union[PoissonArrivals, ConstantArrivals, TraceArrivals],
                     Field(discriminator="process")]


class FixedTokens(Frozen):
    """Every request the same number of tokens (a bare number in the file means this)."""

    dist: Literal["fixed"]
    tokens: PosInt  # tokens


class UniformTokens(Frozen):
    """A whole number of tokens drawn uniformly from low .. high (both included)."""

    dist: Literal["uniform"]
    low: PosInt  # tokens
    high: PosInt  # tokens
    seed: NonNegInt = 0  # seeds the draws


class LognormalTokens(Frozen):
    """round(exp(N(ln median_tokens, sigma²))), clipped to 1 .. max_tokens."""

    dist: Literal["lognormal"]
    median_tokens: PosFloat  # tokens
    sigma: PosFloat  # standard deviation of the log
    max_tokens: PosInt  # tokens: longer draws are clipped
    seed: NonNegInt = 0  # seeds the draws


Tokens = Annotated[Union[FixedTokens, UniformTokens, LognormalTokens], Field(discriminator="dist")]


class Scheduler(Frozen):
    """Iteration-level (continuous) batching, FCFS, prefill first (``docs/serving.md``)."""

    max_batch: PosInt  # requests decoding at once
    policy: Literal["fcfs"] = "fcfs"  # admission order: arrival order
    prefill: Literal["first"] = "first"  # an admission's prefill runs as its own iteration, before decode resumes
    max_prefill_tokens: Optional[PosInt] = None  # prompt tokens one prefill iteration may take (None: no limit)


class Slo(Frozen):
    """Latency targets of one request; goodput counts the requests meeting both."""

    ttft_s: PosFloat  # time to first token
    tpot_s: PosFloat  # mean time per output token after the first


# a million requests take hours to serve (1,000 of the 7B shape take seconds to tens of seconds
# per strategy); a billion would exhaust memory drawing their arrivals
MAX_REQUESTS = 1_000_000


class Traffic(Frozen):
    """Requests arriving at one server, and how it batches them."""

    name: str  # shown in reports
    arrivals: Arrivals
    requests: Optional[Annotated[int, Field(gt=0, le=MAX_REQUESTS)]] = None  # how many; None: all of a trace (required otherwise)
    prompt_tokens: Optional[Tokens] = None  # per request (a trace gives its own)
    output_tokens: Optional[Tokens] = None  # tokens generated per request, the first by prefill
    scheduler: Scheduler
    slo: Slo

    @model_validator(mode="before")
    @classmethod
    def _bare_counts(cls, data: Any) -> Any:
        """``output_tokens: 64`` is ``{dist: fixed, tokens: 64}``."""
        if not isinstance(data, dict):
            return data
        out = dict(data)
        for key in ("prompt_tokens", "output_tokens"):
            value = out.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                if value < 1:
                    raise KeyedValueError(key, f"must be at least 1 token (got {value})")
                out[key] = {"dist": "fixed", "tokens": value}
        return out

    @model_validator(mode="after")
    def _complete(self) -> "Traffic":
        traced = self.arrivals.process == "trace"
        for key in ("prompt_tokens", "output_tokens"):
            dist = getattr(self, key)
            if isinstance(dist, UniformTokens) and dist.high < dist.low:
                raise KeyedValueError(f"{key}.high", f"must be >= low ({dist.low}), got {dist.high}")
        for key in ("prompt_tokens", "output_tokens"):
            if traced and getattr(self, key) is not None:
                raise KeyedValueError(key, "a trace gives every request's lengths; remove it")
            if not traced and getattr(self, key) is None:
                raise KeyedValueError(key, "required key is missing")
        if not traced and self.requests is None:
            raise KeyedValueError("requests", "required key is missing")
        if self.requests is not None and traced and self.requests > len(self.trace_rows()):
            raise KeyedValueError("requests", f"the trace holds {len(self.trace_rows())} requests, "
                                              f"fewer than {self.requests}")
        return self

    def trace_rows(self) -> list[tuple[float, int, int]]:
        """(arrival_s, prompt_tokens, output_tokens) per row of the trace (process trace)."""
        assert isinstance(self.arrivals, TraceArrivals), "only a trace has rows"
        return read_trace(Path(self.arrivals.path))


def read_trace(path: Path) -> list[tuple[float, int, int]]:
    """The rows of a request trace, checked: finite, sorted arrival times >= 0, prompt
    tokens >= 1, output tokens >= 1 (``ValueError`` otherwise)."""
    try:
        with open(path, newline="") as f:
            table = list(csv.reader(f))
    except OSError as exc:
        raise ValueError(f"cannot read {path} ({exc.strerror})") from None
    if not table or tuple(c.strip() for c in table[0]) != TRACE_COLUMNS:
        raise ValueError(f"{path}: the first line must be {','.join(TRACE_COLUMNS)}")
    rows = [_trace_row(path, i + 2, cells) for i, cells in enumerate(table[1:]) if cells]
    if not rows:
        raise ValueError(f"{path}: the trace holds no requests")
    for line, (a, b) in enumerate(zip(rows, rows[1:]), start=3):
        if b[0] < a[0]:
            raise ValueError(f"{path} line {line}: arrival_s {b[0]} is before the "
                                      f"previous row's {a[0]} (rows must be sorted)")
    return rows


def _trace_row(path: Path, line: int, cells: list[str]) -> tuple[float, int, int]:
    if len(cells) != 3:
        raise ValueError(f"{path} line {line}: 3 values expected, got {len(cells)}")
    try:
        arrival, prompt, output = float(cells[0]), int(cells[1]), int(cells[2])
    except ValueError:
        raise ValueError(f"{path} line {line}: not numbers: {','.join(cells)}") from None
    if not math.isfinite(arrival) or arrival < 0:
        raise ValueError(f"{path} line {line}: arrival_s must be finite and >= 0, "
                                  f"got {cells[0].strip()}")
    if prompt < 1 or output < 1:
        raise ValueError(f"{path} line {line}: prompt_tokens and output_tokens "
                                  f"must be >= 1")
    return arrival, prompt, output


def traffic_from_dict(data: dict[str, Any], *, file: str = "<traffic>",
                      base_dir: str | Path | None = None) -> Traffic:
    return validate(Traffic, data, file=file, context={"base_dir": base_dir},
                    unions=("arrivals", "prompt_tokens", "output_tokens"))


def load_traffic(path: str | Path, overrides: list[tuple[str, Any]] = ()) -> Traffic:
    """Read, override and validate a traffic YAML file."""
    path = Path(path)
    data = apply_overrides(load_mapping(path), overrides)
    return traffic_from_dict(data, file=str(path), base_dir=path.parent)

"""Base class of every config object (frozen, strict, unknown keys forbidden) and the
value types and names every config module shares (each defined only here).

Strict mode means YAML's ``"12"`` is not silently an int and ``true`` is not a
number; ``extra="forbid"`` means a misspelt key is an error naming its path.
"""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

PosInt = Annotated[int, Field(gt=0)]
NonNegInt = Annotated[int, Field(ge=0)]
PosFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
# the quantities that set a run's length in cycles are bounded where no hardware reaches, so
# an absurd value is refused by name before anything runs (not an int64 overflow minutes in):
DelayNs = Annotated[float, Field(ge=0, le=1e6)]  # one event's delay (latency, issue cost): up to 1 ms
ClockHz = Annotated[float, Field(gt=0, le=1e11)]  # up to 100 GHz, 15x any shipping logic clock
LaneCycles = Annotated[float, Field(gt=0, le=1e6)]  # cycles a lane spends on one element
BandwidthGBs = Annotated[float, Field(ge=0.01)]  # GB/s: from 10 MB/s, below any DRAM since the 1980s

SharingScheme = Literal["none", "sequence", "cycle", "cycle_rev", "loop"]  # see speedsim.model.sharing
SHARING_SCHEMES: tuple[str, ...] = get_args(SharingScheme)

Precision = Literal["int8", "fp16", "bf16", "fp32"]  # the hardware's element type
BYTES_PER_ELEMENT = {"int8": 1, "fp16": 2, "bf16": 2, "fp32": 4}
assert tuple(BYTES_PER_ELEMENT) == get_args(Precision)


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

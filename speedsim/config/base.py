"""Base class of every config object: frozen, strict, unknown keys forbidden.

Strict mode means YAML's ``"12"`` is not silently an int and ``true`` is not a
number; ``extra="forbid"`` means a misspelt key is an error naming its path.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

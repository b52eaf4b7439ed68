"""What every strategy's ``plan`` receives: the target's trace and the shape facts.

Per-strategy settings (SPEED's stage layout, K, E, acceptance, a draft model's
trace) are the strategy object's own, set by its ``configure`` (acceptance has one
entrance: ``speedsim.strategies.acceptance``; SPEED's G has one: its ``StageLayout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pandas as pd

from speedsim.config.hw import Placement
from speedsim.strategies.builder import TraceIndex


@dataclass(frozen=True)
class StrategyInput:
    trace: pd.DataFrame  # speedsim.trace.schema columns
    n_layers: int  # N
    layer_sets: tuple[int, ...]  # weight set of each layer
    prompt_tokens: int  # P
    new_tokens: int  # generated tokens per sequence; token 0 comes from prefill
    placement: Placement  # which compute unit runs each class of op (``Hardware.placement``)
    attention_batched: bool = False  # one attention item for all tokens in flight (hw choice)

    @cached_property
    def index(self) -> TraceIndex:
        """The trace grouped for lookup, built once for every strategy of a run."""
        return TraceIndex(self.trace)

    @property
    def decode_executions(self) -> int:
        """Committed decode executions: inputs at positions P .. P+new_tokens-2."""
        return self.new_tokens - 1

"""Op rows of one request at one position (decode) or one prompt length (prefill).

The rows are those of the workload's own trace (``speedsim.trace.shape_only_trace``)
for one sequence (batch 1): a decode row at position p depends on p alone (its KV
length p + 1), a prefill row on the prompt length. Blocks are built on first use
and kept, per model (scope "" the target, "draft" a draft model).
"""

from __future__ import annotations

from typing import Optional

from speedsim.contracts.oprow import OpRow
from speedsim.strategies.builder import TraceIndex
from speedsim.trace.shape_only import shape_only_trace


class RowBank:
    """``rows(scope, phase, base, layer, early)``: the op rows of one sequence."""

    def __init__(self, models: dict[str, tuple[object, Optional[int]]], bytes_per_element: int):
        self._models = models  # scope -> (model shape, exit layer of its early head or None)
        self._bpe = bytes_per_element
        self._blocks: dict[tuple[str, int], TraceIndex] = {}

    def __call__(self, scope: str, phase: str, base: int, layer: int,
                 early: bool = False) -> list[OpRow]:
        """Decode: ``base`` is the position; prefill: the prompt's tokens."""
        index = self._block(scope, base)
        return index.ops(phase, 0 if phase == "prefill" else base, layer, early)

    def _block(self, scope: str, tokens: int) -> TraceIndex:
        """Prefill of ``tokens`` prompt tokens and decode at position ``tokens``."""
        key = (scope, tokens)
        index = self._blocks.get(key)
        if index is None:
            shape, exit_layer = self._models[scope]
            trace = shape_only_trace(shape, tokens, 2, 1, self._bpe, exit_layer)
            index = self._blocks[key] = TraceIndex(trace)
        return index

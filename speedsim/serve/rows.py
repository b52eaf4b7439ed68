"""Op rows of one request at one position (decode) or one prompt length (prefill).

The rows are those of the workload's own trace (``speedsim.trace.shape_only_trace``)
for one sequence (batch 1): a decode row at position p depends on p alone (its KV
length p + 1), a prefill row on the prompt length. Blocks are built on first use
and kept, per model (scope "" the target, "draft" a draft model).
"""

from __future__ import annotations

from speedsim.contracts.oprow import OpRow
from speedsim.strategies.builder import TraceIndex
from speedsim.trace.shape_only import shape_only_trace


class RowBank:
    """``rows(scope, phase, base, layer)``: the op rows of one sequence (every head, early
    or final, is the trace's layer-N head rows, as in ``speedsim.strategies.speed``)."""

    def __init__(self, models: dict[str, object], bytes_per_element: int):
        self._models = models  # scope -> model shape
        self._bpe = bytes_per_element
        self._blocks: dict[tuple[str, int], TraceIndex] = {}

    def __call__(self, scope: str, phase: str, base: int, layer: int) -> list[OpRow]:
        """Decode: ``base`` is the position; prefill: the prompt's tokens."""
        index = self._block(scope, base)
        return index.ops(phase, 0 if phase == "prefill" else base, layer)

    def depth(self, scope: str) -> int:
        """The layer count of model ``scope``."""
        return self._models[scope].n_layers

    def _block(self, scope: str, tokens: int) -> TraceIndex:
        """Prefill of ``tokens`` prompt tokens and decode at position ``tokens``."""
        key = (scope, tokens)
        index = self._blocks.get(key)
        if index is None:
            trace = shape_only_trace(self._models[scope], tokens, 2, 1, self._bpe)
            index = self._blocks[key] = TraceIndex(trace)
        return index

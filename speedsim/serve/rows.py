"""Op rows of one request at one position (decode) or one prompt length (prefill).

The rows are those of the workload's own trace (``speedsim.trace.shape_only_trace``)
for one sequence (batch 1): a decode row at position p depends on p alone (its KV
length p + 1), a prefill row on the prompt length. Blocks are built on first use
and kept, per model (scope "" the target, "draft" a draft model): a prefill's per
prompt length, decode rows per ``DECODE_BLOCK`` positions (one trace whose prompt
is the block's first position).
"""

from __future__ import annotations

from speedsim.contracts.oprow import OpRow
from speedsim.strategies.builder import TraceIndex
from speedsim.trace.shape_only import shape_only_trace

DECODE_BLOCK = 16  # decode positions one trace serves


class RowBank:
    """``rows(scope, phase, base, layer)``: the op rows of one sequence (every head, early
    or final, is the trace's layer-N head rows, as in ``speedsim.strategies.speed``)."""

    def __init__(self, models: dict[str, object], bytes_per_element: int):
        self._models = models  # scope -> model shape
        self._bpe = bytes_per_element
        self._blocks: dict[tuple[str, str, int], TraceIndex] = {}
        self._rows: dict[tuple[str, str, int, int], list[OpRow]] = {}

    def __call__(self, scope: str, phase: str, base: int, layer: int) -> list[OpRow]:
        """Decode: ``base`` is the position; prefill: the prompt's tokens."""
        key = (scope, phase, base, layer)
        rows = self._rows.get(key)
        if rows is None:
            rows = self._rows[key] = self._lookup(scope, phase, base, layer)
        return rows

    def _lookup(self, scope: str, phase: str, base: int, layer: int) -> list[OpRow]:
        if phase == "prefill":
            return self._block(scope, phase, base, 2).ops(phase, 0, layer)
        first = max(1, base - base % DECODE_BLOCK)
        return self._block(scope, phase, first, DECODE_BLOCK + 2).ops(phase, base, layer)

    def depth(self, scope: str) -> int:
        """The layer count of model ``scope``."""
        return self._models[scope].n_layers

    def _block(self, scope: str, phase: str, tokens: int, new_tokens: int) -> TraceIndex:
        """The trace of a prompt of ``tokens`` and ``new_tokens`` generated."""
        key = (scope, phase, tokens)
        index = self._blocks.get(key)
        if index is None:
            trace = shape_only_trace(self._models[scope], tokens, new_tokens, 1, self._bpe)
            index = self._blocks[key] = TraceIndex(trace)
        return index

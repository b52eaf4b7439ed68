"""Model dimensions: the numbers a ``ModelShape`` fixes, apart from any numerics.

The NumPy decoder and the shape-only trace builder both read them; neither
needs the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from speedsim.model.sharing import shape_layer_sets
from speedsim.model.stages import StageLayout


@dataclass(frozen=True)
class Dims:
    """The numbers the decoder needs from a ``ModelShape``."""

    d: int  # d_model
    heads: int  # H, query heads
    kv_heads: int  # kvh; query head i uses kv head i // (H / kvh)
    head_dim: int  # dh = d / H
    d_ff: int
    gated: bool  # mlp == gated_gelu
    n_layers: int  # N
    vocab: int  # V
    sets: tuple[int, ...]  # weight set of each layer

    @classmethod
    def of(cls, shape) -> "Dims":
        if isinstance(shape, Dims):
            return shape
        return cls(shape.d_model, shape.n_heads, shape.kv_heads, shape.head_dim, shape.d_ff,
                   shape.mlp == "gated_gelu", shape.n_layers, shape.vocab_size,
                   shape_layer_sets(shape))


def exit_layer_of(workload) -> Optional[int]:
    """The layer after which SPEED's early head runs (N/G - 1 at exit depth 1; see
    ``speedsim.model.stages``); None without SPEED."""
    if workload.strategies.speed is None:
        return None
    return StageLayout.of(workload).early_exit_layer

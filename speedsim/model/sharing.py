"""Layer -> weight-set maps: which of the U unique parameter sets each of the N layers uses.

Takase & Kiyono's three sharing strategies plus ``none`` (docs/model.md):

=========  ====================================================================
none       l                       (U = N: every layer has its own weights)
sequence   floor(l * U / N)        (consecutive layers share: 0 0 1 1 2 2 ...)
cycle      l mod U                 (0 1 2 0 1 2 ...)
cycle_rev  l mod U for l < N - U; U - 1 - (l - (N - U)) for the last U layers
           (cycle, with the last cycle reversed: 0 1 2 0 1 2 2 1 0)
=========  ====================================================================

Invariant: every set 0..U-1 is used by at least one layer (checked).
"""

from __future__ import annotations

from functools import lru_cache

from speedsim.config.base import SHARING_SCHEMES

SCHEMES = SHARING_SCHEMES


@lru_cache(maxsize=256, typed=True)
def layer_to_set(scheme: str, n_layers: int, unique_layers: int) -> tuple[int, ...]:
    """Weight set of each layer 0..N-1 under ``scheme`` with U = ``unique_layers`` sets."""
    N, U = n_layers, unique_layers
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"n_layers must be a positive int, got {N!r}")
    if not isinstance(U, int) or not 1 <= U <= N:
        raise ValueError(f"unique_layers must be an int in 1..n_layers={N}, got {U!r}")
    if scheme == "none":
        if U != N:
            raise ValueError(f"scheme 'none' needs unique_layers = n_layers ({U} != {N})")
        sets = tuple(range(N))
    elif scheme == "sequence":
        sets = tuple(l * U // N for l in range(N))
    elif scheme == "cycle":
        sets = tuple(l % U for l in range(N))
    else:  # cycle_rev
        sets = tuple(l % U if l < N - U else U - 1 - (l - (N - U)) for l in range(N))
    assert set(sets) == set(range(U)), (scheme, N, U, sets)
    return sets


def shape_layer_sets(shape) -> tuple[int, ...]:
    """``layer_to_set`` for a ``speedsim.config.workload.ModelShape``."""
    return layer_to_set(shape.sharing.scheme, shape.n_layers, shape.unique_layers)

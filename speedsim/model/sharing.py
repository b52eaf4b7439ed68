"""Layer -> weight-set maps: which of the U unique parameter sets each of the N layers uses.

Takase & Kiyono's three sharing strategies plus ``none`` (docs/model.md):

=========  ====================================================================
none       l                       (U = N: every layer has its own weights)
sequence   floor(l * U / N)        (consecutive layers share: 0 0 1 1 2 2 ...)
cycle      l mod U                 (0 1 2 0 1 2 ...)
cycle_rev  l mod U for l < N - U; U - 1 - (l - (N - U)) for the last U layers
           (cycle, with the last cycle reversed: 0 1 2 0 1 2 2 1 0)
loop       a looped (recurrent-depth) model: P prelude layers with sets 0..P-1, a
           core of U sets P..P+U-1 applied R = (N - P - C) / U times, C coda
           layers with sets P+U..P+U+C-1 (P=1, U=2, C=1, R=2: 0 1 2 1 2 3).
           With P = C = 0 it is exactly ``cycle``.
=========  ====================================================================

Invariant: every set is used by at least one layer (checked); the number of
sets is U, or P + U + C for ``loop``.
"""

from __future__ import annotations

from functools import lru_cache

from speedsim.config.base import SHARING_SCHEMES

SCHEMES = SHARING_SCHEMES


@lru_cache(maxsize=256, typed=True)
def layer_to_set(scheme: str, n_layers: int, unique_layers: int, prelude_layers: int = 0,
                 coda_layers: int = 0) -> tuple[int, ...]:
    """Weight set of each layer 0..N-1 under ``scheme`` with U = ``unique_layers`` core sets
    (and, for ``loop`` only, ``prelude_layers`` P and ``coda_layers`` C of their own)."""
    N, U = n_layers, unique_layers
    if scheme == "loop":
        return _loop_sets(N, U, prelude_layers, coda_layers)
    if prelude_layers or coda_layers:
        raise ValueError(f"prelude and coda layers need scheme 'loop', not {scheme!r}")
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


def recurrences(n_layers: int, unique_layers: int, prelude_layers: int, coda_layers: int) -> int:
    """R = (N - P - C) / U, the core passes of a looped model; raises unless a positive int."""
    core = n_layers - prelude_layers - coda_layers
    if core < unique_layers or core % unique_layers:
        raise ValueError(f"n_layers - prelude_layers - coda_layers = {core} must be a positive "
                         f"multiple of unique_layers={unique_layers} (the recurrence count R)")
    return core // unique_layers


def _loop_sets(N: int, U: int, P: int, C: int) -> tuple[int, ...]:
    R = recurrences(N, U, P, C)
    sets = tuple(range(P)) + tuple(P + j for _ in range(R) for j in range(U)) \
        + tuple(range(P + U, P + U + C))
    assert len(sets) == N and set(sets) == set(range(P + U + C)), (N, U, P, C, sets)
    return sets


def shape_layer_sets(shape) -> tuple[int, ...]:
    """``layer_to_set`` for a ``speedsim.config.workload.ModelShape``."""
    s = shape.sharing
    return layer_to_set(s.scheme, shape.n_layers, shape.unique_layers, s.prelude_layers,
                        s.coda_layers)

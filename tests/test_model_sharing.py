"""Layer -> weight-set maps (docs/model.md table), over a grid and by hand."""

import pytest

from speedsim.model.sharing import SCHEMES, layer_to_set

GRID = [(N, U) for N in range(1, 13) for U in range(1, N + 1)]


@pytest.mark.parametrize("N,U", GRID)
def test_formulas_and_invariants(N, U):
    seq = layer_to_set("sequence", N, U)
    cyc = layer_to_set("cycle", N, U)
    rev = layer_to_set("cycle_rev", N, U)
    assert seq == tuple(l * U // N for l in range(N))
    assert cyc == tuple(l % U for l in range(N))
    assert rev[:N - U] == cyc[:N - U]
    assert rev[N - U:] == tuple(reversed(range(U)))
    for sets in (seq, cyc, rev):
        assert len(sets) == N and set(sets) == set(range(U))
    assert list(seq) == sorted(seq)  # sequence: contiguous runs
    if N % U == 0:  # every set used equally often
        for sets in (seq, cyc, rev):
            assert all(sets.count(u) == N // U for u in range(U))


@pytest.mark.parametrize("N", range(1, 9))
def test_none_is_identity(N):
    assert layer_to_set("none", N, N) == tuple(range(N))


@pytest.mark.parametrize("scheme,N,U,expected", [
    ("cycle_rev", 6, 3, (0, 1, 2, 2, 1, 0)),
    ("cycle_rev", 9, 3, (0, 1, 2, 0, 1, 2, 2, 1, 0)),
    ("cycle_rev", 8, 2, (0, 1, 0, 1, 0, 1, 1, 0)),
    ("cycle_rev", 7, 3, (0, 1, 2, 0, 2, 1, 0)),
    ("cycle_rev", 5, 2, (0, 1, 0, 1, 0)),
    ("cycle_rev", 4, 4, (3, 2, 1, 0)),
    ("cycle_rev", 3, 1, (0, 0, 0)),
    ("sequence", 6, 3, (0, 0, 1, 1, 2, 2)),
    ("sequence", 5, 2, (0, 0, 0, 1, 1)),
    ("cycle", 6, 4, (0, 1, 2, 3, 0, 1)),
])
def test_hand_written(scheme, N, U, expected):
    assert layer_to_set(scheme, N, U) == expected


@pytest.mark.parametrize("args", [("ring", 4, 2), ("none", 4, 2), ("cycle", 4, 5),
                                  ("cycle", 4, 0), ("cycle", 0, 1), ("sequence", 4, 2.0)])
def test_bad_arguments_raise(args):
    with pytest.raises(ValueError):
        layer_to_set(*args)


"""Steady state of a run of identical weight tiles, in closed form (a pure function).

A run of identical array tiles that need only weights, with nothing else using
the DRAM, obeys a fixed recurrence (``speedsim.sim.engine`` and
``speedsim.hw.units`` define it tile by tile). For tile g, with ``c`` compute
cycles, ``f`` bulk DRAM cycles, latency ``L``, ``slots`` weight slots and
``engines`` DMA engines::

    compute_start(g) = max(compute_end(g-1), arrival(g))
    compute_end(g)   = compute_start(g) + c
    # tile g's slot frees at compute_end(g): the loader issues tile g + slots
    start(g+slots)   = max(compute_end(g), finish(g+slots-1), arrival(g+slots-engines))
    finish(g+slots)  = start(g+slots) + f
    arrival(g+slots) = finish(g+slots) + L

Every term is a max of sums, so the recurrence commutes with a shift of all
cycles: its *relative state* after tile g, the pending arrivals and the last
finish taken relative to compute_end(g) and clipped at zero (a cycle already
past constrains nothing), determines everything that follows up to that
shift. ``weight_run`` steps the recurrence; as soon as a relative state repeats
(``p`` tiles apart, ``P`` cycles apart), the run is periodic from there on, and
whole periods are added arithmetically. Nothing is approximated: the result is
the one tile-by-tile stepping gives (``tests/test_sim_engine.py`` checks it).
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple


class RunState(NamedTuple):
    """The pipeline between two tiles of a run (absolute cycles)."""

    now: int  # compute end of the last tile done (the array is free from here)
    pending: tuple[tuple[int, int, int], ...]  # (start, finish, arrival) of issued tiles, in order
    older_arrivals: tuple[int, ...]  # arrivals of the bulk transfers issued before those
    consumed_finish: int  # finish of the transfer issued just before ``pending``


class RunResult(NamedTuple):
    state: RunState
    tiles: int  # tiles computed
    first_start: int  # bulk start of the first tile issued in the run (-1: none issued)
    last_finish: int
    issues: tuple[int, ...] = ()  # issue cycles of the first ``first_issues`` tiles issued


def _step(state: RunState, c: int, f: int, latency: int, engines: int) -> RunState:
    """Compute the next pending tile, then issue one more tile into its slot."""
    (_, _, arrival), rest = state.pending[0], state.pending[1:]
    end = max(state.now, arrival) + c
    arrivals = state.older_arrivals + tuple(p[2] for p in state.pending)
    prev_finish = state.pending[-1][1]
    start = max(end, prev_finish, arrivals[-engines] if len(arrivals) >= engines else 0)
    older = (state.older_arrivals + (arrival,))[-engines:]
    return RunState(end, rest + ((start, start + f, start + f + latency),), older,
                    state.pending[0][1])


def _relative(state: RunState) -> tuple:
    t = state.now
    return (tuple([x - t if x > t else 0 for p in state.pending for x in p]),
            tuple([a - t if a > t else 0 for a in state.older_arrivals]))


def _shift(state: RunState, by: int) -> RunState:
    return RunState(state.now + by, tuple([(s + by, e + by, a + by) for s, e, a in state.pending]),
                    tuple([a + by for a in state.older_arrivals]), state.consumed_finish + by)


def weight_run(state: RunState, tiles: int, c: int, f: int, latency: int, engines: int,
               horizon: float = float("inf"), first_issues: int = 0) -> RunResult:
    """Play up to ``tiles`` tiles of a run from ``state``, none ending after ``horizon``.

    Each tile computed issues one new tile (its slot's next), so ``pending``
    keeps its length. Returns the state after the last tile played.

    Without a horizon, a run of at least ``len(pending) + engines`` tiles depends only on the
    relative state (every cycle it computes is a max with one at or after ``now``),
    so runs from equal relative states are computed once and shifted.
    """
    if not state.pending or min(c, f) < 0 or engines < 1:
        raise ValueError("weight_run needs pending tiles, c, f >= 0 and engines >= 1")
    if horizon != float("inf") or tiles < len(state.pending) + engines:
        return _play(state, tiles, c, f, latency, engines, horizon, first_issues)
    pending, older = _relative(state)
    at_zero = RunState(0, tuple(zip(pending[0::3], pending[1::3], pending[2::3])), older, 0)
    res = _play_from_zero(at_zero, tiles, c, f, latency, engines, first_issues)
    now = state.now
    return RunResult(_shift(res.state, now), res.tiles, res.first_start + now if res.tiles else -1,
                     res.last_finish + now if res.tiles else -1,
                     tuple([t + now for t in res.issues]))


@lru_cache(maxsize=1024)
def _play_from_zero(state: RunState, tiles: int, c: int, f: int, latency: int,
                    engines: int, first_issues: int) -> RunResult:
    return _play(state, tiles, c, f, latency, engines, float("inf"), first_issues)


def _play(state: RunState, tiles: int, c: int, f: int, latency: int, engines: int,
          horizon: float, first_issues: int = 0) -> RunResult:
    """``weight_run``, stepped (and whole periods added) from ``state``."""
    seen: dict[tuple, tuple[int, int]] = {}
    done, first, last = 0, -1, -1
    issues: list[int] = []  # tile done+1 of the run is issued at compute end of tile done
    while done < tiles:
        key = _relative(state)
        if key in seen:  # periodic: p tiles shift every cycle by P
            k0, t0 = seen.pop(key)
            p, P = done - k0, state.now - t0
            periods = (tiles - done) // p
            if P > 0 and horizon != float("inf"):
                periods = min(periods, int((horizon - state.now) // P))
            if periods > 0:
                while len(issues) < min(done + periods * p, first_issues):
                    issues.append(issues[len(issues) - p] + P)
                state = _shift(state, periods * P)
                done += periods * p
                last = state.pending[-1][1]
                continue
        seen[key] = (done, state.now)
        nxt = _step(state, c, f, latency, engines)
        if nxt.now > horizon:
            break
        state = nxt
        done += 1
        if len(issues) < first_issues:
            issues.append(state.now)
        first = state.pending[-1][0] if first < 0 else first
        last = state.pending[-1][1]
    return RunResult(state, done, first, last, tuple(issues))

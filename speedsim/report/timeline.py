"""Chrome / Perfetto trace export of a run (the Trace Event Format, JSON object form).

Per strategy, two processes: ``<strategy>: units`` with one track (thread) per
hardware unit, and ``<strategy>: tokens`` with one track per token slot
(executions that may be in flight together get different slots). Every
interval is a complete event (``ph: "X"``) with ``ts``/``dur`` in microseconds;
flushed executions are coloured and a flush is an instant event on the token
track. Pure: returns a dict; the CLI writes it.
"""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from speedsim.contracts.plan import Plan


SUMMARY_DECODE_TOKENS = 8  # decode commits whose unit intervals a summary timeline keeps


def chrome_trace(runs: Mapping[str, tuple[Plan, Any]], clock_hz: float,
                 detail: str = "full") -> dict[str, Any]:
    """``runs``: strategy -> (plan, SimResult). Returns the trace as a JSON-able dict.

    ``detail="summary"`` bounds the size for real models: the token tracks stay
    whole, the unit tracks keep the intervals that start before the
    ``SUMMARY_DECODE_TOKENS``-th decode commit (prefill and the first decode
    steps, where every pattern of the run shows).
    """
    events = [ev for s_idx, (name, (plan, sim)) in enumerate(runs.items())
              for ev in strategy_events(s_idx, name, plan, sim, clock_hz, detail)]
    return trace_document(events, clock_hz, detail)


def trace_document(events: list[dict[str, Any]], clock_hz: float, detail: str) -> dict[str, Any]:
    """The trace around its events (``chrome_trace``)."""
    _check_detail(detail)
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"clock_hz": clock_hz, "time_unit": "us", "detail": detail}}


def strategy_events(s_idx: int, name: str, plan: Plan, sim: Any, clock_hz: float,
                    detail: str) -> list[dict[str, Any]]:
    """The events of the strategy at position ``s_idx`` of ``chrome_trace``'s runs: its two
    processes are numbered by that position, so each strategy's events can be made apart."""
    _check_detail(detail)
    ns_per_cycle = 1e9 / clock_hz
    pid_units, pid_tokens = 2 * s_idx + 1, 2 * s_idx + 2
    log = sim.log if detail == "full" else _first_steps(plan, sim)
    return [*_process_names(pid_units, f"{name}: units", pid_tokens, f"{name}: tokens"),
            *_unit_events(log, pid_units, ns_per_cycle),
            *_token_events(plan, sim.items, pid_tokens, ns_per_cycle)]


def _check_detail(detail: str) -> None:
    if detail not in ("full", "summary"):
        raise ValueError(f"detail must be 'full' or 'summary', got {detail!r}")


def _first_steps(plan: Plan, sim: Any) -> pd.DataFrame:
    end = sim.items["end_cycle"].to_numpy()
    commits = sorted(int(end[e.last_item]) for e in plan.execs
                     if e.phase == "decode" and e.status == "committed")
    if len(commits) <= SUMMARY_DECODE_TOKENS:
        return sim.log
    return sim.log[sim.log["start_cycle"] < commits[SUMMARY_DECODE_TOKENS - 1]]


def _process_names(pid_u: int, name_u: str, pid_t: int, name_t: str) -> list[dict[str, Any]]:
    return [{"ph": "M", "name": "process_name", "pid": pid_u, "tid": 0, "args": {"name": name_u}},
            {"ph": "M", "name": "process_name", "pid": pid_t, "tid": 0, "args": {"name": name_t}}]


def span(start_cycle: int, end_cycle: int, ns_per_cycle: float) -> dict[str, float]:
    """``ts`` and ``dur`` in µs, both whole nanoseconds: a viewer converts each to integer
    ns, and touching slices stay touching (unquantized, ``ts + dur`` of one slice could
    round 1 ns past the next slice's ``ts`` and cross it)."""
    t0, t1 = round(start_cycle * ns_per_cycle), round(end_cycle * ns_per_cycle)
    return {"ts": t0 / 1000, "dur": max(t1 - t0, 0) / 1000}


def lanes(intervals: list[tuple[int, int]]) -> list[int]:
    """A lane per interval (start, end) such that intervals of one lane never overlap:
    each goes to the lowest lane free at its start (intervals taken by start)."""
    lane_of = [0] * len(intervals)
    free_at: list[int] = []  # end of the last interval of each lane
    for i in sorted(range(len(intervals)), key=lambda j: intervals[j]):
        start, end = intervals[i]
        lane = next((k for k, t in enumerate(free_at) if t <= start), len(free_at))
        if lane == len(free_at):
            free_at.append(end)
        free_at[lane] = end
        lane_of[i] = lane
    return lane_of


def _unit_events(log: pd.DataFrame, pid: int, ns: float) -> list[dict[str, Any]]:
    """One track per unit, and as many tracks of a unit as it has intervals at once (the
    DRAM serves several transfers together): slices on one track never overlap, so
    every viewer shows them all."""
    cols = ["unit", "item", "op", "kind", "start_cycle", "end_cycle", "bytes", "macs",
            "wasted_fraction"]
    rows = list(zip(*(log[c].to_numpy().tolist() for c in cols)))  # Python scalars
    lane = [0] * len(rows)
    for unit in {r[0] for r in rows}:
        mine = [i for i, r in enumerate(rows) if r[0] == unit]
        for i, k in zip(mine, lanes([(rows[i][4], rows[i][5]) for i in mine])):
            lane[i] = k
    tid_of = {key: i + 1 for i, key in enumerate(sorted({(r[0], k) for r, k in zip(rows, lane)}))}
    events: list[dict[str, Any]] = [
        {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
         "args": {"name": unit if k == 0 else f"{unit} #{k + 1}"}}
        for (unit, k), tid in tid_of.items()]
    for (unit, item, op, kind, start, end, nbytes, macs, wasted), k in zip(rows, lane):
        ev = {"ph": "X", "name": f"{op} ({kind})" if kind != "compute" else op, "cat": kind,
              "pid": pid, "tid": tid_of[(unit, k)], **span(start, end, ns),
              "args": {"unit": unit, "item": int(item), "bytes": int(nbytes), "macs": int(macs),
                       "start_cycle": int(start), "end_cycle": int(end)}}
        if wasted > 0:
            ev["cname"] = "terrible"
            ev["args"]["wasted_fraction"] = float(wasted)
        events.append(ev)
    return events


def _token_events(plan: Plan, items: pd.DataFrame, pid: int, ns: float) -> list[dict[str, Any]]:
    start = items["start_cycle"].to_numpy()
    end = items["end_cycle"].to_numpy()
    events: list[dict[str, Any]] = []
    slots: list[int] = []  # end cycle of the last execution in each slot
    for ex in sorted(plan.execs, key=lambda e: (start[e.first_item], e.exec_id)):
        t0, t1 = int(start[ex.first_item]), int(end[ex.last_item])
        slot = next((i for i, busy_until in enumerate(slots) if busy_until <= t0), len(slots))
        if slot == len(slots):
            slots.append(t1)
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": slot + 1,
                           "args": {"name": f"slot {slot}"}})
        slots[slot] = t1
        label = "prefill" if ex.phase == "prefill" else f"pos {ex.position}"
        ev = {"ph": "X", "name": label, "cat": ex.status, "pid": pid, "tid": slot + 1,
              **span(t0, t1, ns),
              "args": {"exec": ex.exec_id, "position": ex.position, "status": ex.status,
                       "start_cycle": t0, "end_cycle": t1}}
        ev["cname"] = "terrible" if ex.status == "flushed" else "good"
        events.append(ev)
        if ex.status == "flushed":
            events.append({"ph": "i", "s": "t", "name": "flush", "pid": pid, "tid": slot + 1,
                           "ts": span(t1, t1, ns)["ts"],
                           "args": {"exec": ex.exec_id, "position": ex.position, "cycle": t1}})
    return events

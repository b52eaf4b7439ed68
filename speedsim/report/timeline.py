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
    if detail not in ("full", "summary"):
        raise ValueError(f"detail must be 'full' or 'summary', got {detail!r}")
    us_per_cycle = 1e6 / clock_hz
    events: list[dict[str, Any]] = []
    for s_idx, (name, (plan, sim)) in enumerate(runs.items()):
        pid_units, pid_tokens = 2 * s_idx + 1, 2 * s_idx + 2
        log = sim.log if detail == "full" else _first_steps(plan, sim)
        events += _process_names(pid_units, f"{name}: units", pid_tokens, f"{name}: tokens")
        events += _unit_events(log, pid_units, us_per_cycle)
        events += _token_events(plan, sim.items, pid_tokens, us_per_cycle)
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"clock_hz": clock_hz, "time_unit": "us", "detail": detail}}


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


def _unit_events(log: pd.DataFrame, pid: int, us: float) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    units = sorted(log["unit"].unique())
    tid_of = {u: i + 1 for i, u in enumerate(units)}
    for u, tid in tid_of.items():
        events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": u}})
    cols = ["unit", "item", "op", "kind", "start_cycle", "end_cycle", "bytes", "macs",
            "wasted_fraction"]
    for unit, item, op, kind, start, end, nbytes, macs, wasted in log[cols].itertuples(
            index=False, name=None):
        ev = {"ph": "X", "name": f"{op} ({kind})" if kind != "compute" else op, "cat": kind,
              "pid": pid, "tid": tid_of[unit], "ts": start * us, "dur": max(end - start, 0) * us,
              "args": {"item": int(item), "bytes": int(nbytes), "macs": int(macs),
                       "start_cycle": int(start), "end_cycle": int(end)}}
        if wasted > 0:
            ev["cname"] = "terrible"
            ev["args"]["wasted_fraction"] = float(wasted)
        events.append(ev)
    return events


def _token_events(plan: Plan, items: pd.DataFrame, pid: int, us: float) -> list[dict[str, Any]]:
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
              "ts": t0 * us, "dur": (t1 - t0) * us,
              "args": {"exec": ex.exec_id, "position": ex.position, "status": ex.status,
                       "start_cycle": t0, "end_cycle": t1}}
        ev["cname"] = "terrible" if ex.status == "flushed" else "good"
        events.append(ev)
        if ex.status == "flushed":
            events.append({"ph": "i", "s": "t", "name": "flush", "pid": pid, "tid": slot + 1,
                           "ts": t1 * us, "args": {"exec": ex.exec_id, "position": ex.position}})
    return events

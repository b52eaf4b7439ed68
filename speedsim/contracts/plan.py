"""What a strategy hands the accelerator: a work-item DAG and its token executions.

A **token execution** (``TokenExec``) is one pass of one input position (all
``batch`` sequences together) through the decoder, as placed in a plan: the
range of work items it spans and whether it committed. Sequential decoding has
one per decoded position; SPEED has more when predictions miss, and the extra
ones end ``flushed``. Every work item lists the executions it serves, so the
metrics can attribute time, bytes and energy to committed or wasted work.

(The SPEED schedule's own per-execution record, which stage steps an execution
occupied, is ``speedsim.contracts.schedule.ScheduledExec``.)

Plans travel between processes (strategies run in parallel); a plan pickles
its items as one column per work-item field (``__reduce__``), which is several
times faster both ways than pickling ~10^5 items one by one.
"""

from __future__ import annotations

from dataclasses import dataclass

from speedsim.contracts.workitem import WorkItem, item_columns, items_from_columns


@dataclass(frozen=True)
class TokenExec:
    exec_id: int
    phase: str  # prefill | decode
    index: int  # prefill: 0; decode: k for input position P + k
    position: int  # absolute position of the input token
    status: str  # committed | flushed
    first_item: int
    last_item: int  # the item whose end commits (or would have committed) the execution


@dataclass(frozen=True)
class Plan:
    strategy: str
    items: list[WorkItem]
    execs: list[TokenExec]
    prefill_last_item: int  # TTFT ends when this item ends
    launched: int = 0  # speculative strategies: token executions started in decode
    flushes: int = 0  # mismatches detected

    def __reduce__(self):
        return _plan_from_columns, (self.strategy, item_columns(self.items), self.execs,
                                    self.prefill_last_item, self.launched, self.flushes)


def _plan_from_columns(strategy: str, columns: list[list], execs: list[TokenExec],
                       prefill_last_item: int, launched: int, flushes: int) -> Plan:
    """The unpickled plan (``Plan.__reduce__``)."""
    return Plan(strategy, items_from_columns(columns), execs, prefill_last_item, launched, flushes)

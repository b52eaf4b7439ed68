"""What a strategy hands the accelerator: a work-item DAG and its token executions.

A **token execution** (``TokenExec``) is one pass of one input position (all
``batch`` sequences together) through the decoder, as placed in a plan: the
range of work items it spans and whether it committed. Sequential decoding has
one per decoded position; SPEED has more when predictions miss, and the extra
ones end ``flushed``. Every work item lists the executions it serves, so the
metrics can attribute time, bytes and energy to committed or wasted work.

(The SPEED schedule's own per-execution record, which stage steps an execution
occupied, is ``speedsim.contracts.schedule.ScheduledExec``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from speedsim.contracts.workitem import WorkItem


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

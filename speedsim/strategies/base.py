"""The strategy protocol: what the registry, the API, the summary and sweeps rely on.

A strategy is a class registered under a name (``registry.register``) with

- ``name``; ``speculative`` (it plans from acceptance outcomes and reports
  ``speculation``); ``lossless`` (it commits the target's greedy tokens);
  ``baseline`` (speedups are measured against it: sequential decoding);
- ``configure(ctx) -> strategy``: read its config slice, the numerics and the
  trace facts it needs from a ``RunContext`` (acceptance, a draft model's
  trace, K, E);
- ``plan(inputs) -> Plan``: the work-item DAG (``StrategyInput``: the
  target's trace and the shape facts every strategy shares);
- ``outcome(plan) -> Outcome``: the token ids it committed (real ids, or None
  for shape-only models), what each execution carried, and its own summary
  entries (``speculation`` extras, ``quality`` of a lossy strategy).

Nothing outside a strategy's own module looks at its name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, ClassVar, Optional, Protocol

import numpy as np

from speedsim.config.workload import Workload
from speedsim.contracts.plan import Plan
from speedsim.model.decoder import GenerationRecord
from speedsim.model.weights import Params
from speedsim.strategies.inputs import StrategyInput


@dataclass(frozen=True)
class RunContext:
    """Everything a strategy may configure itself from, for one (hardware, workload) run."""

    workload: Workload
    base: StrategyInput  # the target's trace and shape facts
    bytes_per_element: int  # the hardware precision (a draft model's trace needs it)
    # the target's weights, loaded when a strategy first asks for ``params`` (a reference
    # run taken from the cache needs none, and most strategies neither); None: shape-only
    weights: Optional[Callable[[], Params]] = None
    record: Optional[GenerationRecord] = None  # the target's greedy run (SPEED's exit)

    @cached_property
    def params(self) -> Optional[Params]:
        return self.weights() if self.weights is not None else None

    @property
    def numeric(self) -> bool:
        return self.record is not None


@dataclass(frozen=True)
class Outcome:
    committed: Optional[np.ndarray]  # int64 [B, new_tokens] token ids; None: no numerics
    carried: Optional[np.ndarray]  # int64 [decode executions, B] input ids, -1 unknown
    accepted: Optional[np.ndarray] = None  # acceptance outcomes the plan followed
    expected: Optional[np.ndarray] = None  # float [new_tokens]: P(draft kept); None: unknown
    report: dict[str, Any] = field(default_factory=dict)  # merged into the summary entry


class Strategy(Protocol):
    name: ClassVar[str]
    speculative: ClassVar[bool]
    lossless: ClassVar[bool]
    baseline: ClassVar[bool]

    @classmethod
    def configure(cls, ctx: RunContext) -> "Strategy": ...

    def plan(self, inp: StrategyInput) -> Plan: ...

    def outcome(self, plan: Plan) -> Outcome: ...


def greedy_carried(ctx: RunContext, plan: Plan,
                   guesses: Optional[np.ndarray] = None) -> Optional[np.ndarray]:
    """What each decode execution carried: committed ones the greedy token of their index;
    a flushed one right after a committed one the guess of its index (``guesses``
    [B, new_tokens], when known); younger flushed ones -1 (made by flushed work)."""
    if ctx.record is None:
        return None
    tokens = ctx.record.committed
    carried = np.full((plan.launched, tokens.shape[0]), -1, dtype=np.int64)
    status = {e.exec_id: e.status for e in plan.execs}
    for e in plan.execs:
        if e.phase != "decode":
            continue
        if e.status == "committed":
            carried[e.exec_id - 1] = tokens[:, e.index]
        elif guesses is not None and status.get(e.exec_id - 1) == "committed":
            carried[e.exec_id - 1] = guesses[:, e.index]
    return carried

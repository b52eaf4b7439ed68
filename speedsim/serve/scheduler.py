"""Continuous (iteration-level) batching, as Orca and vLLM schedule, prefill first.

The server runs one iteration at a time; between two iterations (a *boundary*):

1. **admit** (FCFS): requests that have arrived by the boundary join, in
   arrival order, while fewer than ``max_batch`` requests are running and, with
   ``max_prefill_tokens``, their prompts fit that budget (the first admitted
   always does, so that a long prompt cannot wait forever);
2. if any joined, the iteration is their **prefill** (every new prompt in one
   pass: ``progress.prefill_iteration``); it makes each one's first token
   (TTFT ends with it), and the running requests' decoding waits meanwhile
   (vLLM's default: prefill has priority, never mixed with decode);
3. otherwise, if any are running, the iteration is one **decode** step of all
   of them (the strategy's: ``progress``); a request leaves at the end of the
   iteration that commits its last token;
4. otherwise the server idles until the next arrival.

Iteration costs come from ``speedsim.serve.memo``; the clock is in seconds.

``Served.log`` keeps the run's iteration sequence (who joined, how many ran, who
left, per iteration), so that ``retime`` can recompute the timeline of that SAME
sequence from other costs (the memo's audit: every iteration replayed, the
schedule kept): each iteration starts when the previous one ends, or, if later,
when the last of the requests it admits arrives (the idle case); with the run's own
costs this is the run's timeline exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from speedsim.serve.memo import Cost
from speedsim.serve.progress import Progress, Stepper, prefill_iteration
from speedsim.serve.requests import Request


@dataclass
class RequestTimes:
    """One request's life, in seconds from the start of the run."""

    admitted_s: float = np.nan  # its prefill began
    first_token_s: float = np.nan  # its prefill ended
    finish_s: float = np.nan  # its last token committed


@dataclass(frozen=True)
class Step:
    """One iteration of a run, as ``retime`` needs it."""

    kind: str  # prefill | decode
    joined: tuple[int, ...]  # request ids its prefill admits
    running: int  # requests in a decode iteration
    finished: tuple[int, ...]  # request ids whose last token it commits


@dataclass
class Served:
    """Everything one strategy's serving run produced."""

    strategy: str
    times: list[RequestTimes]
    busy_s: float = 0.0  # iterations running
    decode_s: float = 0.0  # decode iterations running
    batch_s: float = 0.0  # Σ decode iteration seconds × requests in it
    dynamic_j: float = 0.0
    iterations: dict[str, int] = field(default_factory=lambda: {"prefill": 0, "decode": 0})
    log: list[Step] = field(default_factory=list, repr=False)  # the iteration sequence


@dataclass(frozen=True)
class Limits:
    max_batch: int
    max_prefill_tokens: Optional[int] = None


def run_server(stepper: Stepper, requests: list[Request], limits: Limits,
               cost: Callable, clock_hz: float, tick: Callable[[int], None] = lambda n: None) -> Served:
    """Serve ``requests`` (arrival order) with ``stepper``'s decoding (module docstring).
    ``tick(n)``: ``n`` more requests finished (a progress bar)."""
    out = Served(stepper.name, [RequestTimes() for _ in requests])
    waiting, running, now, nxt = [], [], 0.0, 0
    while nxt < len(requests) or waiting or running:
        # 1. admit
        while nxt < len(requests) and requests[nxt].arrival_s <= now:
            waiting.append(requests[nxt])
            nxt += 1
        joined = _admit(waiting, len(running), limits)
        if joined:  # 2. prefill
            c = cost(prefill_iteration(joined, stepper.prefill_layers))
            end = now + c.cycles / clock_hz
            _book(out, c, end - now, "prefill")
            done = []
            for r in joined:
                out.times[r.id] = RequestTimes(now, end, np.nan)
                p = stepper.start(r)
                if p.done:
                    out.times[r.id].finish_s = end
                    done.append(r.id)
                    tick(1)
                else:
                    running.append(p)
            out.log.append(Step("prefill", tuple(r.id for r in joined), 0, tuple(done)))
            now = end
        elif running:  # 3. decode
            c = cost(stepper.iteration(running))
            end = now + c.cycles / clock_hz
            _book(out, c, end - now, "decode")
            out.batch_s += len(running) * (end - now)
            n = len(running)
            running, done = _advance(stepper, running, out, end, tick)
            out.log.append(Step("decode", (), n, done))
            now = end
        else:  # 4. idle
            now = max(now, requests[nxt].arrival_s)
    return out


def _admit(waiting: list[Request], running: int, limits: Limits) -> list[Request]:
    """Pop the requests that join now (FCFS, batch and prefill-token limits)."""
    joined: list[Request] = []
    budget = limits.max_prefill_tokens
    while waiting and running + len(joined) < limits.max_batch:
        r = waiting[0]
        used = sum(j.prompt_tokens for j in joined)
        if joined and budget is not None and used + r.prompt_tokens > budget:
            break
        joined.append(waiting.pop(0))
    return joined


def _book(out: Served, c: Cost, seconds: float, kind: str) -> None:
    out.busy_s += seconds
    out.dynamic_j += c.dynamic_j
    out.iterations[kind] += 1
    if kind == "decode":
        out.decode_s += seconds


def _advance(stepper: Stepper, running: list[Progress], out: Served, end: float,
             tick: Callable[[int], None]) -> tuple[list[Progress], tuple[int, ...]]:
    """Every running request past the iteration; those done leave at ``end``: (the
    requests still running, the ids of those done)."""
    still, done = [], []
    for p in running:
        stepper.advance(p)
        if p.done:
            out.times[p.request.id].finish_s = end
            done.append(p.request.id)
            tick(1)
        else:
            still.append(p)
    return still, tuple(done)


def retime(served: Served, requests: list[Request], costs: list[Cost],
           clock_hz: float) -> Served:
    """The timeline of ``served``'s iteration sequence (``log``) with iteration i costing
    ``costs[i]``: each starts at the previous one's end, or at the last arrival among the
    requests it admits if that is later (module docstring)."""
    out = Served(served.strategy, [RequestTimes() for _ in requests], log=served.log)
    now = 0.0
    for step, c in zip(served.log, costs, strict=True):
        now = max([now, *(requests[i].arrival_s for i in step.joined)])
        end = now + c.cycles / clock_hz
        _book(out, c, end - now, step.kind)
        out.batch_s += step.running * (end - now)
        for i in step.joined:
            out.times[i] = RequestTimes(now, end, np.nan)
        for i in step.finished:
            out.times[i].finish_s = end
        now = end
    return out

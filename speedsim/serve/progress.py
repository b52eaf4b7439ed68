"""Each strategy under continuous batching: per-request progress and one iteration's parts.

A strategy's ``Stepper`` gives every admitted request a ``Progress``: where it
stands (``tokens`` committed, the first by its prefill) and what it contributes
to the next decode iteration. The iteration of a set of requests is built
by the stepper from their contributions (``speedsim.serve.iteration``):

- ``sequential``: one row per request at its input position P + k (k = tokens − 1),
  all N layers and the head; every iteration commits one token per request;
- ``shallow``: the same through the first E layers and the head (lossy);
- ``speed``: the request's own SPEED schedule (``derive_schedule`` of its
  acceptance outcomes), one stage step per iteration; an execution leaving the
  last stage commits; a misprediction flushes only that request's younger
  executions (its schedule says so);
- ``early_exit_spec`` / ``draft_spec``: the request's own verify steps
  (``derive_spec_schedule``), one per iteration: draft pass j of every
  request drafting at j fused into one pass, then one fused verify pass over
  every request's k + 1 rows; a step commits a + 1 tokens.

Acceptance outcomes per request: ``acceptance`` (``outcomes_for``) draws
request r's vector from the strategy's configured source, independently per
request: ``bernoulli`` from ``default_rng([seed, r])`` (request 0 from
``default_rng(seed)``, exactly ``speedsim run``'s draw), ``model`` and
``file`` as the recorded vector read cyclically from an offset drawn per
request (0 for request 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional, Protocol

import numpy as np

from speedsim.config.workload import Workload
from speedsim.contracts.schedule import Schedule
from speedsim.model.sharing import shape_layer_sets
from speedsim.serve.iteration import Iteration, SpeedStep, Wave, canonical
from speedsim.serve.requests import Request
from speedsim.strategies.spec_schedule import derive_spec_schedule
from speedsim.strategies.speed_schedule import derive_schedule

Acceptance = Callable[[Request], np.ndarray]  # request -> bool [output_tokens]


@dataclass
class Progress:
    """One request's place in its decoding."""

    request: Request
    tokens: int = 1  # committed; the prefill made the first
    step: int = 0  # iterations of decode done
    schedule: Optional[object] = field(default=None, repr=False)  # SPEED / verify schedule

    @property
    def done(self) -> bool:
        return self.tokens >= self.request.output_tokens


class Stepper(Protocol):
    name: str
    # per model ("" target, "draft"): the layers its prefill runs at admission
    prefill_layers: dict[str, tuple[int, ...]]

    def start(self, request: Request) -> Progress: ...

    def iteration(self, active: list[Progress]) -> Iteration: ...

    def advance(self, p: Progress) -> int: ...  # tokens the last iteration committed


def prefill_iteration(requests: list[Request], layers: dict[str, tuple[int, ...]]) -> Iteration:
    """Every admitted prompt through each model's prefill layers: the draft's first
    (it has no head), then the target's, which makes every request's first token."""
    groups = canonical([(r.prompt_tokens, (0,)) for r in requests])
    return tuple(Wave(scope, "prefill", layers[scope], groups) for scope in sorted(layers, reverse=True))


def _all(n_layers: int) -> tuple[int, ...]:
    """Embed, every layer, the head (layer N)."""
    return (-1, *range(n_layers), n_layers)


class Sequential:
    """One token of every request per iteration through ``layers`` (all, or E for shallow)."""

    def __init__(self, name: str, layers: tuple[int, ...]):
        self.name, self.layers = name, layers
        self.prefill_layers = {"": layers}

    def start(self, request: Request) -> Progress:
        return Progress(request)

    def iteration(self, active: list[Progress]) -> Iteration:
        groups = canonical([(_position(p), (0,)) for p in active])
        return (Wave("", "decode", self.layers, groups),)

    def advance(self, p: Progress) -> int:
        p.step += 1
        p.tokens += 1
        return 1


def _position(p: Progress, k: Optional[int] = None) -> int:
    """Input position of decode index k (default: the next one): P + k."""
    return p.request.prompt_tokens + (p.tokens - 1 if k is None else k)


class Speed:
    """One SPEED stage step of every request per iteration (see the module docstring)."""

    def __init__(self, stages: int, layer_sets: tuple[int, ...], acceptance: Acceptance):
        self.name, self.G, self.layer_sets, self.acceptance = "speed", stages, layer_sets, acceptance
        self.prefill_layers = {"": _all(len(layer_sets))}

    def start(self, request: Request) -> Progress:
        return Progress(request, schedule=derive_schedule(self.acceptance(request), self.G))

    def iteration(self, active: list[Progress]) -> Iteration:
        in_stage: list[list[int]] = [[] for _ in range(self.G)]
        for p in active:
            sched: Schedule = p.schedule
            for e, g in sched.steps[p.step]:
                in_stage[g].append(_position(p, sched.execs[e].index))
        return (SpeedStep(self.G, self.layer_sets, tuple(tuple(sorted(s)) for s in in_stage)),)

    def advance(self, p: Progress) -> int:
        sched: Schedule = p.schedule
        done = sum(1 for e, g in sched.steps[p.step]
                   if g == self.G - 1 and sched.execs[e].status == "committed")
        p.step += 1
        p.tokens += done
        assert p.step < len(sched.steps) or p.done, "a schedule ends with its last token"
        return done


class Spec:
    """One draft-and-verify step of every request per iteration.

    ``draft`` None: early-exit self-speculation (drafts with the target's first E
    layers and head); else the draft model's layer count (scope "draft")."""

    def __init__(self, name: str, n_layers: int, draft_tokens: int, acceptance: Acceptance,
                 exit_layers: int = 0, draft_layers: Optional[int] = None):
        self.name, self.N, self.K, self.acceptance = name, n_layers, draft_tokens, acceptance
        self.E, self.Nd = exit_layers, draft_layers
        self.prefill_layers = {"": _all(n_layers)}
        if draft_layers is not None:  # the draft's prefill needs no head
            self.prefill_layers["draft"] = (-1, *range(draft_layers))

    def start(self, request: Request) -> Progress:
        sched = derive_spec_schedule(self.acceptance(request), self.K,
                                     catch_up=self.Nd is not None)
        return Progress(request, schedule=sched)

    def _steps(self, active: list[Progress]) -> list[tuple[int, int, bool]]:
        """(base position P + c, drafted k, catch-up) of every request's next step."""
        out = []
        for p in active:
            st = p.schedule.steps[p.step]
            out.append((_position(p, st.start), st.drafted, st.catch_up))
        return out

    def iteration(self, active: list[Progress]) -> Iteration:
        steps = self._steps(active)
        parts = self._drafts(steps) if self.Nd is None else self._model_drafts(steps)
        verify = canonical([(base, tuple(range(k + 1))) for base, k, _ in steps])
        layers = (*range(self.E, self.N), self.N) if self.Nd is None else _all(self.N)
        every_k = tuple(tuple(range(k + 1)) for k in range(self.K + 1))
        return (*parts, Wave("", "decode", layers, verify, every_k))

    def _drafts(self, steps) -> list[Wave]:
        """Early exit: rows j (j < k: draft with head; j = k: the verify's last row)
        through embed and layers 0..E-1."""
        parts = []
        for j in range(max(k for _, k, _ in steps) + 1):
            rows = canonical([(base + j, (0,)) for base, k, _ in steps if k >= j])
            parts.append(Wave("", "decode", (-1, *range(self.E)), rows))
            heads = canonical([(base + j, (0,)) for base, k, _ in steps if k > j])
            if heads:
                parts.append(Wave("", "decode", (self.N,), heads))
        return parts

    def _model_drafts(self, steps) -> list[Wave]:
        """Draft model: pass j of every request drafting at j (the first also its
        catch-up row, one position back)."""
        parts = []
        for j in range(max(k for _, k, _ in steps)):
            rows = canonical([(base + j, (-1, 0) if catch and j == 0 else (0,))
                              for base, k, catch in steps if k > j])
            parts.append(Wave("draft", "decode", _all(self.Nd), rows, ((-1, 0), (0,))[j > 0:]))
        return parts

    def advance(self, p: Progress) -> int:
        st = p.schedule.steps[p.step]
        p.step += 1
        p.tokens += st.committed
        return st.committed


def steppers(wl: Workload, names: list[str], acceptance: Callable[[str], Acceptance]) -> list:
    """The stepper of each strategy name (``acceptance(name)``: its per-request outcomes)."""
    N = wl.model.n_layers
    made = {
        "sequential": lambda: Sequential("sequential", _all(N)),
        "shallow": lambda: Sequential("shallow", (-1, *range(wl.exit_layers("shallow")), N)),
        "speed": lambda: Speed(wl.stages, tuple(shape_layer_sets(wl.model)), acceptance("speed")),
        "early_exit_spec": lambda: Spec("early_exit_spec", N,
                                        wl.strategies.early_exit_spec.draft_tokens,
                                        acceptance("early_exit_spec"),
                                        exit_layers=wl.exit_layers("early_exit_spec")),
        "draft_spec": lambda: Spec("draft_spec", N, wl.strategies.draft_spec.draft_tokens,
                                   acceptance("draft_spec"),
                                   draft_layers=wl.strategies.draft_spec.draft_model.n_layers),
    }
    return [made[n]() for n in names]


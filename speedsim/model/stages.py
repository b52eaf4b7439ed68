"""SPEED's stages: which layers each of the G stages runs, and at which layer step.

One stage step advances every token in flight by one stage. The layers of a
stage are laid out on *layer steps* (slots) so that tokens in different stages
that use the same weight set at the same moment line up:

- without a prelude or coda (every scheme but ``loop``, and ``loop`` with
  P = C = 0): G stages of L = N / G consecutive layers; stage g runs layers
  g·L .. g·L + L - 1 on slots 0 .. L - 1;
- ``loop`` (P prelude layers, a core of U sets applied R times, C coda
  layers): G = R, one core pass per stage. Stage g runs core layers
  P + g·U + j on slots P + j; stage 0 first runs the prelude on slots
  0 .. P - 1, stage G - 1 last runs the coda on slots P + U .. P + U + C - 1.
  A prelude or coda slot is used by one token only, so only core passes fuse.

Exits. The early head reads the hidden state after stage d1 - 1 (the
``exit_depth`` d1; with ``loop``, the prelude and d1 core passes): layer
``exit_layer(d1)``. A second proposal reads it after stage d2 - 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class StageLayout:
    """G stages over N layers, with P prelude and C coda layers outside the stages' core."""

    n_layers: int  # N
    stages: int  # G
    prelude: int = 0  # P
    coda: int = 0  # C
    exit_depth: int = 1  # d1: stages before the early prediction
    second_depth: Optional[int] = None  # d2: stages before a second proposal

    def __post_init__(self):
        core = self.n_layers - self.prelude - self.coda
        if self.stages < 1 or core < self.stages or core % self.stages:
            raise ValueError(f"stages={self.stages} must divide the {core} core layers "
                             f"(n_layers={self.n_layers} - prelude {self.prelude} - coda "
                             f"{self.coda})")
        if not 1 <= self.exit_depth <= self.stages:
            raise ValueError(f"exit_depth={self.exit_depth} must be in 1..{self.stages}")
        if self.second_depth is not None and not self.exit_depth < self.second_depth < self.stages:
            raise ValueError(f"second_depth={self.second_depth} must lie strictly between "
                             f"exit_depth={self.exit_depth} and stages={self.stages}")

    @classmethod
    def of(cls, workload) -> "StageLayout":
        """The layout of ``workload``'s SPEED strategy (exit depth 1 without one)."""
        s, sp = workload.model.sharing, workload.strategies.speed
        return cls(workload.model.n_layers, workload.stages, s.prelude_layers, s.coda_layers,
                   sp.exit_depth if sp is not None else 1,
                   sp.second_depth if sp is not None else None)

    @property
    def per_stage(self) -> int:
        """Core layers per stage: N / G, or U for ``loop``."""
        return (self.n_layers - self.prelude - self.coda) // self.stages

    @property
    def slots(self) -> int:
        """Layer steps per stage step: P + L + C."""
        return self.prelude + self.per_stage + self.coda

    def stage_layers(self, g: int) -> tuple[tuple[int, int], ...]:
        """(slot, layer) of every layer stage ``g`` runs, in order."""
        P, L = self.prelude, self.per_stage
        out = [(j, j) for j in range(P)] if g == 0 else []
        out += [(P + j, P + g * L + j) for j in range(L)]
        if g == self.stages - 1:
            out += [(P + L + c, self.n_layers - self.coda + c) for c in range(self.coda)]
        return tuple(out)

    def exit_layer(self, depth: int) -> int:
        """The last layer before an exit after ``depth`` stages: P + depth·L - 1."""
        return self.prelude + depth * self.per_stage - 1

    @property
    def early_exit_layer(self) -> int:
        return self.exit_layer(self.exit_depth)

    @property
    def second_exit_layer(self) -> Optional[int]:
        return None if self.second_depth is None else self.exit_layer(self.second_depth)

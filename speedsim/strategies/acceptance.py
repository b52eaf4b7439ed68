"""Acceptance sources: which drafts a speculative strategy's schedule treats as kept.

One entrance: every speculative strategy's ``configure`` calls ``acceptance(cfg,
new_tokens, drafts, key)`` with its ``acceptance`` config and, when there are
numerics, its model's ``Drafts`` (``speedsim.model.spec_exec``); the strategy
plans from the ``Acceptance`` it returns and from nothing else.

Sources live in ``SOURCES`` (name -> function), so a new one is one registered
function (and its config class in ``speedsim.config.workload``):

- ``model``: the model's own drafts (greedy guesses, or sampled drafts coupled to
  the committed tokens) and the probability each is kept, Σ min(p, q);
- ``bernoulli``: ``default_rng(seed).random(new_tokens) < rate``; expected ``rate``;
- ``file``: a recorded vector; nothing expected;
- ``accepted_length``: a deterministic vector whose accepted runs have mean length
  ``mean`` (``accepted_length_vector``); nothing expected: the pattern is fixed, not
  drawn, so there is no per-draft probability (and no spread) to report, and its
  realized rate is already the rate ``mean`` implies (1 - 1/mean, to within one
  rejection).

``accepted`` has one bool per generated token, aligned with
``GenerationRecord.accepted`` (``speedsim.contracts.schedule``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from speedsim.config.errors import ConfigError
from speedsim.contracts.schedule import AcceptanceOutcomes
from speedsim.model.decoder import GenerationRecord
from speedsim.model.spec_exec import Drafts, record_drafts

SPEED_KEY = "strategies.speed.acceptance"


@dataclass(frozen=True)
class Acceptance:
    """What a speculative strategy plans from."""

    accepted: AcceptanceOutcomes  # bool [new_tokens]: token i's draft was kept
    expected: Optional[np.ndarray] = None  # float [new_tokens]: P(kept); None: not known
    guesses: Optional[np.ndarray] = None  # int64 [B, new_tokens]: the drafts (model source)

    @classmethod
    def given(cls, accepted) -> "Acceptance":
        """Outcomes given directly (tests, notebooks): nothing expected, no drafts."""
        return cls(np.asarray(accepted, dtype=bool).copy())


Source = Callable[[object, int, Optional[Drafts], str], Acceptance]
SOURCES: dict[str, Source] = {}


def source(name: str) -> Callable[[Source], Source]:
    """Register an acceptance source under ``name`` (a duplicate is an error)."""
    def add(fn: Source) -> Source:
        if name in SOURCES:
            raise ValueError(f"acceptance source {name!r} is already registered")
        SOURCES[name] = fn
        return fn
    return add


def acceptance(cfg, new_tokens: int, drafts: Optional[Drafts], key: str) -> Acceptance:
    """The ``Acceptance`` of one ``acceptance`` config (at key path ``key``); ``drafts``:
    the strategy's model drafts, None without numerics."""
    return SOURCES[cfg.source](cfg, int(new_tokens), drafts, key)


def speed_acceptance(workload, record: Optional[GenerationRecord] = None) -> Acceptance:
    """SPEED's acceptance: its exit's drafts are the reference run's early predictions."""
    sp = workload.strategies.speed
    if sp is None:
        raise ValueError("the workload has no speed strategy")
    drafts = None if record is None or record.early is None else record_drafts(record)
    return acceptance(sp.acceptance, workload.generation.new_tokens, drafts, SPEED_KEY)


def acceptance_vector(workload, record: Optional[GenerationRecord] = None) -> AcceptanceOutcomes:
    """bool [new_tokens]: which early predictions SPEED's schedule treats as right."""
    return speed_acceptance(workload, record).accepted


@source("model")
def _model(cfg, T: int, drafts: Optional[Drafts], key: str) -> Acceptance:
    if drafts is None:
        raise ConfigError("acceptance source 'model' needs a numeric reference run",
                          key=f"{key}.source")
    return Acceptance(np.asarray(drafts.accepted, dtype=bool).copy(), drafts.expected,
                      drafts.guesses)


@source("bernoulli")
def _bernoulli(cfg, T: int, drafts: Optional[Drafts], key: str) -> Acceptance:
    return Acceptance(np.random.default_rng(cfg.seed).random(T) < cfg.rate, np.full(T, cfg.rate))


@source("file")
def _file(cfg, T: int, drafts: Optional[Drafts], key: str) -> Acceptance:
    values = read_acceptance_file(cfg.path, key)
    if values.size < T:
        raise ConfigError(f"{cfg.path} holds {values.size} values; new_tokens={T} needs "
                          f"at least {T} (one per generated token)", key=f"{key}.path")
    return Acceptance(values[:T])


@source("accepted_length")
def _accepted_length(cfg, T: int, drafts: Optional[Drafts], key: str) -> Acceptance:
    return Acceptance(accepted_length_vector(cfg.mean, T))


def accepted_length_vector(mean: float, new_tokens: int) -> AcceptanceOutcomes:
    """bool [new_tokens] whose proposals come in runs of mean length γ = ``mean``: γ
    tokens committed per rejected proposal (the accepted ones and the corrected one),
    the convention of speculative decoding's mean accepted length τ.

    Proposal j (token j + 1; entry 0 is never consulted) is rejected exactly when
    floor((j + 1) / γ) > floor(j / γ): the rejections are spread evenly, so any n
    consecutive proposals from the first hold floor(n / γ) of them (γ = 3: accept,
    accept, reject, ...; γ = 1: every one rejected).
    """
    if mean < 1:
        raise ValueError(f"mean accepted length must be >= 1, got {mean}")
    j = np.arange(int(new_tokens) - 1)
    rejected = np.floor((j + 1) / mean) > np.floor(j / mean)
    return np.concatenate([[True], ~rejected])


def read_acceptance_file(path: str | Path, key: str) -> np.ndarray:
    """0/1 (or true/false) per generated token: one per line, or a CSV column ``accepted``."""
    path = Path(path)
    try:
        lines = [ln.strip() for ln in path.read_text().splitlines() if ln.strip()]
    except OSError as exc:
        raise ConfigError(f"cannot read {path} ({exc.strerror})", key=f"{key}.path") from None
    if lines and ("," in lines[0] or lines[0].lower() == "accepted"):
        header = [h.strip() for h in lines[0].split(",")]
        if "accepted" not in header:
            raise ConfigError(f"{path}: CSV needs a column 'accepted'", key=f"{key}.path")
        col = header.index("accepted")
        cells = [ln.split(",")[col].strip() if len(ln.split(",")) > col else "" for ln in lines[1:]]
    else:
        cells = lines
    truth = {"1": True, "0": False, "true": True, "false": False}
    out = []
    for i, c in enumerate(cells):
        if c.lower() not in truth:
            raise ConfigError(f"{path}: value {c!r} (entry {i}) is not 0/1/true/false",
                              key=f"{key}.path")
        out.append(truth[c.lower()])
    return np.array(out, dtype=bool)

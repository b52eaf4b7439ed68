"""Acceptance sources: which early predictions SPEED's schedule treats as right.

``model`` takes the reference run's own outcomes, ``bernoulli`` a seeded draw,
``file`` a recorded vector, ``accepted_length`` a deterministic vector with a
given mean accepted length (``accepted_length_vector``). Every result is ``AcceptanceOutcomes``
(``speedsim.contracts.schedule``): one bool per generated token, aligned with
``GenerationRecord.accepted``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from speedsim.config.errors import ConfigError
from speedsim.contracts.schedule import AcceptanceOutcomes
from speedsim.model.decoder import GenerationRecord

_KEY = "strategies.speed.acceptance"


def acceptance_vector(workload, record: Optional[GenerationRecord] = None) -> AcceptanceOutcomes:
    """bool [new_tokens]: which early predictions SPEED's schedule treats as right."""
    sp = workload.strategies.speed
    if sp is None:
        raise ValueError("the workload has no speed strategy")
    model = None if record is None else record.accepted
    return outcomes(sp.acceptance, workload.generation.new_tokens, model, _KEY)


def outcomes(acc, new_tokens: int, model: Optional[np.ndarray],
             key: str) -> AcceptanceOutcomes:
    """bool [new_tokens] from one ``acceptance`` config (at key path ``key``):

    - ``model``: ``model``, the model's own outcomes (None: no numeric run);
    - ``bernoulli``: ``default_rng(seed).random(new_tokens) < rate``;
    - ``file``: the file's first new_tokens values (see ``read_acceptance_file``).
    """
    T = int(new_tokens)
    if acc.source == "model":
        if model is None:
            raise ConfigError("acceptance source 'model' needs a numeric reference run",
                              key=f"{key}.source")
        return np.asarray(model, dtype=bool).copy()
    if acc.source == "bernoulli":
        return np.random.default_rng(acc.seed).random(T) < acc.rate
    if acc.source == "accepted_length":
        return accepted_length_vector(acc.mean, T)
    values = read_acceptance_file(acc.path, key)
    if values.size < T:
        raise ConfigError(f"{acc.path} holds {values.size} values; new_tokens={T} needs "
                          f"at least {T} (one per generated token)", key=f"{key}.path")
    return values[:T]


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


def read_acceptance_file(path: str | Path, key: str = _KEY) -> np.ndarray:
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

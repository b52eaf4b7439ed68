"""The requests of a traffic config: arrival time and lengths, deterministic per seed.

Request i (0-based, in arrival order) arrives at ``arrival_s[i]``:

- ``constant``: i / rate_rps;
- ``poisson``: the cumulative sum of i + 1 exponential gaps of mean 1/rate_rps
  (``default_rng(seed)``);
- ``trace``: the file's rows, in order (its own lengths too).

Lengths drawn from a distribution use their own ``seed``, so changing the
arrival rate keeps every request's lengths.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speedsim.config.traffic import FixedTokens, LognormalTokens, Traffic, UniformTokens


@dataclass(frozen=True)
class Request:
    id: int
    arrival_s: float
    prompt_tokens: int  # P
    output_tokens: int  # T: tokens generated, the first by the prefill


def make_requests(traffic: Traffic) -> list[Request]:
    """Every request of ``traffic``, in arrival order."""
    if traffic.arrivals.process == "trace":
        rows = traffic.trace_rows()[:traffic.requests]
        return [Request(i, a, p, t) for i, (a, p, t) in enumerate(rows)]
    n = traffic.requests
    arrivals = arrival_times(traffic, n)
    prompts = token_counts(traffic.prompt_tokens, n)
    outputs = token_counts(traffic.output_tokens, n)
    return [Request(i, float(a), int(p), int(t))
            for i, (a, p, t) in enumerate(zip(arrivals, prompts, outputs))]


def arrival_times(traffic: Traffic, n: int) -> np.ndarray:
    """float [n] seconds, ascending (constant and poisson processes)."""
    arr = traffic.arrivals
    if arr.process == "constant":
        return np.arange(n) / arr.rate_rps
    gaps = np.random.default_rng(arr.seed).exponential(1.0 / arr.rate_rps, n)
    return np.cumsum(gaps)


def token_counts(dist, n: int) -> np.ndarray:
    """int [n] >= 1 drawn from a ``Tokens`` config."""
    if isinstance(dist, FixedTokens):
        return np.full(n, dist.tokens, dtype=np.int64)
    rng = np.random.default_rng(dist.seed)
    if isinstance(dist, UniformTokens):
        return rng.integers(dist.low, dist.high + 1, n)
    assert isinstance(dist, LognormalTokens)
    draws = np.rint(rng.lognormal(np.log(dist.median_tokens), dist.sigma, n))
    return np.clip(draws, 1, dist.max_tokens).astype(np.int64)

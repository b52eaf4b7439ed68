"""Reuse the reference decoder's greedy run across simulations that share its inputs.

The reference run (``decoder.generate``) depends only on the weights, the model
shape, the prompts, the generation settings and SPEED's exit layer — never on
the hardware, the strategies' other knobs or the acceptance source. Its
``reference_key`` is a sha256 over exactly those inputs:

- the weights' content: the sha256 of the ``.npz`` file's bytes (packaged or
  ``npz`` weights), or the random generator's seed, init std and table size;
- the shape as ``config_json`` stores it (``weights.shape_json``);
- the prompt token ids (text or seeded random, as ``prompt_ids`` makes them),
  ``new_tokens`` and the exit layer;
- the sampling settings when decoding samples (temperature > 0); a greedy run's
  key has no such part, so it is the same as before sampling existed;
- ``KEY_VERSION``, bumped whenever the decoder's numerics or the record change.

So repeated runs and hardware-only sweep points find the same key, and a change
of any input gives a new key (tests/test_reference_cache.py). A cache is any
object with ``load(key) -> dict | None`` and ``store(key, arrays)``; this module
never touches files — the file-backed cache lives in ``speedsim.cli.io``.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Callable, Optional, Protocol

import numpy as np

from speedsim.model.decoder import GenerationRecord, generate, prompt_ids
from speedsim.model.dims import exit_layer_of
from speedsim.model.weights import Params, load_params, shape_json

KEY_VERSION = 1


class RecordCache(Protocol):
    def load(self, key: str) -> Optional[dict[str, np.ndarray]]: ...

    def store(self, key: str, arrays: dict[str, np.ndarray]) -> None: ...


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def weights_identity(weights) -> dict:
    """What determines the numeric weights of a ``model.weights`` config."""
    if weights.source == "random":
        return {"source": "random", "seed": weights.seed, "init_std": weights.init_std}
    if weights.source == "npz":
        return {"source": "npz", "sha256": file_sha256(weights.path)}
    ref = resources.files("speedsim") / "data" / f"{weights.name}.npz"
    with resources.as_file(ref) as p:
        return {"source": "packaged", "sha256": file_sha256(p)}


def reference_key(workload) -> str:
    """sha256 hex digest of every input of the workload's reference run."""
    m, g = workload.model, workload.generation
    prompts = prompt_ids(g, m.vocab_size)
    parts = {"version": KEY_VERSION, "weights": weights_identity(m.weights),
             "shape": json.loads(shape_json(m)), "max_seq_len": m.max_seq_len,
             "prompts_sha256": hashlib.sha256(np.ascontiguousarray(prompts, np.int64)).hexdigest(),
             "prompt_shape": list(prompts.shape), "new_tokens": g.new_tokens,
             "exit_layer": exit_layer_of(workload)}
    if g.sampled is not None:
        parts["sampling"] = g.sampled.model_dump(mode="json")
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def record_arrays(record: GenerationRecord) -> dict[str, np.ndarray]:
    arrays = {"prompt": record.prompt, "tokens": record.tokens,
              "exit_layer": np.array(-1 if record.exit_layer is None else record.exit_layer)}
    optional = {"early": record.early, "probs": record.probs, "expected": record.expected}
    return arrays | {name: a for name, a in optional.items() if a is not None}


def record_from_arrays(arrays: dict[str, np.ndarray]) -> GenerationRecord:
    exit_layer = int(arrays["exit_layer"])
    return GenerationRecord(prompt=np.asarray(arrays["prompt"], np.int64),
                            tokens=np.asarray(arrays["tokens"], np.int64),
                            early=np.asarray(arrays["early"], np.int64) if "early" in arrays else None,
                            exit_layer=None if exit_layer < 0 else exit_layer,
                            probs=arrays.get("probs"), expected=arrays.get("expected"))


def cached_generate(workload, cache: Optional[RecordCache],
                    weights: Optional[Callable[[], Params]] = None) -> GenerationRecord:
    """The workload's reference run: from ``cache`` when it holds the key, else computed
    (with the params ``weights()`` gives, by default the workload's) and stored there."""
    if cache is not None:
        hit = cache.load(key := reference_key(workload))
        if hit is not None:
            return record_from_arrays(hit)
    record = generate(workload, params=weights() if weights is not None else load_params(workload))
    if cache is not None:
        cache.store(key, record_arrays(record))
    return record

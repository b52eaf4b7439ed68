"""The NumPy reference decoder (docs/model.md), its weights and SPEED executed numerically.

- ``sharing``: layer -> weight-set maps;
- ``weights``: ``Params``, random init, npz load/save, ``load_params(workload)``;
- ``decoder``: LN, GELU, attention with KV cache and GQA, ``forward_full``,
  ``run_layers`` (one fused layer step), ``generate`` -> ``GenerationRecord``;
- ``speed_exec``: ``derive_schedule`` (the pure SPEED schedule) and ``run_speed``
  (the pipeline, numerically);
- ``tokenizer``: byte-level encode/decode.
"""

from speedsim.model.decoder import (GenerationRecord, KVCache, forward_full, generate,
                                    greedy_decode, prompt_ids, run_layer, run_layers)
from speedsim.model.sharing import layer_to_set
from speedsim.model.speed_exec import Schedule, TokenExec, derive_schedule, run_speed
from speedsim.model.weights import Params, load_npz, load_params, random_params, save_npz

__all__ = ["GenerationRecord", "KVCache", "Params", "Schedule", "TokenExec", "derive_schedule",
           "forward_full", "generate", "greedy_decode", "layer_to_set", "load_npz",
           "load_params", "prompt_ids", "random_params", "run_layer", "run_layers",
           "run_speed", "save_npz"]

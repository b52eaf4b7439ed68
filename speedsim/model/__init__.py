"""The NumPy reference decoder (docs/model.md), its weights and SPEED executed numerically.

- ``sharing``: layer -> weight-set maps;
- ``weights``: ``Params``, random init, npz load/save, ``load_params(workload)``;
- ``decoder``: LN, GELU, attention with KV cache and GQA, ``forward_full``,
  ``run_layers`` (one fused layer step), ``generate`` -> ``GenerationRecord``;
- ``dims``: ``Dims`` (the numbers a model shape fixes), ``exit_layer_of``;
- ``speed_exec``: ``run_speed``, the SPEED pipeline numerically (the pure
  schedule it must reproduce is ``speedsim.strategies.speed_schedule``);
- ``tokenizer``: byte-level encode/decode.
"""

from speedsim.model.decoder import (GenerationRecord, KVCache, forward_full, generate,
                                    greedy_decode, prompt_ids, run_layer, run_layers)
from speedsim.model.sharing import layer_to_set
from speedsim.model.speed_exec import run_speed
from speedsim.model.weights import Params, load_npz, load_params, random_params, save_npz

__all__ = ["GenerationRecord", "KVCache", "Params", "forward_full", "generate", "greedy_decode",
           "layer_to_set", "load_npz", "load_params", "prompt_ids", "random_params", "run_layer", "run_layers",
           "run_speed", "save_npz"]

"""Decoder parameters: seeded random initialisation, ``.npz`` load and save (docs/model.md).

``Params`` holds float32 arrays only; the model *shape* stays in the workload's
``ModelShape``. Every array is checked against that shape when loaded, so a
weights file that does not fit the workload fails at once with a
``ConfigError`` naming ``model.weights.path`` — never deep inside a matmul.

Random initialisation draws, from ``numpy.random.default_rng(seed)`` and in this
order, N(0, init_std) float64 samples cast to float32: ``tok_emb``, ``pos_emb``,
then for each set u = 0..U-1: ``wqkv``, ``wo``, ``w_up``, ``w_down``. LayerNorm
weights are 1 and biases 0.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Iterator

import numpy as np

from speedsim.config.errors import ConfigError
from speedsim.model.sharing import layer_to_set, shape_layer_sets

SET_KEYS = ("ln1.w", "ln1.b", "wqkv", "wo", "ln2.w", "ln2.b", "w_up", "w_down")
SHAPE_KEYS = ("d_model", "n_heads", "n_kv_heads", "d_ff", "n_layers", "vocab_size", "mlp",
              "sharing")


@dataclass(frozen=True)
class SetParams:
    """The parameters of one weight set (one unique decoder layer)."""

    ln1_w: np.ndarray  # [d]
    ln1_b: np.ndarray  # [d]
    wqkv: np.ndarray  # [d, d + 2*kvh*dh]
    wo: np.ndarray  # [d, d]
    ln2_w: np.ndarray  # [d]
    ln2_b: np.ndarray  # [d]
    w_up: np.ndarray  # [d, d_ff] (gelu) or [d, 2*d_ff] (gated_gelu)
    w_down: np.ndarray  # [d_ff, d]


@dataclass(frozen=True)
class Params:
    tok_emb: np.ndarray  # [V, d], also the (tied) LM head
    pos_emb: np.ndarray  # [S, d], S = max_seq_len
    ln_f_w: np.ndarray  # [d]
    ln_f_b: np.ndarray  # [d]
    sets: tuple[SetParams, ...]  # U weight sets

    @property
    def max_seq_len(self) -> int:
        return self.pos_emb.shape[0]

    def arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """(npz key, array) pairs in file order."""
        yield "tok_emb", self.tok_emb
        yield "pos_emb", self.pos_emb
        yield "ln_f.w", self.ln_f_w
        yield "ln_f.b", self.ln_f_b
        for u, s in enumerate(self.sets):
            for key, f in zip(SET_KEYS, fields(SetParams)):
                yield f"sets.{u}.{key}", getattr(s, f.name)


def expected_shapes(shape, max_seq_len: int) -> dict[str, tuple[int, ...]]:
    """npz key -> array shape for a ``ModelShape`` (docs/model.md, "Weights file")."""
    d, F = shape.d_model, shape.d_ff
    qkv = d + 2 * shape.kv_heads * shape.head_dim
    up = 2 * F if shape.mlp == "gated_gelu" else F
    out = {"tok_emb": (shape.vocab_size, d), "pos_emb": (max_seq_len, d),
           "ln_f.w": (d,), "ln_f.b": (d,)}
    per_set = {"ln1.w": (d,), "ln1.b": (d,), "wqkv": (d, qkv), "wo": (d, d),
               "ln2.w": (d,), "ln2.b": (d,), "w_up": (d, up), "w_down": (F, d)}
    for u in range(shape.weight_sets):
        out.update({f"sets.{u}.{k}": v for k, v in per_set.items()})
    return out


def random_params(shape, seed: int, init_std: float, max_seq_len: int) -> Params:
    """Seeded N(0, init_std) matrices, LayerNorm weights 1 and biases 0."""
    if init_std <= 0:
        raise ValueError(f"init_std must be > 0, got {init_std}")
    if max_seq_len < 1:
        raise ValueError(f"max_seq_len must be >= 1, got {max_seq_len}")
    rng = np.random.default_rng(seed)
    shapes = expected_shapes(shape, max_seq_len)
    d = shape.d_model

    def normal(key: str) -> np.ndarray:
        return rng.normal(0.0, init_std, shapes[key]).astype(np.float32)

    ones, zeros = np.ones(d, np.float32), np.zeros(d, np.float32)
    tok_emb, pos_emb = normal("tok_emb"), normal("pos_emb")
    sets = []
    for u in range(shape.weight_sets):
        wqkv, wo = normal(f"sets.{u}.wqkv"), normal(f"sets.{u}.wo")
        w_up, w_down = normal(f"sets.{u}.w_up"), normal(f"sets.{u}.w_down")
        sets.append(SetParams(ones, zeros, wqkv, wo, ones, zeros, w_up, w_down))
    return in_one_block_params(Params(tok_emb, pos_emb, ones, zeros, tuple(sets)))


_ALIGN_BYTES = 64  # a cache line: every array starts on one


def in_one_block(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Float32 C-contiguous copies of ``arrays``, laid one after another (each on a cache
    line) in one allocation. The decoder streams every weight matrix once per token
    (memory-bound matrix-vector products); one block of 4 MiB or more is one NumPy backs
    with huge pages on Linux (it asks the kernel with ``madvise``; see
    ``numpy._core.multiarray._get_madvise_hugepage``), so the stream crosses a few 2 MiB
    pages instead of thousands of 4 KiB ones: the shipped model's reference decode took
    14-34 % less CPU (medians of paired runs on the shared 2-core development machine).
    The values, and so every product, are the same."""
    sizes = [-(-a.size * 4 // _ALIGN_BYTES) * _ALIGN_BYTES for a in arrays]
    block = np.empty(sum(sizes) + _ALIGN_BYTES, np.uint8)
    offset = -block.ctypes.data % _ALIGN_BYTES
    out = []
    for a, size in zip(arrays, sizes):
        view = block[offset:offset + a.size * 4].view(np.float32).reshape(a.shape)
        view[...] = a
        out.append(view)
        offset += size
    return out


def in_one_block_params(params: Params) -> Params:
    """``params`` with its arrays ``in_one_block``."""
    arrays = iter(in_one_block([a for _, a in params.arrays()]))
    head = [next(arrays) for _ in range(4)]
    return Params(*head, tuple(SetParams(*(next(arrays) for _ in SET_KEYS)) for _ in params.sets))


def shape_json(shape) -> str:
    """The model shape as the JSON stored in an npz's ``config_json``."""
    return json.dumps({"d_model": shape.d_model, "n_heads": shape.n_heads,
                       "n_kv_heads": shape.kv_heads, "d_ff": shape.d_ff,
                       "n_layers": shape.n_layers, "vocab_size": shape.vocab_size,
                       "mlp": shape.mlp,
                       "sharing": _sharing_json(shape)}, sort_keys=True)


def _sharing_json(shape) -> dict:
    """The sharing part of ``shape_json``; prelude and coda only for a looped model."""
    s = shape.sharing
    out = {"scheme": s.scheme, "unique_layers": shape.unique_layers}
    if s.scheme == "loop":
        out.update(prelude_layers=s.prelude_layers, coda_layers=s.coda_layers)
    return out


def save_npz(path: str | Path, params: Params, shape=None) -> None:
    """Write ``params`` (and, given ``shape``, its ``config_json``) as an uncompressed npz."""
    arrays = dict(params.arrays())
    if shape is not None:
        arrays["config_json"] = np.array(shape_json(shape))
    np.savez(Path(path), **arrays)


def load_npz(path: str | Path, shape, min_seq_len: int = 1,
             key: str = "model.weights.path") -> Params:
    """Read an npz and check every key and shape against ``shape``.

    ``min_seq_len`` is the positional-table length the generation needs
    (prompt + new tokens). Any mismatch raises ``ConfigError`` naming ``key``.
    """
    path = Path(path)

    def bad(message: str) -> ConfigError:
        return ConfigError(f"{message} (in {path})", key=key)

    try:
        with np.load(path, allow_pickle=False) as npz:
            data = {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise bad("weights file not found") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise bad(f"not a readable .npz file ({exc})") from None
    _check_config_json(data.pop("config_json", None), shape, bad)
    if "pos_emb" not in data or data["pos_emb"].ndim != 2:
        raise bad("missing or malformed array 'pos_emb'")
    S = data["pos_emb"].shape[0]
    if S < min_seq_len:
        raise bad(f"pos_emb has {S} positions; the workload needs {min_seq_len} "
                  "(prompt_tokens + new_tokens)")
    want = expected_shapes(shape, S)
    missing = sorted(set(want) - set(data))
    extra = sorted(set(data) - set(want))
    if missing:
        raise bad(f"missing arrays {missing[:4]}{' …' if len(missing) > 4 else ''}")
    if extra:
        raise bad(f"unexpected arrays {extra[:4]}{' …' if len(extra) > 4 else ''} "
                  f"(the workload has {shape.weight_sets} weight sets)")
    for k, shp in want.items():
        if data[k].shape != shp:
            raise bad(f"array {k!r} has shape {data[k].shape}, the workload needs {shp}")
        if not np.issubdtype(data[k].dtype, np.floating):
            raise bad(f"array {k!r} has dtype {data[k].dtype}, expected floating point")
    a = dict(zip(data, in_one_block(list(data.values()))))
    sets = tuple(SetParams(*(a[f"sets.{u}.{k}"] for k in SET_KEYS))
                 for u in range(shape.weight_sets))
    return Params(a["tok_emb"], a["pos_emb"], a["ln_f.w"], a["ln_f.b"], sets)


def _same_layer_sets(sharing: dict, shape) -> bool:
    """The stored sharing maps every layer to the same weight set as the workload's (a
    ``cycle`` model is a ``loop`` without prelude and coda)."""
    try:
        theirs = layer_to_set(sharing["scheme"], shape.n_layers, sharing["unique_layers"],
                              sharing.get("prelude_layers", 0), sharing.get("coda_layers", 0))
    except (ValueError, TypeError):
        return False
    return theirs == shape_layer_sets(shape)


def _check_config_json(raw, shape, bad) -> None:
    if raw is None:
        return
    try:
        stored = json.loads(str(raw[()]))
    except (ValueError, TypeError, IndexError):
        raise bad("config_json is not a JSON string") from None
    if not isinstance(stored, dict):
        raise bad("config_json must hold a JSON object")
    mine = json.loads(shape_json(shape))
    for k in SHAPE_KEYS:
        if k not in stored:
            continue
        theirs = stored[k]
        if k == "n_kv_heads" and theirs is None:
            theirs = shape.n_heads
        if k == "sharing" and isinstance(theirs, dict):
            theirs = {"scheme": theirs.get("scheme", "none"),
                      "unique_layers": theirs.get("unique_layers") or shape.n_layers,
                      **{p: theirs[p] for p in ("prelude_layers", "coda_layers") if p in theirs}}
            if _same_layer_sets(theirs, shape):
                continue
        if theirs != mine[k]:
            raise bad(f"config_json {k}={theirs!r} disagrees with the workload ({mine[k]!r})")


def load_params(workload) -> Params:
    """The numeric parameters a workload names (``model.weights.source``)."""
    g = workload.generation
    return load_shape_params(workload.model, g.prompt_tokens + g.new_tokens)


def load_shape_params(m, need: int, key: str = "model.weights") -> Params:
    """The numeric parameters of a ``ModelShape`` (``key``: where its ``weights`` sit in the
    config, for errors); ``need`` positions of the positional table (prompt + new tokens)."""
    w = m.weights
    if w.source == "random":
        return random_params(m, w.seed, w.init_std, m.max_seq_len or need)
    if w.source == "npz":
        return load_npz(w.path, m, min_seq_len=need, key=f"{key}.path")
    if w.source == "packaged":
        ref = resources.files("speedsim") / "data" / f"{w.name}.npz"
        if not ref.is_file():
            raise ConfigError(f"no packaged weights named {w.name!r} (speedsim/data/{w.name}.npz)",
                              key=f"{key}.name")
        with resources.as_file(ref) as p:
            return load_npz(p, m, min_seq_len=need, key=f"{key}.name")
    raise ConfigError("weights.source shape_only has no numeric weights; this needs "
                      "random, npz or packaged weights", key=f"{key}.source")

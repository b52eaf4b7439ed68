"""The NumPy reference decoder: a GPT-style pre-LayerNorm transformer (docs/model.md).

Float32 throughout. The hardware precision never enters here: it only sets
bytes and energy further down the pipeline.

Three ways in, all built from the same ``run_layers``:

- ``forward_full``: the whole sequence at once, no cache (the ground truth);
- ``greedy_decode`` / ``generate``: prefill, then one token at a time with a
  ``KVCache``; records early (exit-point) and final predictions per position;
- ``run_layers``: ONE fused layer step for several token groups that are at
  *different* layers sharing *one* weight set. Their hidden rows are stacked so
  LayerNorm, qkv, out_proj and the MLP are one matmul each; attention runs per
  group against that group's own layer of the KV cache. This is literally what
  SPEED's executor does at each layer step (``speedsim.model.speed_exec``).

Every op can be reported to a ``recorder`` (a ``speedsim.contracts.oprow.OpRow``
per op, per token group, byte fields at one byte per element — fused calls still report each group's own rows), which is how the
numeric op trace is built (``speedsim.trace.numeric``).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Callable, NamedTuple, Optional, Sequence

import numpy as np

from speedsim.contracts.oprow import HEAD_SET, NO_WEIGHTS, OpRow
from speedsim.model import sampling as sampling_mod
from speedsim.model.dims import Dims, exit_layer_of
from speedsim.model.tokenizer import encode
from speedsim.model.weights import Params, load_params

LN_EPS = 1e-5
AUTO = "auto"
_EPS32 = np.float32(LN_EPS)
_GELU_C = np.float32(np.sqrt(2.0 / np.pi))  # GELU's tanh-approximation constants, in fp32
_GELU_K = np.float32(0.044715)
_HALF, _ONE = np.float32(0.5), np.float32(1.0)
# the ufuncs' own reductions: what ``x.sum(axis)`` / ``x.max(axis)`` call, less their
# Python wrappers (a decode step makes about ten reductions on rows of a few hundred)
_sum, _max = np.add.reduce, np.maximum.reduce


# ---------------------------------------------------------------- shapes, records

Recorder = Callable[[OpRow], None]
_SETS = {"head": HEAD_SET, "none": NO_WEIGHTS}


def _row(pos: int, layer: int, op: str, weights: str, u: int, *,
         weight_elems: int = 0, act_in_elems: int = 0, act_out_elems: int = 0,
         kv_read_elems: int = 0, kv_write_elems: int = 0, **shape: int) -> OpRow:
    """An op row at one byte per element (the trace scales the byte fields by the
    hardware precision); ``phase`` is set by whoever knows it (``greedy_decode``)."""
    return OpRow("", pos, layer, u if weights == "set" else _SETS[weights], op,
                 weight_bytes=weight_elems, act_in_bytes=act_in_elems,
                 act_out_bytes=act_out_elems, kv_read_bytes=kv_read_elems,
                 kv_write_bytes=kv_write_elems, **shape)


def _gemm(rec: Optional[Recorder], pos: int, layer: int, op: str, u: int, x: np.ndarray,
          w: np.ndarray, y: np.ndarray, kv_write: int = 0, weights: str = "set") -> None:
    if rec is not None:
        m, k = x.shape
        rec(_row(pos, layer, op, weights, u,
                 m=m, k=k, n=w.shape[1], count=1, weight_elems=w.size,
                 act_in_elems=x.size, act_out_elems=y.size, kv_write_elems=kv_write,
                 macs=m * k * w.shape[1]))


def _vector(rec: Optional[Recorder], pos: int, layer: int, op: str, elements: int,
            act_in: int, act_out: int, u: int = -1, weight_elems: int = 0,
            weights: str = "none") -> None:
    if rec is not None:
        rec(_row(pos, layer, op, weights, u, elements=elements, vector_ops=elements,
                 weight_elems=weight_elems, act_in_elems=act_in, act_out_elems=act_out))


# ---------------------------------------------------------------- building blocks

def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(x - mean) / sqrt(var + 1e-5) * w + b over the last axis, biased variance."""
    inv_d = np.float32(1.0 / x.shape[-1])
    mean = _sum(x, -1, keepdims=True)
    mean *= inv_d
    xc = x - mean
    var = _sum(xc * xc, -1, keepdims=True)
    var *= inv_d
    var += _EPS32
    y = xc / np.sqrt(var, out=var)
    y *= w
    y += b
    return y


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU, tanh approximation (PyTorch ``gelu(approximate="tanh")``)."""
    inner = x * x
    inner *= x
    inner *= _GELU_K
    inner += x
    inner *= _GELU_C  # c * (x + k * x^3), in this order
    t = np.tanh(inner, out=inner)
    t += _ONE
    y = _HALF * x
    y *= t
    return y


def softmax(s: np.ndarray) -> np.ndarray:
    e = s - _max(s, -1, keepdims=True)
    np.exp(e, out=e)
    e /= _sum(e, -1, keepdims=True)
    return e


class KVCache:
    """Per-layer K and V for positions 0..length-1 of every sequence in the batch.

    Layers fill independently (in SPEED, different layers of the cache hold
    different numbers of positions at any moment), but each layer only ever
    appends the next position, and ``rollback`` drops a suffix at every layer.
    """

    def __init__(self, n_layers: int, batch: int, kv_heads: int, head_dim: int, max_len: int):
        shape = (batch, kv_heads, max_len, head_dim)
        self.k = [np.zeros(shape, np.float32) for _ in range(n_layers)]  # [B, kvh, S, dh]
        self.v = [np.zeros(shape, np.float32) for _ in range(n_layers)]
        self.lengths = [0] * n_layers

    @classmethod
    def for_shape(cls, shape, batch: int, max_len: int) -> "KVCache":
        dm = Dims.of(shape)
        return cls(dm.n_layers, batch, dm.kv_heads, dm.head_dim, max_len)

    def append(self, layer: int, start: int, k: np.ndarray, v: np.ndarray) -> None:
        """Write K, V [B, kvh, t, dh] of positions start..start+t-1 at ``layer``."""
        if start != self.lengths[layer]:
            raise ValueError(f"layer {layer} holds {self.lengths[layer]} positions; "
                             f"cannot append at position {start}")
        t = k.shape[2]
        self.k[layer][:, :, start:start + t] = k
        self.v[layer][:, :, start:start + t] = v
        self.lengths[layer] = start + t

    def keys_values(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """K, V [B, kvh, length, dh] of ``layer`` (views)."""
        n = self.lengths[layer]
        return self.k[layer][:, :, :n], self.v[layer][:, :, :n]

    def rollback(self, position: int) -> None:
        """Forget positions >= ``position`` at every layer (a SPEED flush)."""
        self.lengths = [min(n, position) for n in self.lengths]


def attention(q: np.ndarray, K: np.ndarray, V: np.ndarray, start: int) -> np.ndarray:
    """Causal multi-head attention with grouped K/V.

    q [B, H, t, dh] for positions start..start+t-1; K, V [B, kvh, L, dh] with
    L = start + t. Returns [B, t, H*dh].
    """
    B, H, t, dh = q.shape
    kvh, L = K.shape[1], K.shape[2]
    qg = q.reshape(B, kvh, H // kvh, t, dh)  # query head i -> kv head i // (H/kvh)
    s = qg @ K[:, :, None].swapaxes(-1, -2)  # [B, kvh, rep, t, L]
    s /= _root(dh)
    if t > 1:
        future = np.arange(L)[None, :] > (start + np.arange(t))[:, None]  # [t, L]
        s = np.where(future, np.float32(-np.inf), s)
    a = softmax(s) @ V[:, :, None]  # [B, kvh, rep, t, dh]
    return a.reshape(B, H, t, dh).transpose(0, 2, 1, 3).reshape(B, t, H * dh)


@functools.lru_cache(maxsize=None)
def _root(dh: int) -> np.float32:
    """sqrt(dh) in fp32, the scores' divisor."""
    return np.float32(np.sqrt(dh))


def embed(params: Params, tokens: np.ndarray, start: int,
          rec: Optional[Recorder] = None) -> np.ndarray:
    """tokens [B, t] at positions start..start+t-1 -> x [B, t, d]."""
    B, t = tokens.shape
    tok = params.tok_emb[tokens]  # [B, t, d]
    pos = params.pos_emb[start:start + t]  # [t, d]
    x = tok + pos
    _vector(rec, start, -1, "embed", x.size, 0, x.size, weight_elems=tok.size + pos.size,
            weights="head")
    return x


def head(params: Params, x: np.ndarray, pos: int = 0, layer: int = -1,
         rec: Optional[Recorder] = None) -> np.ndarray:
    """Final LayerNorm + LM head tied to the embedding: x [R, d] -> logits [R, V]. The
    caller picks the R ids from them; the pick is reported here, as the head's last op
    (one element in per logit, one out per id)."""
    h = layer_norm(x, params.ln_f_w, params.ln_f_b)
    _vector(rec, pos, layer, "norm", x.size, x.size, h.size,
            weight_elems=2 * x.shape[-1], weights="head")
    logits = h @ params.tok_emb.T
    _gemm(rec, pos, layer, "lm_head", -1, h, params.tok_emb.T, logits, weights="head")
    _vector(rec, pos, layer, "pick", logits.size, logits.size, x.shape[0])
    return logits


# ---------------------------------------------------------------- one (fused) layer step

def run_layers(params: Params, shape, xs: Sequence[np.ndarray], layers: Sequence[int],
               starts: Sequence[int], cache: Optional[KVCache],
               rec: Optional[Recorder] = None) -> list[np.ndarray]:
    """One layer step for several token groups whose layers share ONE weight set.

    Group i is x_i [B, t_i, d] at positions starts[i].. at layer layers[i]. The
    dense parts (LayerNorm, qkv, out_proj, residuals, MLP) run once over the
    stacked rows; attention runs per group against its own layer's KV cache
    (``cache`` None: no cache, every group must start at position 0).
    Returns the groups' new hidden states, in order.
    """
    dm = Dims.of(shape)
    u = _shared_set(dm, layers, len(xs), len(starts), cache)
    rows = _Rows(xs, dm.d)
    groups = list(zip(xs, layers, starts))
    X = _attention_block(params.sets[u], dm, u, rows, groups, cache, rec)
    X = _mlp_block(params.sets[u], dm, u, rows, groups, X, rec)
    return [Xi.reshape(x.shape) for Xi, x in zip(rows.split(X), xs)]


def _shared_set(dm: Dims, layers: Sequence[int], n_xs: int, n_starts: int,
                cache: Optional[KVCache]) -> int:
    """The one weight set of ``layers``; raises on mismatched or clashing groups."""
    if not (n_xs == len(layers) == n_starts) or not n_xs:
        raise ValueError("xs, layers and starts must be non-empty and of equal length")
    u = dm.sets[layers[0]]
    if any(dm.sets[l] != u for l in layers):
        raise ValueError(f"layers {list(layers)} use different weight sets "
                         f"{[dm.sets[l] for l in layers]}")
    if len(set(layers)) != len(layers) and cache is not None:
        raise ValueError("two groups at one layer would write the same cache layer")
    return u


class _Rows:
    """The groups' rows stacked into one matrix [M, d], and split back per group."""

    def __init__(self, xs: Sequence[np.ndarray], d: int):
        self.rows = [x.reshape(-1, d) for x in xs]  # [B*t_i, d]
        self.bounds = list(itertools.accumulate((r.shape[0] for r in self.rows), initial=0))
        self.X = np.concatenate(self.rows) if len(self.rows) > 1 else self.rows[0]  # [M, d]

    def split(self, Y: np.ndarray) -> list[np.ndarray]:
        b = self.bounds
        return [Y] if len(self.rows) == 1 else [Y[b[i]:b[i + 1]] for i in range(len(self.rows))]


def _attention_block(w, dm: Dims, u: int, rows: _Rows, groups, cache: Optional[KVCache],
                     rec: Optional[Recorder]) -> np.ndarray:
    """x = x + attn(LN(x)) @ wo over the stacked rows; attention per group. Returns X [M, d]."""
    d = dm.d
    X = rows.X
    h = layer_norm(X, w.ln1_w, w.ln1_b)  # [M, d]
    qkv = h @ w.wqkv  # [M, d + 2*kvh*dh]
    outs = []
    for (x, l, p), hi, qi in zip(groups, rows.split(h), rows.split(qkv)):
        B, t = x.shape[:2]
        _vector(rec, p, l, "norm", hi.size, hi.size, hi.size, u, 2 * d, "set")
        _gemm(rec, p, l, "qkv", u, hi, w.wqkv, qi, kv_write=2 * B * t * dm.kv_heads * dm.head_dim)
        outs.append(_group_attention(dm, qi, B, t, l, p, cache, rec))
    A = np.concatenate(outs) if len(outs) > 1 else outs[0]  # [M, d]
    O = A @ w.wo
    for (x, l, p), ai, oi in zip(groups, rows.split(A), rows.split(O)):
        _gemm(rec, p, l, "out_proj", u, ai, w.wo, oi)
        _vector(rec, p, l, "residual", oi.size, 2 * oi.size, oi.size)
    return X + O


def _group_attention(dm: Dims, qi: np.ndarray, B: int, t: int, l: int, p: int,
                     cache: Optional[KVCache], rec: Optional[Recorder]) -> np.ndarray:
    """One group's attention against its own layer's cache; returns [B*t, d]."""
    d, H, kvh, dh = dm.d, dm.heads, dm.kv_heads, dm.head_dim
    q = qi[:, :d].reshape(B, t, H, dh).transpose(0, 2, 1, 3)  # [B, H, t, dh]
    k = qi[:, d:d + kvh * dh].reshape(B, t, kvh, dh).transpose(0, 2, 1, 3)  # [B, kvh, t, dh]
    v = qi[:, d + kvh * dh:].reshape(B, t, kvh, dh).transpose(0, 2, 1, 3)
    if cache is None:
        if p != 0:
            raise ValueError("without a cache every group must start at position 0")
        K, V = k, v
    else:
        cache.append(l, p, k, v)
        K, V = cache.keys_values(l)  # [B, kvh, p+t, dh]
    if rec is not None:
        _record_attention(rec, dm, q, K.shape[2], B, t, l, p)
    return attention(q, K, V, p).reshape(B * t, d)


def _record_attention(rec: Recorder, dm: Dims, q: np.ndarray, L: int, B: int, t: int, l: int,
                      p: int) -> None:
    """Trace rows of one group's attention: scores, softmax, weighted values."""
    H, kvh, dh = dm.heads, dm.kv_heads, dm.head_dim
    kv = B * kvh * L * dh
    rec(_row(p, l, "attn_score", "none", -1, m=t, k=dh, n=L, count=B * H, heads=H,
             kv_len=L, act_in_elems=q.size, act_out_elems=B * H * t * L,
             kv_read_elems=kv, macs=B * H * t * dh * L))
    _vector(rec, p, l, "softmax", B * H * t * L, B * H * t * L, B * H * t * L)
    rec(_row(p, l, "attn_value", "none", -1, m=t, k=L, n=dh, count=B * H, heads=H,
             kv_len=L, act_in_elems=B * H * t * L, act_out_elems=B * t * H * dh,
             kv_read_elems=kv, macs=B * H * t * L * dh))


def _mlp_block(w, dm: Dims, u: int, rows: _Rows, groups, X: np.ndarray,
               rec: Optional[Recorder]) -> np.ndarray:
    """x = x + mlp(LN(x)) over the stacked rows X [M, d]."""
    h = layer_norm(X, w.ln2_w, w.ln2_b)
    up = h @ w.w_up  # [M, d_ff] or [M, 2*d_ff]
    if dm.gated:
        g, lin = up[:, :dm.d_ff], up[:, dm.d_ff:]
        act = gelu(g) * lin  # [M, d_ff]
    else:
        act = gelu(up)
    down = act @ w.w_down  # [M, d]
    sp = rows.split
    for (x, l, p), hi, ui, ai, di in zip(groups, sp(h), sp(up), sp(act), sp(down)):
        _vector(rec, p, l, "norm", hi.size, hi.size, hi.size, u, 2 * dm.d, "set")
        _gemm(rec, p, l, "mlp_up", u, hi, w.w_up, ui)
        _vector(rec, p, l, "act", ui.size, ui.size, ai.size)
        _gemm(rec, p, l, "mlp_down", u, ai, w.w_down, di)
        _vector(rec, p, l, "residual", di.size, 2 * di.size, di.size)
    return X + down


def run_layer(params: Params, shape, layer: int, x: np.ndarray, cache: Optional[KVCache],
              start: int, rec: Optional[Recorder] = None) -> np.ndarray:
    """One decoder layer for x [B, t, d] at positions start..start+t-1."""
    return run_layers(params, shape, [x], [layer], [start], cache, rec)[0]


# ---------------------------------------------------------------- whole passes

def forward_full(params: Params, shape, tokens: np.ndarray, exit_layer: Optional[int] = None
                 ) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """tokens [B, T] at positions 0..T-1, no cache -> (final_logits, early_logits) [B, T, V].

    ``early_logits`` (None when ``exit_layer`` is None) apply the final norm and
    tied head to the hidden state after layer ``exit_layer``.
    """
    dm = Dims.of(shape)
    _check_exit(exit_layer, dm)
    x = embed(params, tokens, 0)
    early = None
    for l in range(dm.n_layers):
        x = run_layer(params, dm, l, x, None, 0)
        if l == exit_layer:
            early = head(params, x)
    return head(params, x), early


@dataclass(frozen=True)
class GenerationRecord:
    """A decoding run: prompts, committed tokens and per-position predictions.

    Generated token i sits at position P + i. Token 0 comes from the prefill's
    last row; token i >= 1 from the decode step whose input is token i-1 at
    position P + i - 1. Greedy: ``early[:, i]`` is the argmax of the early logits
    of the step that produced token i, ``tokens[:, i]`` (= ``final[:, i]``) that
    of its final logits. Sampled (``speedsim.model.sampling``): ``tokens`` are
    drawn from the target's distributions ``probs``, and ``early[:, i]`` is the
    exit head's draft of token i, drawn from its own distribution coupled to
    token i as speculative sampling couples them; ``expected[i]`` is the
    probability that draft is kept (Σ min(p, q), multiplied over the batch).
    ``accepted[i]``: early == final for every sequence.
    SPEED consults ``accepted[1 .. new_tokens-2]`` (see ``speedsim.strategies.speed_schedule``).
    """

    prompt: np.ndarray  # int64 [B, P]
    tokens: np.ndarray  # int64 [B, new_tokens]
    early: Optional[np.ndarray]  # int64 [B, new_tokens]; None without an exit layer
    exit_layer: Optional[int]
    probs: Optional[np.ndarray] = None  # float [B, new_tokens, V] target's p; None: greedy
    expected: Optional[np.ndarray] = None  # float [new_tokens]; None: greedy or no exit

    @property
    def committed(self) -> np.ndarray:
        """int64 [B, new_tokens]: the committed tokens."""
        return self.tokens

    @property
    def final(self) -> np.ndarray:
        """Final predictions: decoding commits them, so they are ``tokens``."""
        return self.tokens

    @property
    def accepted(self) -> Optional[np.ndarray]:
        """bool [new_tokens]: the early prediction of token i was right for the whole batch."""
        if self.early is None:
            return None
        return (self.early == self.tokens).all(axis=0)


class _Picker:
    """How a decode step's logits become tokens: greedy argmax, or sampled
    (``speedsim.model.sampling``: the target's token from its uniform, the exit's
    draft coupled to it). Keeps what a sampled record holds."""

    def __init__(self, sampling, B: int, T: int, V: int):
        self.sampling = sampling
        if sampling is not None:
            self.u = sampling_mod.target_uniforms(sampling.seed, T, B)
            self.uv = sampling_mod.coupling_uniforms(sampling.seed, T, B)
            self.probs = np.zeros((B, T, V), np.float32)
            self.expected = np.zeros(T)

    def pick(self, i: int, final: np.ndarray, early: Optional[np.ndarray]):
        """(token [B], early token [B] or None) of generated token i from logits [B, V]."""
        if self.sampling is None:
            return final.argmax(-1), None if early is None else early.argmax(-1)
        p = sampling_mod.distribution(final, self.sampling)
        y = sampling_mod.inverse_cdf(p, self.u[i])
        self.probs[:, i] = p
        if early is None:
            return y, None
        q = sampling_mod.distribution(early, self.sampling)
        self.expected[i] = np.prod(sampling_mod.expected_acceptance(p, q))
        return y, sampling_mod.coupled_draft(y, p, q, self.uv[i])

    def record(self, prompts, tokens, early, exit_layer) -> GenerationRecord:
        if self.sampling is None:
            return GenerationRecord(prompts, tokens, early, exit_layer)
        return GenerationRecord(prompts, tokens, early, exit_layer, self.probs,
                                None if early is None else self.expected)


def greedy_decode(params: Params, shape, prompts: np.ndarray, new_tokens: int,
                  exit_layer: Optional[int] = None, recorder=None,
                  sampling=None) -> GenerationRecord:
    """Prefill ``prompts`` [B, P], then decode with a KV cache: greedily, or sampled
    when ``sampling`` (a ``generation.sampling`` with temperature > 0) is given.

    ``recorder(phase, OpRow)`` receives every op of the run, in execution
    order. Early predictions are computed for the record but not reported: the
    trace is the same for every strategy, and each strategy runs the head rows
    (layer N) wherever its exits are (``speedsim.trace``).
    """
    dm = Dims.of(shape)
    _check_exit(exit_layer, dm)
    prompts = np.asarray(prompts, dtype=np.int64)
    B, P = prompts.shape
    T = int(new_tokens)
    if T < 1:
        raise ValueError(f"new_tokens must be >= 1, got {new_tokens}")
    if P + T > params.max_seq_len:
        raise ValueError(f"prompt {P} + new tokens {T} exceed max_seq_len {params.max_seq_len}")
    rec_pre = rec_dec = None
    if recorder is not None:
        rec_pre = lambda r: recorder("prefill", r)  # noqa: E731
        rec_dec = lambda r: recorder("decode", r)  # noqa: E731
    N = dm.n_layers
    cache = KVCache(N, B, dm.kv_heads, dm.head_dim, P + T)
    tokens = np.zeros((B, T), np.int64)
    early = np.zeros((B, T), np.int64) if exit_layer is not None else None
    picker = _Picker(sampling, B, T, params.tok_emb.shape[0])

    # 1. prefill: all P positions through all N layers; logits of the last row only
    x = embed(params, prompts, 0, rec_pre)
    early_logits = None
    for l in range(N):
        x = run_layer(params, dm, l, x, cache, 0, rec_pre)
        if l == exit_layer:
            early_logits = head(params, x[:, -1])
    _store(tokens, early, 0, picker.pick(0, head(params, x[:, -1], 0, N, rec=rec_pre),
                                         early_logits))

    # 2. decode: input token i-1 at position P+i-1 produces token i
    for i in range(1, T):
        pos = P + i - 1
        x = embed(params, tokens[:, i - 1:i], pos, rec_dec)
        for l in range(N):
            x = run_layer(params, dm, l, x, cache, pos, rec_dec)
            if l == exit_layer:
                early_logits = head(params, x[:, 0])  # not traced: see speedsim.trace
        _store(tokens, early, i, picker.pick(i, head(params, x[:, 0], pos, N, rec=rec_dec),
                                             early_logits))
    return picker.record(prompts, tokens, early, exit_layer)


def _store(tokens: np.ndarray, early: Optional[np.ndarray], i: int, picked) -> None:
    tokens[:, i] = picked[0]
    if early is not None:
        early[:, i] = picked[1]


def prompt_ids(generation, vocab_size: int) -> np.ndarray:
    """The prompts [B, P] of a ``Generation``: its text byte-level, or seeded random ids.

    Random: ``default_rng(seed)``, sequence b's P ids drawn in order b = 0..B-1.
    Text: the UTF-8 bytes (exactly ``prompt_tokens`` of them), the same for every sequence.
    """
    B, P = generation.batch, generation.prompt_tokens
    if generation.prompt is not None:
        ids = encode(generation.prompt)
        if ids.size != P:
            raise ValueError(f"text prompt has {ids.size} bytes, prompt_tokens is {P}")
        return np.tile(ids, (B, 1))
    rng = np.random.default_rng(generation.seed)
    return np.stack([rng.integers(0, vocab_size, size=P) for _ in range(B)]).astype(np.int64)


def generate(workload, exit_layer=AUTO, *, params: Optional[Params] = None,
             recorder=None) -> GenerationRecord:
    """Decoding of a workload (its weights, prompts and generation settings, greedy or
    sampled).

    ``exit_layer`` defaults to the workload's SPEED exit point (None without SPEED).
    """
    if exit_layer == AUTO:
        exit_layer = exit_layer_of(workload)
    if params is None:
        params = load_params(workload)
    g = workload.generation
    prompts = prompt_ids(g, workload.model.vocab_size)
    return greedy_decode(params, workload.model, prompts, g.new_tokens, exit_layer, recorder,
                         g.sampled)


def _check_exit(exit_layer: Optional[int], dm: Dims) -> None:
    if exit_layer is not None and not 0 <= exit_layer < dm.n_layers:
        raise ValueError(f"exit_layer must be in 0..{dm.n_layers - 1}, got {exit_layer}")

"""The weight buffer as a hardware cache (a GPU's L2): what stays resident across items.

With ``buffers.weight.kind: cache`` the weight buffer is not a software-managed scratchpad
but a cache in front of the DRAM, as a GPU's L2 is. Its residency is decided here, before
the replay, by one pass over the work items in issue order (a GPU runs a decode step's
kernels in one stream, one after another, so issue order is access order):

* **Replacement: LRU** over chunks of ``CHUNK_BYTES`` (1 MiB) of each weight tensor (an
  item's ``weight_key`` less its phase: prefill's weights serve decode too), with the whole of the buffer as capacity. An item reads its
  tensor from the first chunk to the last; a chunk still resident is a hit; a missing one
  is fetched and becomes the most recent, evicting the least recent chunk. So a working set
  that fits stays resident across layers and tokens, and a cyclic sweep over more than the
  capacity (a model's weights, layer after layer) hits nothing: strict LRU, the textbook
  policy; NVIDIA does not document its own.
* **KV-cache and activation traffic** passes through the cache as well: an item's KV reads
  and writes occupy chunks (evicting weights) but are never hits (a token's KV is read
  again only by the next token, after the whole step's traffic: it would hit only when the
  step's entire footprint fits, a case this model prices at DRAM cost).
* **What an item is handed on**: the bytes of its tensor that missed, under a key of its
  own (so the engine's weight buffer cannot hit it again: residency is this module's
  alone); an item whose tensor was all resident keeps no weight bytes. Hits cost no time
  beyond the item's compute and overhead (the L2's bandwidth, several times the DRAM's,
  is not modelled).

Vector-unit parameters keep the engine's parameter cache, named by their tensor (phase
dropped, as the L2's chunks are): prefill's norm parameters are resident for decode.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import replace
from typing import Hashable, Sequence

from speedsim.config.hw import Hardware
from speedsim.contracts.workitem import WorkItem

CHUNK_BYTES = 1 << 20
PHASES = ("prefill", "decode")


class LruChunks:
    """An LRU set of (owner, chunk index) entries, ``capacity`` chunks at most."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.entries: OrderedDict[tuple, None] = OrderedDict()

    def touch(self, owner: Hashable, chunk: int) -> bool:
        """Access one chunk: True if it was resident; it is the most recent either way."""
        key = (owner, chunk)
        if key in self.entries:
            self.entries.move_to_end(key)
            return True
        self.entries[key] = None
        if len(self.entries) > self.capacity:
            self.entries.popitem(last=False)
        return False

    def sweep(self, owner: Hashable, bytes_: int) -> int:
        """Read ``bytes_`` of ``owner`` chunk by chunk; the bytes that hit."""
        chunks = -(-bytes_ // CHUNK_BYTES)
        hits = [self.touch(owner, c) for c in range(chunks)]
        last = bytes_ - (chunks - 1) * CHUNK_BYTES
        return sum(CHUNK_BYTES if i < chunks - 1 else last for i, h in enumerate(hits) if h)

    def stream(self, bytes_: int, tag: int) -> None:
        """Traffic that is never read again from here: occupies chunks, evicting."""
        for c in range(-(-bytes_ // CHUNK_BYTES)):
            self.touch(("stream", tag), c)


def through_cache(items: Sequence[WorkItem], hw: Hardware) -> Sequence[WorkItem]:
    """The items as the engine should replay them behind an L2 (module docstring);
    ``items`` itself when the weight buffer is a scratchpad."""
    if hw.buffers.weight.kind != "cache":
        return items
    cache = LruChunks(int(hw.buffers.weight.size_kib * 1024) // CHUNK_BYTES)
    return [_through(it, cache, hw) for it in items]


def tensor_of(it: WorkItem) -> Hashable:
    """The tensor an item's weight key names: the key without its phase (strategies key
    prefill and decode apart because the scratchpad cuts them into different tiles; the L2
    holds bytes)."""
    key = it.weight_key
    if isinstance(key, tuple):
        return tuple(k for k in key if k not in PHASES)
    return key


def handed_on(it: WorkItem, missed: int, hw: Hardware) -> WorkItem:
    """``it`` as the engine replays it when ``missed`` of its weight bytes missed the L2
    (module docstring): a matrix item keeps the missed bytes under a key of its own; a
    vector item's parameters are named by their tensor, so that prefill's stay resident
    for decode in the engine's parameter cache (the same bytes)."""
    if it.weight_key is None or not it.weight_bytes:
        return it
    if hw.unit(it.unit).kind != "matrix":
        return replace(it, weight_key=tensor_of(it))
    return replace(it, weight_key=("l2 miss", it.id) if missed else None, weight_bytes=missed)


def _through(it: WorkItem, cache: LruChunks, hw: Hardware) -> WorkItem:
    streamed = it.kv_read_bytes + it.kv_write_bytes
    if streamed:
        cache.stream(streamed, it.id)
    if hw.unit(it.unit).kind != "matrix" or it.weight_key is None or not it.weight_bytes:
        return handed_on(it, 0, hw)
    return handed_on(it, it.weight_bytes - cache.sweep(tensor_of(it), it.weight_bytes), hw)

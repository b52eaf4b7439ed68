"""Byte-level tokenizer: token id = UTF-8 byte value (ids 0..255; vocab_size must be >= 256)."""

from __future__ import annotations

from typing import Iterable

import numpy as np


def encode(text: str) -> np.ndarray:
    """``text`` -> int64 token ids, one per UTF-8 byte."""
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)


def decode(ids: Iterable[int]) -> str:
    """Token ids -> text; ids outside 0..255 and invalid UTF-8 become U+FFFD."""
    out = bytearray()
    for i in ids:
        i = int(i)
        out += bytes([i]) if 0 <= i < 256 else "\ufffd".encode("utf-8")
    return out.decode("utf-8", errors="replace")

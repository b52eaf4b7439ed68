"""The training corpus and its train / held-out split (NumPy only).

The corpus (``corpus/corpus.txt.gz``, built by ``build_corpus.py``) is cut into
16 KiB blocks; every tenth block (index 9, 19, ...) is held out, so the
held-out tenth samples all three sources. Each split is the concatenation of
its blocks in corpus order, as byte values 0..255.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

CORPUS_PATH = Path(__file__).parent / "corpus" / "corpus.txt.gz"
BLOCK_BYTES = 16 * 1024
HELDOUT_EVERY = 10  # block b is held out when b % HELDOUT_EVERY == HELDOUT_EVERY - 1


def load_bytes(path: Path = CORPUS_PATH) -> np.ndarray:
    """The whole corpus as uint8 [n_bytes]."""
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), dtype=np.uint8)


def load_splits(path: Path = CORPUS_PATH) -> tuple[np.ndarray, np.ndarray]:
    """(train bytes, held-out bytes), both uint8 1-D arrays."""
    data = load_bytes(path)
    blocks = [data[i:i + BLOCK_BYTES] for i in range(0, data.size, BLOCK_BYTES)]
    held = [b for i, b in enumerate(blocks) if i % HELDOUT_EVERY == HELDOUT_EVERY - 1]
    train = [b for i, b in enumerate(blocks) if i % HELDOUT_EVERY != HELDOUT_EVERY - 1]
    return np.concatenate(train), np.concatenate(held)

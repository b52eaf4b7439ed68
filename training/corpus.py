"""The training corpus and its train / held-out split (NumPy only).

The corpus (``corpus/corpus.txt.gz``, built by ``build_corpus.py``) is cut into
16 KiB blocks; every tenth block (index 9, 19, ...) is held out, so the
held-out tenth samples all three sources. Each split is the concatenation of
its blocks in corpus order, as byte values 0..255.

The held-out split (about 1 MB) is too large for the NumPy-only evaluator on
two CPU cores, so the model cards' held-out metrics use a fixed *evaluation
sample* of it: EVAL_BLOCKS held-out blocks spaced evenly over the split
(147,456 bytes, all four sources). Training also reports the whole split.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

CORPUS_PATH = Path(__file__).parent / "corpus" / "corpus.txt.gz"
BLOCK_BYTES = 16 * 1024
HELDOUT_EVERY = 10  # block b is held out when b % HELDOUT_EVERY == HELDOUT_EVERY - 1
EVAL_BLOCKS = 9  # held-out blocks in the evaluation sample


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


def heldout_eval_sample(heldout: np.ndarray, n_blocks: int = EVAL_BLOCKS) -> np.ndarray:
    """n_blocks whole held-out blocks spaced evenly over the split, concatenated."""
    total = heldout.size // BLOCK_BYTES
    picks = np.linspace(0, total - 1, n_blocks).round().astype(int)
    return np.concatenate([heldout[b * BLOCK_BYTES:(b + 1) * BLOCK_BYTES] for b in picks])


def heldout_prompts(heldout: np.ndarray, n: int = 8, length: int = 64) -> np.ndarray:
    """n prompts of `length` bytes, one at the start of each of n evenly spaced
    blocks of the evaluation sample: uint8 [n, length]."""
    sample = heldout_eval_sample(heldout)
    stride = sample.size // n
    return np.stack([sample[i * stride:i * stride + length] for i in range(n)])

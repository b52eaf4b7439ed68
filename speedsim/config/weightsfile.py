"""How many positions a weights file holds, read from its header only.

The workload check needs the positional table's length (``pos_emb`` rows) of an
``.npz`` or packaged weights file to tell, at load time, that a longer prompt or
more new tokens do not fit those weights. Only the array's header is read, not
its data; a file that cannot be read is left for the weights loader to report.
"""

from __future__ import annotations

import functools
import zipfile
from importlib import resources
from pathlib import Path
from typing import Optional

import numpy as np


def packaged_path(name: str) -> Path:
    return Path(str(resources.files("speedsim") / "data" / f"{name}.npz"))


@functools.lru_cache(maxsize=64)
def positions(path: Path) -> Optional[int]:
    """Rows of ``pos_emb`` in the npz at ``path``; None when it cannot be told (read once per
    file and process: a sweep validates the same workload at every point)."""
    try:
        with zipfile.ZipFile(path) as archive, archive.open("pos_emb.npy") as fh:
            major, _ = np.lib.format.read_magic(fh)
            read_header = (np.lib.format.read_array_header_1_0 if major == 1
                           else np.lib.format.read_array_header_2_0)
            shape, _, _ = read_header(fh)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None
    return int(shape[0]) if len(shape) == 2 else None


def weights_positions(weights) -> Optional[int]:
    """Positions held by a workload's ``model.weights`` (None: random or shape-only, any length)."""
    if weights.source == "npz":
        return positions(Path(weights.path))
    if weights.source == "packaged":
        return positions(packaged_path(weights.name))
    return None

"""Atomic file writing: a result file is either whole or absent, never half-written.

Files get the mode a plain ``open()`` would give them (0666 less the umask,
0644 usually), not ``mkstemp``'s private 0600: results are meant to be read by
others. JSON is strict (RFC 8259): a non-finite float is written as ``null``,
never as ``Infinity`` or ``NaN``, which other readers reject.

``ReferenceCache`` keeps reference decoder runs as ``<key>.npz`` files written
the same way, so a reader never sees half a cache entry.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Optional

import numpy as np

if TYPE_CHECKING:  # pandas loads with the first table written (``speedsim run`` starts without)
    import pandas as pd


def write_atomic(path: Path, write: Callable[[IO], Any], *, binary: bool = False) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", newline="")) as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    """The process umask (reading it means setting it: it is put straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_text(obj: Any, indent: int | None = 2) -> str:
    """Strict JSON of ``obj`` (numpy scalars and arrays included; non-finite floats null);
    ``indent`` None is compact (``json.dumps`` in one shot uses the C encoder)."""
    kw = dict(indent=indent, separators=None if indent else (",", ":"), sort_keys=False,
              allow_nan=False, default=_jsonable)
    try:  # the common case, in C; walking a large timeline in Python first costs seconds
        return json.dumps(obj, **kw)
    except ValueError:  # a non-finite float somewhere: write those as null
        return json.dumps(_finite(obj), **kw)


def _finite(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        obj = obj.tolist()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_text_atomic(text: str, path: Path) -> None:
    write_atomic(path, lambda fh: fh.write(text))


def write_json_atomic(obj: Any, path: Path, indent: int | None = 2) -> None:
    """Strict JSON; ``indent`` None writes it compact (a large Chrome trace)."""
    write_text_atomic(json_text(obj, indent) + "\n", path)


def write_csv_atomic(frame: pd.DataFrame, path: Path, block: int = 50_000) -> None:
    """``frame.to_csv(path, index=False)``, the same bytes (``speedsim.report.csvtext``),
    ``block`` rows at a time: a 7B run's tables never stand in memory as one text."""
    from speedsim.report.csvtext import csv_text

    def write(fh) -> None:
        for at in range(0, max(len(frame), 1), block):
            fh.write(csv_text(frame.iloc[at:at + block], header=at == 0))

    write_atomic(path, write)


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class ReferenceCache:
    """Reference runs stored as ``DIR/<key>.npz``; a file that cannot be read is a miss."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.npz"

    def load(self, key: str) -> Optional[dict[str, np.ndarray]]:
        try:
            with np.load(self.path(key)) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, KeyError):
            return None

    def store(self, key: str, arrays: dict[str, np.ndarray]) -> None:
        write_atomic(self.path(key), lambda fh: np.savez(fh, **arrays), binary=True)

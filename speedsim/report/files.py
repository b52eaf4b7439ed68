"""Atomic file writing: a result file is either whole or absent, never half-written."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: Path) -> None:
    _atomic_write(Path(path), lambda fh: fh.write(text))


def write_json_atomic(obj: Any, path: Path) -> None:
    _atomic_write(Path(path), lambda fh: json.dump(obj, fh, indent=2, sort_keys=False, default=_jsonable))


def write_csv_atomic(frame: pd.DataFrame, path: Path) -> None:
    _atomic_write(Path(path), lambda fh: frame.to_csv(fh, index=False))


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")

"""The result store: rows appended as points finish, safe to kill, resumable.

Only the driver writes. Each row is formatted as one complete CSV line and
written with a single ``write`` to a file opened for appending, then synced;
a kill therefore loses at most the row being written, and a trailing partial
line (from a crash or a full disk) is dropped when the file is read or resumed.
Rows arrive in completion order; when a sweep finishes, the file is rewritten
(atomically) sorted by point index, so results of the same sweep are
byte-identical whichever executor ran it. ``load_results`` sorts too, for files
of sweeps still running or killed.

Resume keeps the rows of points that finished with ``status=ok`` and drops
error rows, so failed points run again (their failure may have been transient,
or the code fixed since). A row is matched to its point by index *and* config
hash; a stored row whose hash is not that point's hash means the file belongs
to another sweep (or the spec changed), and resuming is refused.

Parquet cannot be appended to, so ``--out x.parquet`` journals rows to
``x.parquet.journal.csv`` exactly as above and writes the Parquet file
(atomically) when the sweep ends; the journal is then removed.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import os
from pathlib import Path
from typing import Any

import pandas as pd

from speedsim.config.errors import ConfigError
from speedsim.report.io import write_atomic, write_text_atomic

FIXED_COLUMNS = ["index", "config_hash", "status", "error"]


def row_columns(axes: list[str], metrics: list[str]) -> list[str]:
    clash = [c for c in axes + metrics if c in FIXED_COLUMNS]
    if clash:
        raise ConfigError(f"column name {clash[0]!r} is reserved")
    both = set(axes) & set(metrics)
    if both:
        raise ConfigError(f"{sorted(both)[0]!r} is both an axis and a metric", key="metrics")
    return FIXED_COLUMNS + axes + metrics


def _complete_text(path: Path) -> tuple[str, bool]:
    """The file's text up to its last newline, and whether a partial line followed it."""
    with open(path, newline="") as fh:
        text = fh.read()
    cut = text.rfind("\n") + 1
    return text[:cut], cut < len(text)


def _format(values: list[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(["" if v is None else v for v in values])
    return buf.getvalue()


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".journal.csv")


class ResultStore:
    """Append-only CSV of result rows (the journal, for a Parquet ``out``)."""

    def __init__(self, out: Path, columns: list[str]):
        self.out = Path(out)
        self.columns = columns
        self.parquet = self.out.suffix == ".parquet"
        self.csv_path = journal_path(self.out) if self.parquet else self.out
        self._fd: int | None = None

    def open(self, *, resume: bool, overwrite: bool, expected: dict[int, str]) -> set[int]:
        """Prepare the file; returns the indices of points already done (``status=ok``)."""
        if self.parquet and importlib.util.find_spec("pyarrow") is None:
            raise ConfigError("writing Parquet needs pyarrow (pip install pyarrow); "
                              "or give --out a .csv name", key="--out")
        exists = self.csv_path.exists() or (self.parquet and self.out.exists())
        if exists and not (resume or overwrite):
            raise ConfigError(f"{self.out} exists: pass --resume to continue it or --overwrite "
                              "to replace it", key="--out")
        done: set[int] = set()
        if exists and resume:
            done = self._keep_finished(expected)
            self._fd = os.open(self.csv_path, os.O_WRONLY | os.O_APPEND)
        # a fresh file is created with the first row: a sweep that fails to start leaves none
        return done

    def _create(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.parquet:
            self.out.unlink(missing_ok=True)
        write_text_atomic(_format(self.columns), self.csv_path)
        self._fd = os.open(self.csv_path, os.O_WRONLY | os.O_APPEND)

    def _keep_finished(self, expected: dict[int, str]) -> set[int]:
        if self.parquet and not self.csv_path.exists():
            frame = pd.read_parquet(self.out)
            write_text_atomic(frame.to_csv(index=False, lineterminator="\n"), self.csv_path)
        text, _ = _complete_text(self.csv_path)
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header != self.columns:
            raise ConfigError(f"{self.csv_path} has columns {header}, this sweep writes "
                              f"{self.columns}: use another --out", key="--resume")
        kept, done = [_format(header)], set()
        for fields in reader:
            row = dict(zip(header, fields))
            index = int(row["index"])
            if expected.get(index) != row["config_hash"]:
                raise ConfigError(f"{self.csv_path} holds point {index} with config hash "
                                  f"{row['config_hash'][:12]}…, not of this sweep: use another --out",
                                  key="--resume")
            if row["status"] == "ok" and index not in done:
                done.add(index)
                kept.append(_format(fields))
        write_text_atomic("".join(kept), self.csv_path)
        return done

    def append(self, row: dict[str, Any]) -> None:
        """Write one complete line in one call, then sync it to disk."""
        if self._fd is None:
            self._create()
        data = _format([row.get(c) for c in self.columns]).encode()
        written = os.write(self._fd, data)
        if written != len(data):  # a regular file only writes short when the disk is full
            raise OSError(f"short write to {self.csv_path} ({written} of {len(data)} bytes)")
        os.fsync(self._fd)

    def close(self, *, finished: bool = True) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not (finished and self.csv_path.exists()):
            return
        if self.parquet:
            _write_parquet_atomic(load_results(self.csv_path), self.out)
            self.csv_path.unlink()
        else:
            _sort_by_index(self.csv_path)


def _sort_by_index(path: Path) -> None:
    text, _ = _complete_text(path)
    header, *rows = text.splitlines(keepends=True)
    rows.sort(key=lambda line: int(line.split(",", 1)[0]))  # index: the first column, an int
    write_text_atomic(header + "".join(rows), path)


def _write_parquet_atomic(frame: pd.DataFrame, out: Path) -> None:
    write_atomic(out, lambda fh: frame.to_parquet(fh, index=False), binary=True)


def read_table(path: Path, dtype: dict[str, type] | None = None) -> pd.DataFrame:
    """A results table (Parquet, or CSV up to its last complete line), or a ``ConfigError``
    naming the file: Parquet without pyarrow, an empty file, text that is not a table."""
    try:
        if path.suffix == ".parquet":
            if importlib.util.find_spec("pyarrow") is None:
                raise ConfigError("reading Parquet needs pyarrow (pip install pyarrow)", file=str(path))
            return pd.read_parquet(path)
        text, _ = _complete_text(path)
        if not text:
            raise ConfigError("results file is empty", file=str(path))
        return pd.read_csv(io.StringIO(text), dtype=dtype)
    except ConfigError:
        raise
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:  # pyarrow's too
        raise ConfigError(f"not a readable results table: {str(exc).splitlines()[0]}",
                          file=str(path)) from None


def load_results(path: str | Path) -> pd.DataFrame:
    """The rows of a result file (CSV, Parquet or a Parquet journal), sorted by point index."""
    path = Path(path)
    if path.suffix == ".parquet" and not path.exists() and journal_path(path).exists():
        path = journal_path(path)
    if not path.exists():
        raise ConfigError("results file not found", file=str(path))
    if path.is_dir():
        raise ConfigError("is a directory; give a sweep result file (.csv or .parquet, "
                          "written by speedsim sweep)", file=str(path))
    frame = read_table(path, {"config_hash": str, "status": str, "error": str})
    missing = [c for c in FIXED_COLUMNS if c not in frame.columns]
    if missing:
        raise ConfigError(f"not a sweep result file (no column {missing[0]!r})", file=str(path))
    frame["error"] = frame["error"].fillna("")
    return frame.sort_values("index", kind="stable").reset_index(drop=True)

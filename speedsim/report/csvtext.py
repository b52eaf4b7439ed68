"""A table's CSV text, byte for byte what ``frame.to_csv(index=False)`` gives, built with NumPy.

pandas hands the ``csv`` module one Python object per cell; a 7B run's item
tables have ~4 million cells, and that costs seconds. Here every column becomes
a matrix of **right-aligned cell texts** (one row of bytes per cell, the text at
its right end) and their lengths:

* an integer column is cut into decimal digits arithmetically (a ``-`` before the
  first digit of a negative number);
* any other column (text, floats, booleans) is factorised: each distinct value is
  formatted once, as pandas formats it, and the cells take their value's text.

The cells are then scattered into one byte buffer: cell ``c`` of row ``r`` ends
where the cells before it in the row, each followed by its separator (``,``, or
the line end after the last), end. Text that contains a delimiter, a quote or a
line break is quoted by the ``csv`` module itself (``QUOTE_MINIMAL``, quotes
doubled), the dialect ``to_csv`` uses.

Frames this does not cover go to pandas unchanged (``csv_text``): fewer than two
columns (a lone empty field is quoted), no rows, non-text column names, column
types other than numbers, booleans and text, or a platform line end other than
``\\n``.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import pandas as pd

_POW10 = 10 ** np.arange(19, dtype=np.int64)  # 1, 10, …, 10^18: a number's digits are the powers <= it
PAD = 0  # the byte before a right-aligned text (a text holding it goes to pandas)


def csv_text(frame: pd.DataFrame, header: bool = True) -> str:
    """``frame.to_csv(index=False, header=header)`` (module docstring)."""
    cells = _cells(frame) if _covered(frame) else None
    if cells is None:
        return frame.to_csv(index=False, header=header)
    names = ",".join(map(_csv_field, frame.columns)) + "\n" if header else ""
    return names + _join(cells, len(frame)).decode("utf-8")


def _covered(frame: pd.DataFrame) -> bool:
    return (frame.shape[1] >= 2 and len(frame) > 0 and os.linesep == "\n"
            and all(isinstance(c, str) for c in frame.columns))


def _cells(frame: pd.DataFrame) -> list[np.ndarray] | None:
    """Per column, its cells' right-aligned texts; None if a column is not covered."""
    out = []
    for i in range(frame.shape[1]):
        cells = _column_cells(frame.iloc[:, i])
        if cells is None:
            return None
        out.append(cells)
    return out


def _column_cells(column: pd.Series) -> np.ndarray | None:
    """An integer column's cells cut into digits as they are (cycle columns hold ~one
    distinct value per row); any other's distinct values formatted once, the cells
    taking their value's text (a missing value: none)."""
    if _is_int64(column):
        return _int_texts(column.to_numpy())
    codes, uniques = _factorize(column)
    texts = _value_texts(column.dtype, uniques)
    table = None if texts is None else _text_table(texts)
    if table is None:
        return None
    return np.vstack([table, np.full((1, table.shape[1]), PAD, np.uint8)])[codes]


def _is_int64(column: pd.Series) -> bool:
    return isinstance(column.dtype, np.dtype) and column.dtype.kind == "i" and \
        column.min() > np.iinfo(np.int64).min


def _int_texts(values: np.ndarray) -> np.ndarray:
    """Each value's decimal digits (and ``-``), right-aligned: n × (the longest text) bytes."""
    values = values.astype(np.int64)
    magnitude = np.abs(values)
    negative = values < 0
    width = len(str(int(magnitude.max(initial=0)))) + bool(negative.any())
    digits = np.empty((width, len(values)), dtype=np.uint8)  # one row per digit place
    rest = magnitude
    for j in range(width - 1, -1, -1):  # the last digit first
        rest, digit = np.divmod(rest, 10)
        digits[j] = digit
    text = digits.T + np.uint8(ord("0"))
    n_digits = np.maximum(np.searchsorted(_POW10, magnitude, side="right"), 1)  # 0 is "0"
    text[np.arange(width)[None, :] < (width - n_digits)[:, None]] = PAD
    text[np.flatnonzero(negative), width - 1 - n_digits[negative]] = ord("-")
    return text


def _text_table(texts: list[str]) -> np.ndarray | None:
    """The texts as CSV fields, right-aligned: n × (the longest) bytes."""
    encoded = [_csv_field(t).encode("utf-8") for t in texts]
    pad = bytes([PAD])
    if any(pad in e for e in encoded):
        return None
    width = max(map(len, encoded), default=1) or 1
    return np.frombuffer(b"".join(e.rjust(width, pad) for e in encoded),
                         np.uint8).reshape(-1, width)


def _factorize(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per cell, distinct values), -1 for a missing value; floats by their bits
    (0.0 and -0.0 print differently)."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
        values = column.to_numpy(dtype=np.float64)
        codes, bits = pd.factorize(values.view(np.int64))
        codes[np.isnan(values)] = -1
        return codes, bits.view(np.float64)
    return pd.factorize(column, use_na_sentinel=True)


def _value_texts(dtype, uniques) -> list[str] | None:
    """The texts ``to_csv`` writes for these distinct values of a column of ``dtype``:
    floats as NumPy prints them, booleans and unsigned integers as ``str``, text as is."""
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return list(np.asarray(uniques).astype(str))
    if isinstance(dtype, np.dtype) and dtype.kind in "bu":
        return [str(v) for v in np.asarray(uniques).tolist()]
    values = np.asarray(uniques, dtype=object).tolist()
    if (isinstance(dtype, pd.StringDtype) or dtype == object) and all(isinstance(v, str) for v in values):
        return values
    return None


def _csv_field(text: str) -> str:
    """``text`` as one field of a CSV row (``csv`` module, ``QUOTE_MINIMAL``): printable
    text without a delimiter, a quote or an outer space is written as it is."""
    if text.isprintable() and "," not in text and '"' not in text and text.strip() == text:
        return text
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([text, ""])
    return buf.getvalue()[:-2]  # drop the empty second field's "," and the line end


def _join(cells: list[np.ndarray], n_rows: int) -> bytes:
    """The rows' bytes: the cells side by side with a ``,`` between and a line end after,
    the padding taken out."""
    sep, end = np.full((n_rows, 1), ord(","), np.uint8), np.full((n_rows, 1), ord("\n"), np.uint8)
    parts = [p for c in cells for p in (c, sep)]
    parts[-1] = end
    text = np.hstack(parts)
    return text[text != PAD].tobytes()

"""``speedsim.report.csvtext.csv_text`` writes exactly the bytes of ``DataFrame.to_csv``."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from speedsim.report.csvtext import csv_text
from speedsim.report.io import write_csv_atomic

TEXT = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x2FF, blacklist_categories=("Cs",)), max_size=6)


def test_numbers_text_and_missing_values_as_pandas_writes_them():
    frame = pd.DataFrame({
        "int": [0, -7, 10, 9_223_372_036_854_775_807, -1_000_000_000_000],
        "float": [0.0, -0.0, 1e-5, np.nan, 1.0 / 3],
        "big float": [1e16, 2.5e300, -np.inf, 123456789012.0, 5e-324],
        "flag": [True, False, True, True, False],
        "text": pd.array(["plain", "a,b", 'say "hi"', None, " padded "], dtype="str"),
        "more": ["line\nbreak", "cr\rhere", "", "tab\there", "ünï"],
        "small": np.array([1, 2, 255, 0, 7], dtype=np.uint8),
    })
    assert csv_text(frame) == frame.to_csv(index=False)


def test_frames_it_does_not_cover_go_to_pandas():
    one_column = pd.DataFrame({"x": ["", "a"]})  # a lone empty field is quoted: ""
    times = pd.DataFrame({"t": pd.to_datetime(["2024-01-01", "2024-01-02"]), "n": [1, 2]})
    for frame in (one_column, times, pd.DataFrame({"a": [], "b": []}), pd.DataFrame({"a": ["\0"], "b": [1]})):
        assert csv_text(frame) == frame.to_csv(index=False)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**63 + 1, 2**63 - 1), st.floats(allow_nan=True), TEXT),
                min_size=1, max_size=20))
def test_any_rows(rows):
    frame = pd.DataFrame(rows, columns=["i", "f", "s"])
    assert csv_text(frame) == frame.to_csv(index=False)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(-2**63 + 1, 2**63 - 1), st.floats(allow_nan=True), TEXT),
                max_size=12), st.integers(1, 5))
def test_a_file_written_in_blocks_of_rows_is_the_whole_frames_csv(tmp_path_factory, rows, block):
    frame = pd.DataFrame(rows, columns=["i", "f", "s"])
    frame["o"] = [None if i % 3 == 0 else str(i) for i in range(len(frame))]  # blocks of mixed kind
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    write_csv_atomic(frame, path, block=block)
    assert path.read_bytes() == frame.to_csv(index=False).encode("utf-8")

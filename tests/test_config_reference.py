"""docs/config.md is the schema's own key reference: in sync, complete, and right in detail."""

import re
from pathlib import Path

import pytest

from speedsim.config.hw import Hardware
from speedsim.config.keys import models_in
from speedsim.config.reference import markdown
from speedsim.config.workload import Workload

DOC = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def test_docs_config_md_is_generated_from_the_schema():
    assert DOC.read_text() == markdown(), \
        "docs/config.md is stale: run `make docs` (python -m speedsim.config.reference > docs/config.md)"


def _paths(model, prefix=""):
    for name, field in model.model_fields.items():
        if name == "source":
            continue
        yield f"{prefix}{name}"
        for sub in models_in(field.annotation):
            yield from _paths(sub, f"{prefix}{name}.")


@pytest.mark.parametrize("root", [Hardware, Workload])
def test_every_key_has_a_row(root):
    text = markdown()
    for path in set(_paths(root)):
        assert f"| `{path}` |" in text, path


def _row(path):
    (line,) = [x for x in markdown().splitlines() if x.startswith(f"| `{path}` |")]
    return [c.strip() for c in line.strip("|").split(" | ")]


def test_rows_give_type_default_unit_and_meaning():
    assert _row("dram.bandwidth_gb_s") == ["`dram.bandwidth_gb_s`", "float ≥ 0.01", "**required**",
                                           "GB/s (10⁹ bytes/s)", "peak, 1 GB = 1e9 bytes"]
    assert _row("array.dataflow")[1:3] == ["`ws` \\| `os` \\| `is`", "`ws`"]
    assert _row("dram.efficiency")[1] == "float > 0, ≤ 1"
    assert _row("generation.new_tokens")[1:4] == ["int ≥ 2", "**required**", "tokens"]
    assert _row("model.n_kv_heads")[1:3] == ["int > 0 or null", "null"]
    assert "from prefill, the rest from decode" in _row("generation.new_tokens")[4]


def test_tagged_unions_list_each_source_with_its_keys():
    text = markdown()
    for source in ("random", "npz", "packaged", "shape_only"):
        assert f"| `model.weights` with `source: {source}` |" in text
    assert text.index("`source: bernoulli`") < text.index("`strategies.speed.acceptance.rate`") \
        < text.index("`source: file`")


def test_a_comment_above_a_field_is_that_fields_meaning():
    """Issue 31: two rows carried their neighbour's meaning (a comment block written above a
    field was read as the continuation of the field before it)."""
    assert _row("array.op_overhead_ns")[4] == "fixed cost of issuing one work item (dispatch, launch)"
    assert _row("array.split")[4].startswith("how one GEMM spreads over the arrays")
    assert _row("attention_on")[4] == "where attn_score / attn_value run"
    assert _row("attention_issue")[4].startswith("per_token: each token in flight's attention")


def test_every_plain_key_says_what_it_means():
    """Only a tagged union's row (its variants, by ``source``, ``process`` or ``dist``, are
    listed below it) may leave the meaning empty."""
    rows = [[c.strip() for c in x.strip("|").split(" | ")] for x in markdown().splitlines()
            if x.startswith("| `") and not re.search(r"` with `\w+: ", x)]
    assert len(rows) > 80
    assert [r[0] for r in rows if not r[4] and not re.fullmatch(r"mapping, by `\w+`", r[1])] == []

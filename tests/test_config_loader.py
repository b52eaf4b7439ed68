"""YAML loading and ``--set`` overrides: typed values, clear errors, no silent defaults."""

import pytest

from speedsim.config.errors import ConfigError
from speedsim.config.hw import load_hardware
from speedsim.config.loader import apply_overrides, parse_override, set_path, yaml_load


def test_exponent_floats_are_floats():
    """PyYAML alone reads 1.0e9 as a string; DESIGN's own example writes clock_hz that way."""
    assert yaml_load("a: 1.0e9\nb: 1e9\nc: 2.5e-3\nd: 7\ne: '1e9'") == \
        {"a": 1e9, "b": 1e9, "c": 2.5e-3, "d": 7, "e": "1e9"}


def test_hw_file_with_design_example_clock_loads(tmp_path):
    text = (tmp_path / "x.yaml")
    text.write_text(open("hw_configs/edge.yaml").read().replace("1.0e+9", "1.0e9"))
    assert load_hardware(text).clock_hz == 1e9


@pytest.mark.parametrize("text, key, value", [
    ("dram.bandwidth_gb_s=51.2", "dram.bandwidth_gb_s", 51.2),
    ("array.rows=64", "array.rows", 64),
    ("buffers.double_buffering=false", "buffers.double_buffering", False),
    ("strategies.speed.acceptance={source: bernoulli, rate: 0.5}", "strategies.speed.acceptance",
     {"source": "bernoulli", "rate": 0.5}),
])
def test_overrides_are_yaml_typed(text, key, value):
    assert parse_override(text) == (key, value)


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1"])
def test_malformed_override_is_config_error(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_set_path_copies_and_creates_mappings():
    base = {"a": {"b": 1}}
    out = set_path(base, "a.c.d", 2)
    assert out == {"a": {"b": 1, "c": {"d": 2}}} and base == {"a": {"b": 1}}
    with pytest.raises(ConfigError, match="a.b is not a mapping"):
        set_path(base, "a.b.c", 3)


def test_override_of_hw_reaches_validation(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_hardware("hw_configs/edge.yaml", [("array.dataflow", "xs")])
    assert str(err.value).startswith("--set: hw.array.dataflow: Input should be")
    assert apply_overrides({"x": 1}, [("y", 2)]) == {"x": 1, "y": 2}

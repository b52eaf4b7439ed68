"""Contracts: work items built in bulk are the items ``WorkItem(...)`` builds, and plans
survive the pickling that carries them between worker processes, labels included."""

import dataclasses
import pickle

import numpy as np
import pytest

from speedsim.config.hw import placement
from speedsim.contracts.workitem import FIELDS, WorkItem, item_columns, items_from_columns
from speedsim.model.sharing import shape_layer_sets
from speedsim.strategies.inputs import StrategyInput
from speedsim.model.stages import StageLayout
from speedsim.strategies.acceptance import Acceptance
from speedsim.strategies.registry import get_strategy
from speedsim.strategies.speed import Speed
from speedsim.trace import build_trace

ITEMS = [WorkItem(0, "vector", "embed", "decode", elements=32, vector_kind="embed",
                  weight_bytes=32, act_out_bytes=32, tokens=(1,), step=0, label="t4 embed"),
         WorkItem(1, "array", "qkv", "decode", (0,), 2, 32, 96, 1, weight_key=("decode", 1, "qkv", 0),
                  weight_bytes=3072, act_in_bytes=64, act_out_bytes=192, kv_write_bytes=128,
                  macs=6144, tokens=(1, 2), wasted_fraction=0.5, step=0, label="t4+t5 L1 qkv")]


def _values(items):
    """Every field of every item, label included, with its type."""
    return [[(getattr(it, f), type(getattr(it, f))) for f in FIELDS] for it in items]


def test_items_from_columns_are_the_constructed_items_labels_included():
    built = items_from_columns(item_columns(ITEMS))
    assert built == ITEMS and _values(built) == _values(ITEMS)
    assert [hash(it) for it in built] == [hash(it) for it in ITEMS]
    with pytest.raises(dataclasses.FrozenInstanceError):
        built[0].m = 3


def test_items_from_columns_rejects_missing_or_ragged_columns():
    columns = item_columns(ITEMS)
    with pytest.raises(ValueError, match="need 23 columns"):
        items_from_columns(columns[:-1])
    columns[5] = columns[5][:1]
    with pytest.raises(ValueError, match="differ in length"):
        items_from_columns(columns)


def test_label_does_not_compare_but_survives_pickling():
    relabelled = dataclasses.replace(ITEMS[1], label="other")
    assert relabelled == ITEMS[1]
    assert pickle.loads(pickle.dumps(relabelled)).label == "other"


@pytest.mark.parametrize("name", ["sequential", "speed"])
def test_pickled_plan_round_trips_every_field(tiny_workload, name):
    wl = tiny_workload()
    T = wl.generation.new_tokens
    accepted = np.arange(T) % 3 != 1  # some misses: flushed executions, wasted fractions
    inp = StrategyInput(trace=build_trace(wl, bytes_per_element=1), n_layers=wl.model.n_layers,
                        layer_sets=shape_layer_sets(wl.model),
                        prompt_tokens=wl.generation.prompt_tokens, new_tokens=T,
                        placement=placement("array"))
    strategy = Speed(StageLayout.of(wl), Acceptance.given(accepted)) if name == "speed" \
        else get_strategy(name)()
    plan = strategy.plan(inp)
    loaded = pickle.loads(pickle.dumps(plan, protocol=5))
    assert loaded == plan and _values(loaded.items) == _values(plan.items)
    assert type(loaded.items) is list and all(type(it) is WorkItem for it in loaded.items)
    if name == "speed":
        assert loaded.flushes > 0 and any(0 < it.wasted_fraction < 1 for it in loaded.items)


def test_builder_items_equal_one_by_one_construction_whatever_shares_a_shape():
    """Rows that differ only in position or layer share an item shape; slot, scope and
    any other field still tell items apart."""
    from speedsim.contracts.oprow import OpRow
    from speedsim.strategies.builder import ItemBuilder

    qkv = OpRow("decode", 5, 0, 1, "qkv", m=1, k=32, n=96, count=1, weight_bytes=3072,
                act_in_bytes=32, act_out_bytes=96, kv_write_bytes=64, macs=3072)
    later = qkv._replace(position=6, layer=2)
    longer = later._replace(kv_write_bytes=128)
    b = ItemBuilder(placement("array"))
    b.add([qkv], deps=[], tokens=(1,), label="a")
    b.add([later], deps=[0], tokens=(2,), step=1, slot=1)
    b.add([later, qkv], deps=[1, 0, 1], tokens=(2, 1), wasted=[True, False], scope="draft")
    b.add([longer], deps=[2], tokens=(2,))
    common = dict(unit="array", op="qkv", phase="decode", m=1, k=32, n=96, count=1,
                  weight_bytes=3072, act_in_bytes=32, act_out_bytes=96, kv_write_bytes=64,
                  macs=3072)
    expected = [
        WorkItem(0, deps=(), weight_key=("decode", 1, "qkv", 0), tokens=(1,), label="a", **common),
        WorkItem(1, deps=(0,), weight_key=("decode", 1, "qkv", 1), tokens=(2,), step=1,
                 label="qkv", **common),
        WorkItem(2, deps=(0, 1), weight_key=("draft", "decode", 1, "qkv", 0), tokens=(2, 1),
                 wasted_fraction=0.5, label="qkv",
                 **{**common, "m": 2, "act_in_bytes": 64, "act_out_bytes": 192,
                    "kv_write_bytes": 128, "macs": 6144}),
        WorkItem(3, deps=(2,), weight_key=("decode", 1, "qkv", 0), tokens=(2,), label="qkv",
                 **{**common, "kv_write_bytes": 128}),
    ]
    assert _values(b.items) == _values(expected)
    assert b.items[3].weight_key is b.items[0].weight_key  # one residency key object

"""Contracts: work items built in bulk are the items ``WorkItem(...)`` builds, and plans
survive the pickling that carries them between worker processes, labels included."""

import dataclasses
import pickle

import numpy as np
import pytest

from speedsim.contracts.workitem import FIELDS, WorkItem, item_columns, items_from_columns
from speedsim.model.sharing import shape_layer_sets
from speedsim.strategies.inputs import StrategyInput
from speedsim.strategies.registry import get_strategy
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
                        attention_on="array", stages=wl.stages, accepted=accepted)
    plan = get_strategy(name)().plan(inp)
    loaded = pickle.loads(pickle.dumps(plan, protocol=5))
    assert loaded == plan and _values(loaded.items) == _values(plan.items)
    assert type(loaded.items) is list and all(type(it) is WorkItem for it in loaded.items)
    if name == "speed":
        assert loaded.flushes > 0 and any(0 < it.wasted_fraction < 1 for it in loaded.items)

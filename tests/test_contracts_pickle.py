"""Work items survive pickling whole (worker processes send plans back): every field,
the label too, which equality ignores."""

import dataclasses
import pickle

from speedsim.contracts.workitem import WorkItem


def test_a_work_item_pickles_field_for_field():
    item = WorkItem(id=7, unit="vector", op="softmax", phase="decode", deps=(3, 5), m=1, k=2,
                    n=3, count=4, elements=80, vector_kind="softmax", weight_key=("set", 2, "qkv"),
                    weight_bytes=11, act_in_bytes=12, act_out_bytes=13, kv_read_bytes=14,
                    kv_write_bytes=15, macs=16, vector_ops=17, tokens=(1, 2), wasted_fraction=0.5,
                    step=9, label="pos 3 softmax")
    back = pickle.loads(pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL))
    assert type(back) is WorkItem
    assert dataclasses.astuple(back) == dataclasses.astuple(item)  # label included

"""The roofline lower bound on a plan's decode time — the one meaning of "roofline" (DESIGN §7).

Per work item ``i``::

    bound_cycles(i) = max(⌈compulsory_dram_bytes(i) / effective DRAM bytes per cycle⌉,
                          compute_cycles(i))

* ``compute_cycles(i)``: the sum of the cycles of the item's tiles, from the
  same pure cost functions the replay engine waits on (``speedsim.hw.cost``);
* ``compulsory_dram_bytes(i)``: the DRAM bytes the item cannot avoid — its
  weights the first time their residency key appears in the plan (prefill
  included; keyless weights every time, vector-unit parameters too unless they
  stay resident, ``cost.param_resident``), plus its
  DRAM KV reads and writes and spilled activations (``cost.item_traffic``);
* effective DRAM bytes per cycle = ``bandwidth_gb_s · 1e9 · efficiency / clock_hz``.

The per-item bounds are summed along the plan's dependencies: ``finish(i) =
bound_cycles(i) + max(finish(d) for d in deps(i))`` with prefill items at 0
(decode time starts when the prefill ends), and the decode bound is ``finish``
of the item that commits the last decode execution — the longest path through
the DAG to the last commit. No DRAM latency and no contention are charged.

It bounds the simulation wherever an item's DRAM bytes move after its inputs
exist. Weights the engine fetches ahead of an item (``weight_prefetch: ahead``)
may overlap its predecessors' compute, so on a plan that alternates weight-heavy
and compute-heavy items the simulation could beat the bound; every shipped
workload is tested to stay above it (``tests/test_roofline.py``).
"""

from __future__ import annotations

from itertools import chain
from typing import Sequence

import numpy as np
import pandas as pd

from speedsim.config.hw import Hardware
from speedsim.contracts.plan import Plan
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost


def compulsory_dram_bytes(items: Sequence[WorkItem], costed: cost.CostPlan,
                          hw: Hardware) -> np.ndarray:
    """Per item (in list order): the DRAM bytes it must move at least once."""
    n = len(items)
    traffic = np.fromiter(chain.from_iterable(costed.traffic[it.id] for it in items), np.int64,
                          n * len(cost.Traffic._fields)).reshape(n, -1)
    tr = dict(zip(cost.Traffic._fields, traffic.T))
    weights = np.where(cost.compulsory_weights(items, hw), tr["weight_bytes"], 0)
    return weights + tr["kv_read_bytes"] + tr["kv_write_bytes"] + tr["act_read_bytes"] \
        + tr["act_write_bytes"]


def compute_cycles(items: Sequence[WorkItem], costed: cost.CostPlan) -> np.ndarray:
    """Per item (in list order): the cycles of its tiles on its unit."""
    return np.fromiter((costed.sums[it.id].cycles for it in items), np.int64, len(items))


def item_bound_cycles(items: Sequence[WorkItem], hw: Hardware,
                      costed: cost.CostPlan | None = None) -> np.ndarray:
    """Per item: max(compulsory DRAM bytes at the effective bandwidth, compute cycles);
    ``costed``: the items' ``cost.plan``, when it is at hand."""
    costed = costed if costed is not None else cost.plan(items, hw)
    codes, sizes = pd.factorize(compulsory_dram_bytes(items, costed, hw))  # a few sizes recur
    size_cycles = [cost.transfer_cycles(int(b), hw.dram_bytes_per_cycle) for b in sizes]
    dram = np.array(size_cycles, dtype=np.int64)[codes]
    return np.maximum(dram, compute_cycles(items, costed))


def longest_path_cycles(items: Sequence[WorkItem], weights: np.ndarray) -> dict[int, int]:
    """``finish(i) = weights[i] + max(finish(deps))`` by item id; prefill items finish at 0."""
    finish: dict[int, int] = {}
    for it, w in zip(items, weights.tolist()):
        deps = it.deps
        finish[it.id] = 0 if it.phase == "prefill" else \
            w + (max(map(finish.__getitem__, deps)) if deps else 0)
    return finish


def last_commit_item(plan: Plan) -> int | None:
    """Id of the item whose end commits the last decode execution (None: no decode)."""
    committed = [(e.index, e.last_item) for e in plan.execs
                 if e.phase == "decode" and e.status == "committed"]
    return max(committed)[1] if committed else None


def roofline_decode_cycles(plan: Plan, hw: Hardware, costed: cost.CostPlan | None = None) -> int:
    """The decode roofline bound in cycles (module docstring)."""
    last = last_commit_item(plan)
    if last is None:
        return 0
    finish = longest_path_cycles(plan.items, item_bound_cycles(plan.items, hw, costed))
    return finish[last]


def roofline_decode_s(plan: Plan, hw: Hardware, costed: cost.CostPlan | None = None) -> float:
    """The decode roofline bound in seconds."""
    return roofline_decode_cycles(plan, hw, costed) / hw.clock_hz

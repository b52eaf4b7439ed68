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

The path bound counts each array weight once, as if every weight stayed on chip
after its first load. A weight buffer of ``C`` bytes cannot keep more than ``C``
of them, so the decode bound is the larger of the path bound and the busiest
resource's bound over the items the last commit depends on (its dependency cone,
decode items only)::

    resource_cycles = max(Σ array cycles, Σ vector cycles,
                          ⌈(windowed weight bytes + other compulsory bytes) / bytes per cycle⌉)

where the decode sequence of array-weight accesses is cut into consecutive
windows (a window closes when a weight it already holds comes again and its
distinct weights exceed ``C``), and each window must fetch at least
``max(0, distinct weight bytes − C)``: whatever it touches that was not on chip
when it began, and at most ``C`` bytes were (``unavoidable_weight_bytes``). The
bound holds for any replacement policy; when all weights fit, it is 0 and the
path bound decides. On a weight-streaming run (a 7B model on a 50 MB buffer)
the DRAM term decides, and the fraction of the bound achieved then reads about
as the DRAM's busy share.
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
    tr = _traffic(items, costed)
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
    """The decode roofline bound in cycles: the larger of the dependency-path bound and the
    busiest resource's bound (module docstring)."""
    last = last_commit_item(plan)
    if last is None:
        return 0
    costed = costed if costed is not None else cost.plan(plan.items, hw)
    finish = longest_path_cycles(plan.items, item_bound_cycles(plan.items, hw, costed))
    return max(finish[last], resource_bound_cycles(plan.items, last, hw, costed))


def resource_bound_cycles(items: Sequence[WorkItem], last: int, hw: Hardware,
                          costed: cost.CostPlan) -> int:
    """The busiest resource's cycles over the decode items ``last`` depends on (itself
    included): each compute unit's cycles summed; DRAM, the KV, activation and streamed
    parameter bytes plus the matrix units' weight bytes a weight buffer of its size cannot
    avoid (resident vector parameters may stay on chip: not counted)."""
    cone = [it for it, needed in zip(items, dependency_cone(items, last)) if needed
            and it.phase == "decode"]
    if not cone:
        return 0
    tr = _traffic(cone, costed)
    array = np.array([cost.on_matrix(it, hw) and it.weight_key is not None for it in cone])
    kept = array | np.array([cost.param_resident(it, hw) for it in cone])
    other = tr["kv_read_bytes"] + tr["kv_write_bytes"] + tr["act_read_bytes"] \
        + tr["act_write_bytes"] + np.where(kept, 0, tr["weight_bytes"])  # kept: may stay on chip
    weights = unavoidable_weight_bytes([it.weight_key for it, a in zip(cone, array) if a],
                                       tr["weight_bytes"][array].tolist(),
                                       int(hw.buffers.weight.size_kib * 1024))
    dram = cost.transfer_cycles(int(other.sum()) + weights, hw.dram_bytes_per_cycle)
    compute = compute_cycles(cone, costed)
    units = np.array([it.unit for it in cone])
    return int(max(dram, *(compute[units == u].sum() for u in hw.compute_units)))


def _traffic(items: Sequence[WorkItem], costed: cost.CostPlan) -> dict[str, np.ndarray]:
    n = len(items)
    traffic = np.fromiter(chain.from_iterable(costed.traffic[it.id] for it in items), np.int64,
                          n * len(cost.Traffic._fields)).reshape(n, -1)
    return dict(zip(cost.Traffic._fields, traffic.T))


def dependency_cone(items: Sequence[WorkItem], last: int) -> list[bool]:
    """Per item (in list order): ``last`` depends on it, directly or not (or it is ``last``)."""
    needed = {last}
    out = [False] * len(items)
    for i in range(len(items) - 1, -1, -1):  # deps come before their dependants
        it = items[i]
        if it.id in needed:
            out[i] = True
            needed.update(it.deps)
    return out


def unavoidable_weight_bytes(keys: Sequence, sizes: Sequence[int], capacity_bytes: int) -> int:
    """DRAM weight bytes any buffer of ``capacity_bytes`` must fetch for the accesses
    ``keys`` (in order, ``sizes`` bytes each): the sequence cut into windows, each closed
    where a key it holds comes again once its distinct bytes exceed the capacity; each
    window fetches at least its distinct bytes less the capacity (module docstring)."""
    total, window, held = 0, set(), 0
    for key, size in zip(keys, sizes):
        if key in window and held > capacity_bytes:
            total += held - capacity_bytes
            window, held = set(), 0
        if key not in window:
            window.add(key)
            held += size
    return total + max(0, held - capacity_bytes)


def roofline_decode_s(plan: Plan, hw: Hardware, costed: cost.CostPlan | None = None) -> float:
    """The decode roofline bound in seconds."""
    return roofline_decode_cycles(plan, hw, costed) / hw.clock_hz

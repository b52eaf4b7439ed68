"""The replay's records and the tables built from them (``SimResult``'s frames).

``Log`` merges the intervals of one item, unit, kind and category into one ``Row``
(or keeps one per tile); ``Occupancy`` keeps the bytes each buffer holds as change
points (a ``Trace`` per buffer). Both are parts of the state protocol
(``speedsim.hw.units.Periodic``): the skipper extends them in whole periods. The frames are built column by column (a 7B run
logs ~200k rows and ~100k items).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter
from typing import NamedTuple

import numpy as np
import pandas as pd

from speedsim.config.hw import Hardware
from speedsim.contracts.results import ITEM_COLUMNS, LOG_COLUMNS, LOG_TEXT_COLUMNS
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost
from speedsim.hw.cost import Traffic
from speedsim.hw.units import Periodic


@dataclass(slots=True)
class Row:
    """One log row (``LOG_COLUMNS``): an interval kind of one item on one unit."""

    unit: str
    item: int
    op: str
    kind: str
    category: str
    start_cycle: int
    end_cycle: int
    bytes: int
    macs: int
    vector_ops: int
    wasted_fraction: float
    step: int
    tile: int
    busy_cycles: int

    def merge(self, start: int, end: int, bytes_: int, macs: int, vops: int, busy: int) -> None:
        if start < self.start_cycle:
            self.start_cycle = start
        if end > self.end_cycle:
            self.end_cycle = end
        self.bytes += bytes_
        self.macs += macs
        self.vector_ops += vops
        self.busy_cycles += busy

    def extend(self, since: tuple[int, int, int], times: int, cycles: int) -> None:
        """``times`` more periods of what was added since ``since`` (end, bytes, busy),
        each ``cycles`` later: the last end moves on, bytes and busy cycles grow."""
        self.end_cycle += times * cycles
        self.bytes += times * (self.bytes - since[1])
        self.busy_cycles += times * (self.busy_cycles - since[2])

    def snapshot(self) -> tuple[int, int, int]:
        return self.end_cycle, self.bytes, self.busy_cycles


_PERIODIC = (("dram", "load", "stream"), ("dram", "load", "weight"))  # rows a stretch grows


class Log(Periodic):
    """Log rows merged per (item, unit, kind, category), or one per tile with ``per_tile``."""

    def __init__(self, per_tile: bool):
        self.rows: dict[tuple, Row] = {}
        self.per_tile = per_tile

    def add(self, unit: str, it: WorkItem, kind: str, category: str, start: int, end: int,
            bytes_: int = 0, macs: int = 0, vops: int = 0, tile: int = -1,
            busy: int | None = None) -> None:
        """``busy``: cycles the unit actually worked within ``[start, end)`` (default: all)."""
        busy = end - start if busy is None else busy
        key = (it.id, unit, kind, category, tile if self.per_tile else -1)
        row = self.rows.get(key)
        if row is None:
            self.rows[key] = Row(unit, it.id, it.op, kind, category, start, end, bytes_, macs,
                                 vops, it.wasted_fraction, it.step, key[-1], busy)
        else:
            row.merge(start, end, bytes_, macs, vops, busy)

    def mark(self, it: WorkItem) -> list:
        """The snapshots of ``it``'s rows a stretch of tiles grows (None: no row yet)."""
        rows = [self.rows.get((it.id, *kind, -1)) for kind in _PERIODIC]
        return [row.snapshot() if row else None for row in rows]

    def room(self, since: list, period) -> int:
        """No period skipped unless each row that grew was there before and its end moved."""
        for kind, before in zip(_PERIODIC, since):
            row = self.rows.get((period.item.id, *kind, -1))
            if row is not None and row.snapshot() != before and \
                    (before is None or row.end_cycle == before[0]):
                return 0
        return period.times

    def skip(self, since: list, now: int, period) -> None:
        for kind, before in zip(_PERIODIC, since):
            row = self.rows.get((period.item.id, *kind, -1))
            if row is not None and row.snapshot() != before:
                row.extend(before, period.times, period.cycles)

    def frame(self) -> pd.DataFrame:
        """The rows (``LOG_COLUMNS``) by start cycle, unit and item, ties in logging order.
        The log hands its rows over; each column is built once, in logging order, then put
        in that order, one at a time (a 7B run logs ~200k rows: no second copy of every column)."""
        rows, n, self.rows = list(self.rows.values()), len(self.rows), {}
        if not rows:
            return pd.DataFrame.from_records([], columns=LOG_COLUMNS)
        cols = {c: _column(rows, c) for c in LOG_COLUMNS}
        del rows
        rank = {u: r for r, u in enumerate(sorted(set(cols["unit"].tolist())))}
        unit_rank = np.fromiter(map(rank.__getitem__, cols["unit"].tolist()), np.int64, n)
        order = np.lexsort((cols["item"], unit_rank, cols["start_cycle"]))  # stable
        for c in LOG_COLUMNS:
            cols[c] = cols[c][order]
        return pd.DataFrame(cols)


def _column(rows: list[Row], name: str) -> np.ndarray:
    """One log column of ``rows`` (``LOG_COLUMNS``)."""
    values = map(attrgetter(name), rows)
    if name in LOG_TEXT_COLUMNS:
        return np.fromiter(values, dtype=object, count=len(rows))
    return np.fromiter(values, np.float64 if name == "wasted_fraction" else np.int64, len(rows))


class Trace:
    """Bytes held by one buffer as change points: ``pts`` is a flat ``array('q')`` of
    cycle, bytes, cycle, bytes, …, one pair per cycle the total changed."""

    __slots__ = ("held", "pts")

    def __init__(self):
        self.held = 0
        self.pts = array("q")

    def change(self, cycle: int, delta: int) -> None:
        held = self.held = self.held + delta
        pts = self.pts
        if pts and pts[-2] >= cycle:  # several changes within one cycle: the last one counts
            pts[-1] = held
            if len(pts) > 2 and pts[-3] == held:
                del pts[-2:]
        elif not pts or pts[-1] != held:
            pts.extend((cycle, held))

    def repeat(self, since: int, period: int, times: int) -> None:
        """Append ``times`` copies of the points from index ``since`` on, each ``period``
        cycles after the last."""
        pts = self.pts
        flat = pts[since:]
        if not flat:
            return
        if len(flat) * times <= 256:  # a few points: plain Python is faster
            cycles, held = flat[0::2].tolist(), flat[1::2].tolist()
            for m in range(1, times + 1):
                copy = array("q", flat)
                copy[0::2] = array("q", [c + period * m for c in cycles])
                pts.extend(copy)
            return
        chunk = np.array(flat, dtype=np.int64).reshape(-1, 2)
        shifts = period * np.arange(1, times + 1, dtype=np.int64)
        copies = np.repeat(chunk[None], times, axis=0)
        copies[:, :, 0] += shifts[:, None]
        pts.frombytes(copies.tobytes())


class Occupancy(Periodic):
    """The ``Trace`` of each buffer, by name, created on first use. A trace whose owner
    replays its own calls across skipped periods (the weight buffer) is not repeated here."""

    def __init__(self):
        self.traces: dict[str, Trace] = {}
        self.replayed: set[str] = set()

    def trace(self, name: str, replayed_by_owner: bool = False) -> Trace:
        t = self.traces.get(name)
        if t is None:
            t = self.traces[name] = Trace()
        if replayed_by_owner:
            self.replayed.add(name)
        return t

    @property
    def points(self) -> dict[str, array]:
        """The change points of every buffer that has any."""
        return {name: t.pts for name, t in self.traces.items() if t.pts}

    def mark(self, it) -> dict[str, int]:
        """Where each trace not replayed by its owner ends now."""
        return {name: len(t.pts) for name, t in self.traces.items() if name not in self.replayed}

    def skip(self, since: dict[str, int], now: int, period) -> None:
        """Append ``period.times`` copies of the points recorded since ``since``, each
        ``period.cycles`` after the last: the trace of a periodic stretch, without replaying it."""
        for name, t in self.traces.items():
            if name not in self.replayed:
                t.repeat(since.get(name, 0), period.cycles, period.times)


class ItemRecord(NamedTuple):
    """One item's cycles as replayed."""

    item: WorkItem
    ready: int
    start: int
    compute_end: int
    done: int
    tiles: int


def items_frame(records: list[ItemRecord], traffic: dict[int, Traffic], fetched: dict[int, int],
                 hw: Hardware) -> pd.DataFrame:
    """One row per work item (``ITEM_COLUMNS``), in id order; ``records``: (item, ready,
    start, compute end, done, tiles) per item, in any order. Built column by column."""
    if not records:
        return pd.DataFrame.from_records([], columns=ITEM_COLUMNS)
    return pd.DataFrame(item_columns(records, traffic, fetched, hw), columns=ITEM_COLUMNS)


def item_columns(records: list[ItemRecord], traffic: dict[int, Traffic], fetched: dict[int, int],
                 hw: Hardware) -> dict[str, np.ndarray]:
    """``items_frame``'s columns by name, not made a frame (``engine.replay(frames=False)``:
    a serving memo's replay reads three of them)."""
    records = sorted(records, key=lambda r: r.item.id)
    items = [r.item for r in records]
    ready, start, compute_end, done, n_tiles = _int_matrix([(r.ready, r.start, r.compute_end, r.done, r.tiles) for r in records], 5).T
    sizes = dict(zip(_ITEM_INTS, _int_matrix(list(map(attrgetter(*_ITEM_INTS), items)),
                                            len(_ITEM_INTS)).T))
    cols = {"item": sizes["id"]}
    cols.update({c: _objects(map(attrgetter(c), items), len(items))
                 for c in ("op", "unit", "phase", "label")})
    cols.update(ready_cycle=ready, start_cycle=start, compute_end_cycle=compute_end,
                end_cycle=done, tokens=_objects(map(attrgetter("tokens"), items), len(items)),
                step=sizes["step"],
                wasted_fraction=np.array([it.wasted_fraction for it in items], dtype=np.float64),
                macs=sizes["macs"], vector_ops=sizes["vector_ops"], tiles=n_tiles)
    cols.update(_item_bytes(items, sizes, traffic, fetched, hw))
    return cols


def _objects(values, n: int) -> np.ndarray:
    """An object column of ``n`` values (tuples stay elements, not rows)."""
    return np.fromiter(values, dtype=object, count=n)


_ITEM_INTS = ("id", "step", "macs", "vector_ops", "weight_bytes", "act_in_bytes", "act_out_bytes")


def _int_matrix(rows: list[tuple], width: int) -> np.ndarray:
    """Equal-length rows of integers as an int64 matrix (``np.array`` of tuples is slow)."""
    return np.fromiter(chain.from_iterable(rows), np.int64, len(rows) * width).reshape(-1, width)


def _item_bytes(items: list[WorkItem], sizes: dict[str, np.ndarray], traffic: dict[int, Traffic],
                fetched: dict[int, int], hw: Hardware) -> dict[str, np.ndarray]:
    """The items' DRAM bytes by category and SRAM bytes per buffer (``SimResult``).

    Array items and vector items with resident parameters take their weights through
    the weight buffer (fetched bytes written, the item's weight bytes read); other vector
    items stream their parameters. Bytes passing through the activation buffer (KV from
    DRAM, streamed parameters, KV writes on their way out) are written once and read once.
    ``sizes``: the items' ``_ITEM_INTS`` fields by name.
    """
    tr = dict(zip(Traffic._fields, _int_matrix([traffic[it.id] for it in items], len(Traffic._fields)).T))
    on_array = np.array([cost.on_matrix(it, hw) for it in items], dtype=bool)
    via_buffer = on_array | np.array([cost.param_resident(it, hw) for it in items], dtype=bool)
    got = np.array([fetched.get(it.id, 0) for it in items], dtype=np.int64)
    act_out = sizes["act_out_bytes"]
    spill = tr["act_read_bytes"] + tr["act_write_bytes"]
    passing = tr["kv_read_bytes"] + tr["kv_write_bytes"] + np.where(via_buffer, 0, tr["weight_bytes"])
    return {"weight_bytes_fetched": np.where(via_buffer, got, tr["weight_bytes"]),
            "kv_read_bytes": tr["kv_read_bytes"], "kv_write_bytes": tr["kv_write_bytes"],
            "act_bytes": spill,
            "weight_sram_bytes": np.where(via_buffer, got + sizes["weight_bytes"], 0),
            "act_sram_bytes": sizes["act_in_bytes"] + act_out + spill + 2 * passing,
            "acc_sram_bytes": np.where(on_array, 2 * act_out, 0),
            "kv_sram_bytes": tr["kv_sram_bytes"]}


def check_capacity(occ: Occupancy, hw: Hardware) -> None:
    """Asserts no buffer ever held more than its capacity."""
    for name, pts in _points(occ).items():
        cap = getattr(hw.buffers, name).size_kib * 1024
        assert pts[:, 1].max(initial=0) <= cap, \
            f"{name} buffer occupancy {pts[:, 1].max()} bytes exceeds its {cap:.0f} bytes"


def occupancy_frame(occ: Occupancy, hw: Hardware) -> pd.DataFrame:
    """Bytes held per buffer at each change point; asserts capacity is never exceeded."""
    check_capacity(occ, hw)
    points = _points(occ)
    if not points:
        return pd.DataFrame({"buffer": pd.Series(dtype=str), "cycle": pd.Series(dtype=np.int64),
                             "bytes": pd.Series(dtype=np.int64)})
    return pd.DataFrame({"buffer": np.concatenate([np.full(len(p), n, dtype=object)
                                                   for n, p in points.items()]),
                         "cycle": np.concatenate([p[:, 0] for p in points.values()]),
                         "bytes": np.concatenate([p[:, 1] for p in points.values()])})


def _points(occ: Occupancy) -> dict[str, np.ndarray]:
    """Each buffer's (cycle, bytes held) change points, by name in sorted order."""
    return {name: np.frombuffer(occ.points[name], dtype=np.int64).reshape(-1, 2)
            for name in sorted(occ.points)}

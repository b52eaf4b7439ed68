"""The loader policy of the replay: which tile's bytes are issued to the DRAM, and when.

A loader walks a fixed list of tiles (a cursor over its items' tiles that carry its
kind of bytes) through ``slots`` slots (2 with double buffering, else 1): tile g is
issued once tile g − slots has computed. It owns the tiles it issued until they have
computed (``release``), with their arrival.

* ``WeightLoader``: weight tiles of all items in list order, so the next item's
  first tiles load while the current one computes (``weight_prefetch: ahead``);
  under ``per_op`` a tile also waits for its item's issue overhead to end. A resident tile is a
  hit (it arrives at its issue), a miss a bulk DRAM transfer.
* ``StreamLoader``: one unit's stream tiles (KV reads, spilled inputs, streamed
  parameters) in its tile order, as demand transfers, once the item's gate opens:
  at the end of its issue overhead, or, for an item whose stream is KV reads only
  (``ahead``), once all its deps have started (the rows it reads exist by then).

State protocol (``speedsim.hw.units.Periodic``): a loader's relative state is the
arrival of each tile in flight; skipping renames those tiles and moves the cursor
on; ``room`` allows only periods whose issues stay within the item's periodic
tiles and, for weights, all miss.
"""

from __future__ import annotations

from typing import NamedTuple

from speedsim.config.hw import Hardware
from speedsim.contracts.workitem import WorkItem
from speedsim.hw import cost
from speedsim.hw.cost import CostPlan, Tile, TileShapes
from speedsim.hw.units import BulkTransfer, Periodic
from speedsim.sim.tables import Log


class _Entry(NamedTuple):
    """An item on a loader's list: its tiles, and per tile index the next one with bytes."""

    item: WorkItem
    tiles: list[Tile]
    next_index: list[int]


def tile_key(it: WorkItem, j: int) -> tuple:
    """Residency key of tile ``j`` of ``it``; the tile index always comes last."""
    return (it.weight_key, j) if it.weight_key is not None else ("anonymous", it.id, j)


class _Loader(Periodic):
    """A cursor (``i``, ``j``: tile j of ``items[i]``) over the tiles with bytes in ``Tile``
    field ``field``, and the tiles issued through ``slots`` slots, not yet released: (item
    id, j) -> arrival. ``carries``: the loader's flag in ``Period.carries``."""

    field, carries = Tile._fields.index("weight_bytes"), 0

    def __init__(self, items: list[WorkItem], tiles: dict[int, list[Tile]], shapes: TileShapes,
                 slots: int):
        self.items = [_Entry(it, t, nxt) for it in items  # those with such tiles
                      if (nxt := shapes.next_with(t := tiles[it.id], self.field))[0] < len(t)]
        self.i = self.j = 0
        self.slots, self.in_flight = slots, 0
        self.issued: dict[tuple[int, int], object] = {}

    def next_tile(self) -> tuple[WorkItem, int, int] | None:
        """Move the cursor to the next tile with bytes; (item, tile index, bytes) or None."""
        items, i, j = self.items, self.i, self.j
        while i < len(items):
            it, tiles, nxt = items[i]
            if j < len(tiles):
                j = nxt[j]
                if j < len(tiles):
                    self.i, self.j = i, j
                    return it, j, tiles[j][self.field]
            i, j = i + 1, 0
        self.i, self.j = i, j
        return None

    def arrival(self, it: WorkItem, j: int) -> int | None:
        """When tile ``j`` of ``it`` is on chip as booked by now (a bulk transfer's may still
        move; a hit's: its issue), or None if not issued yet."""
        v = self.issued.get((it.id, j))
        return v.arrival if v.__class__ is BulkTransfer else v

    def ahead(self, it: WorkItem, k: int) -> int | None:
        """Tiles issued past tile ``k`` of ``it`` (the cursor within ``it``), else None."""
        nxt = self.next_tile()
        return self.j - k if nxt is not None and nxt[0] is it else None

    def relative(self, now: int) -> tuple:
        return tuple([v - now if v > now else 0 for v in self.issued.values()])

    def room(self, since, period) -> int:
        """Periods whose issues stay within the item's tiles periodic in the loader's bytes."""
        if not period.carries[self.carries]:
            return period.times
        if self.ahead(period.item, period.at) is None:
            return 0
        return min(period.times, (period.issue_ends[self.carries] - self.j) // period.tiles)

    def skip(self, since, now: int, period) -> None:
        """Rename the item's tiles in flight ``period.times`` periods on, a stream tile's
        arrival still ahead moved on with it (a weight tile's transfer is moved by
        ``Dram.skip``, a hit's issue cycle has passed); move the cursor."""
        if not period.carries[self.carries]:
            return
        n, iid, by = period.times * period.tiles, period.item.id, period.times * period.cycles
        moved = [(key, self.issued.pop(key)) for key in list(self.issued) if key[0] == iid]
        for (_, j), value in moved:  # keys: (item id, tile index)
            self.issued[(iid, j + n)] = value + by if value.__class__ is int and value > now else value
        self.j += n


class WeightLoader(_Loader):
    """Issues the weight tiles of the units that hold weights, in list order, ``slots``
    ahead of their compute; the bytes each item fetched (``fetched``)."""

    def __init__(self, items: list[WorkItem], tiles: dict[int, list[Tile]], shapes: TileShapes,
                 slots: int, per_op: bool, dram, wbuf, log: Log):
        super().__init__(items, tiles, shapes, slots)
        self.per_op, self.dram, self.wbuf, self.log = per_op, dram, wbuf, log
        self.issued_items: set[int] = set()  # items whose issue overhead has ended (``per_op``)
        self.fetched: dict[int, int] = {}
        self.hits = 0

    def pump(self, now: int) -> None:
        """Issue every tile whose slot is free and whose item allows it."""
        while self.in_flight < self.slots:
            nxt = self.next_tile()
            if nxt is None:
                return
            it, j, bytes_ = nxt
            if self.per_op and it.id not in self.issued_items:
                return
            self.j += 1
            self.in_flight += 1
            if self.wbuf.acquire(tile_key(it, j), bytes_, now):
                self.issued[(it.id, j)] = now
                self.hits += 1
            else:
                self.issued[(it.id, j)] = self.dram.bulk(now, bytes_)
                self.fetched[it.id] = self.fetched.get(it.id, 0) + bytes_

    def launched(self, it: WorkItem, now: int) -> None:
        """``it``'s issue overhead has ended: under ``per_op`` its weight tiles may load now
        (a kernel loads nothing before it is launched)."""
        if self.per_op:
            self.issued_items.add(it.id)
            self.pump(now)

    def release(self, it: WorkItem, j: int, now: int) -> None:
        """Tile ``j`` of ``it`` has computed: log its transfer (final: it has arrived), unpin
        it, free its slot."""
        tr = self.issued.pop((it.id, j))
        if tr.__class__ is BulkTransfer:
            self.log.add("dram", it, "load", "weight", tr.start, tr.finish, tr.bytes_, tile=j,
                         busy=tr.cycles)
        self.wbuf.release(tile_key(it, j))
        self.in_flight -= 1
        self.pump(now)

    def relative(self, now: int) -> tuple:
        """Arrivals in flight (negative: a hit), and the hits so far (equal at two moments
        only when no tile between them hit)."""
        return tuple([(tr.arrival - now if tr.arrival > now else 0)
                      if tr.__class__ is BulkTransfer else -1
                      for tr in self.issued.values()]), self.hits

    def mark(self, it: WorkItem) -> int:
        """The bytes ``it`` fetched so far (the loader's cursor stays in ``it`` up to a skip)."""
        return self.fetched.get(it.id, 0)

    def room(self, since, period) -> int:
        """Also: every tile the periods issue misses."""
        times = super().room(since, period)
        if times and period.carries[self.carries]:
            first = self.wbuf.first_resident(tile_key(period.item, 0)[:-1], self.j)
            if first is not None:
                times = min(times, (first - self.j) // period.tiles)
        return times

    def skip(self, since: int, now: int, period) -> None:
        super().skip(since, now, period)
        if period.carries[self.carries]:
            iid = period.item.id
            self.fetched[iid] += period.times * (self.fetched[iid] - since)


class StreamLoader(_Loader):
    """Issues one unit's stream tiles in its tile order through ``slots`` stream slots once
    the item's gate opens (module docstring: ``issuing`` holds the items whose issue
    overhead has ended, ``started`` those started; once open, always); logs their transfers
    and the bytes they hold."""

    field, carries = Tile._fields.index("stream_bytes"), 1

    def __init__(self, items: list[WorkItem], costed: CostPlan, shapes: TileShapes, slots: int,
                 hw: Hardware, started: set[int], dram, log: Log, held):
        super().__init__(items, costed.tiles, shapes, slots)
        self.started, self.dram, self.log, self.held = started, dram, log, held
        self.issuing: set[int] = set()
        self.kv_only = set() if hw.weight_prefetch == "per_op" else {
            e.item.id for e in self.items if cost.kv_prefetchable(e.item, costed.traffic[e.item.id], hw)}
        # the item whose closed gate stopped the last pump (before the first: the first item)
        self.gated: WorkItem | None = self.items[0].item if self.items else None

    def pump(self, now: int, freed: int = 0) -> None:
        """Issue every stream tile whose slot is free and whose item's gate is open.
        ``freed``: the bytes of a tile that released its slot just now (what is held
        changes once for both)."""
        delta = -freed
        self.gated = None
        while self.in_flight < self.slots:
            nxt = self.next_tile()
            if nxt is None:
                break
            it, j, bytes_ = nxt
            if it.id not in self.issuing and not (it.id in self.kv_only and self.started.issuperset(it.deps)):
                self.gated = it
                break
            self.j += 1
            self.in_flight += 1
            start, end, arrival = self.dram.demand(now, bytes_)
            self.log.add("dram", it, "load", "stream", start, end, bytes_, tile=j)
            delta += bytes_
            self.issued[(it.id, j)] = arrival
        if delta:
            self.held.change(now, delta)

    def launched(self, it: WorkItem, now: int) -> None:
        """``it``'s issue overhead has ended: its gate opens (pumping if it stopped the last pump)."""
        self.issuing.add(it.id)
        if self.gated is it:  # else this gate opening changes nothing now
            self.pump(now)

    def release(self, it: WorkItem, j: int, bytes_: int, now: int) -> None:
        """Tile ``j`` of ``it`` (``bytes_`` stream bytes) has computed: free its slot."""
        del self.issued[(it.id, j)]
        self.in_flight -= 1
        self.pump(now, bytes_)

"""How much of the replay cross-item reuse could save (issue #25): a census, not a timing.

Reuse across items means: an item whose tiles start playing in the same *relative* state as an
earlier item of the same tile shape does what that item did, shifted in time and with keys
renamed. This counts, per op, the items whose first stretch (``speedsim.sim.skipper.Stretch``
from tile 0) starts in a state seen before, and the seconds their stretches take (the part
reuse would replace). The state: the tile list, the unit, the cycles to the horizon, where the
loaders stand relative to the item and the tile lists of the next items each will issue, every
part's ``relative(now)``, the item's log rows so far, and the weight buffer as the item sees it
(which of its own tiles are resident, how many entries there are: the buffer's ``relative`` is
empty, the skipper checks hits through the loader instead). A census, not a proof: a real key
must also hold the buffer's LRU order relative to the item (``WeightBuffer`` evicts by it).

    .venv/bin/python benchmarks/bench_reuse.py [--new-tokens 32] [--strategies sequential,speed]
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import speedsim.sim.skipper as skipper
from speedsim.api import simulate
from speedsim.config import load_hardware, load_workload


def start_state(stretch, now: int) -> tuple:
    """What decides an item's stretch from tile 0 on (module docstring)."""
    it, inf = stretch.it, float("inf")
    wbuf = stretch.weights.wbuf
    own = sorted(k[-1] for k in wbuf.resident if k[:-1] == (it.weight_key,))
    rows = [(row.start_cycle - now, row.bytes) if row else None for row in
            (stretch.log.rows.get((it.id, "dram", "load", c, -1)) for c in ("param", "stream", "weight"))]
    nexts = tuple(tuple(id(e.tiles) for e in loader.items[loader.i + 1:loader.i + 3])
                  for loader in (stretch.weights, stretch.stream))
    return (id(stretch.tiles), it.unit, -1 if stretch.horizon == inf else stretch.horizon - now,
            stretch.weights.ahead(it, 0), stretch.stream.ahead(it, 0), nexts, tuple(rows),
            tuple(part.relative(now) for part in stretch.parts), tuple(own), len(wbuf.resident))


def census(hw_path: str, wl_path: str, new_tokens: int, strategies: list[str]) -> dict:
    """Per op: [item starts, starts seen before, stretch seconds, of them in repeated starts]."""
    seen, stats, play = set(), defaultdict(lambda: [0, 0, 0.0, 0.0]), skipper.Stretch.play

    def counted(stretch, j, now):
        state = start_state(stretch, now) if j == 0 else None
        t0 = time.perf_counter()
        out = play(stretch, j, now)
        row, dt = stats[stretch.it.op], time.perf_counter() - t0
        row[2] += dt
        if state is not None:
            row[0], row[1], row[3] = row[0] + 1, row[1] + (state in seen), row[3] + dt * (state in seen)
            seen.add(state)
        return out

    skipper.Stretch.play = counted
    try:
        simulate(load_hardware(hw_path), load_workload(wl_path, [("generation.new_tokens", new_tokens)]),
                 strategies)
    finally:
        skipper.Stretch.play = play
    return dict(stats)


def replay_args(doc: str, new_tokens: int = 32) -> argparse.Namespace:
    """The arguments of the replay censuses (this one, bench_item_periods, bench_item_skip)."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--hw", default="hw_configs/edge.yaml")
    p.add_argument("--workload", default="workloads/llama7b_cycle_u8.yaml")
    p.add_argument("--new-tokens", type=int, default=new_tokens)
    p.add_argument("--strategies", default="sequential,speed")
    return p.parse_args()


def main() -> None:
    args = replay_args(__doc__)
    for name in args.strategies.split(","):
        stats = census(args.hw, args.workload, args.new_tokens, [name])
        total = [sum(col) for col in zip(*stats.values())]
        print(f"{name}: {total[1]}/{total[0]} item starts repeat an earlier state; "
              f"{total[3]:.2f} of {total[2]:.2f} stretch s in them")
        for op, (starts, again, secs, secs_again) in sorted(stats.items(), key=lambda kv: -kv[1][2]):
            print(f"  {op:12s} {again:6d}/{starts:<6d} {secs_again:6.3f}/{secs:.3f} s")


if __name__ == "__main__":
    main()

"""Replay-engine throughput on synthetic decode-like DAGs (DESIGN §11).

Builds ``tokens × layers`` decoder layers of 12 work items each (norm, qkv,
attention score/softmax/value per token, out_proj, residual, norm, mlp_up,
act, mlp_down, residual), with ``in_flight`` tokens' attention running side by
side as SPEED's fused stage steps do, and reports work items, SimPy events and
simulated cycles per wall second. Two shapes:

* ``default``: the small decoder (d_model 512, 8 layers, 128 tokens: ~12k items),
  with periods skipped (``speedsim.sim.skipper``) and tile by tile (the two must give
  the same cycles);
* ``7b``: a LLaMA-7B layer shape (d_model 4096, d_ff 11008, 32 heads, 32 layers
  over 8 weight sets, prompt 128, 256 tokens: ~98k items, millions of weight
  tiles), periods skipped only.

    .venv/bin/python benchmarks/bench_engine.py [--hw hw_configs/edge.yaml] [--dags default,7b]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from speedsim.config.hw import load_hardware
from speedsim.sim.engine import replay
from speedsim.contracts.workitem import WorkItem

ROOT = Path(__file__).resolve().parent.parent


def decode_dag(tokens: int, layers: int, d_model: int = 512, d_ff: int = 2048, heads: int = 8,
               prompt: int = 64, in_flight: int = 2, unique_layers: int = 4,
               bytes_per_element: int = 1) -> list[WorkItem]:
    """A decode-like DAG: every step fuses ``in_flight`` tokens' GEMMs (M = in_flight)."""
    eb, hd = bytes_per_element, d_model // heads
    items: list[WorkItem] = []

    def add(deps, **kw) -> int:
        items.append(WorkItem(id=len(items), phase="decode", deps=tuple(deps), **kw))
        return len(items) - 1

    def gemm(deps, op, m, k, n, layer, kv_write=0):
        return add(deps, unit="array", op=op, m=m, k=k, n=n, count=1,
                   weight_key=("set", layer % unique_layers, op), weight_bytes=k * n * eb,
                   act_in_bytes=m * k * eb, act_out_bytes=m * n * eb, kv_write_bytes=kv_write,
                   macs=m * k * n)

    def vec(deps, op, kind, elements):
        return add(deps, unit="vector", op=op, vector_kind=kind, elements=elements,
                   vector_ops=elements, act_in_bytes=elements * eb, act_out_bytes=elements * eb)

    last = None
    m = in_flight
    for step in range(tokens // in_flight):
        for layer in range(layers):
            deps = [last] if last is not None else []
            n1 = vec(deps, "norm", "norm", m * d_model)
            qkv = gemm([n1], "qkv", m, d_model, 3 * d_model, layer, kv_write=2 * m * d_model * eb)
            outs = []
            for t in range(in_flight):
                kv = prompt + step * in_flight + t
                s = add([qkv], unit="array", op="attn_score", m=1, k=hd, n=kv, count=heads,
                        kv_read_bytes=kv * d_model * eb, macs=heads * hd * kv)
                sm = vec([s], "softmax", "softmax", heads * kv)
                outs.append(add([sm], unit="array", op="attn_value", m=1, k=kv, n=hd, count=heads,
                                kv_read_bytes=kv * d_model * eb, macs=heads * hd * kv))
            o = gemm(outs, "out_proj", m, d_model, d_model, layer)
            r1 = vec([o], "residual", "residual", m * d_model)
            n2 = vec([r1], "norm", "norm", m * d_model)
            up = gemm([n2], "mlp_up", m, d_model, d_ff, layer)
            a = vec([up], "act", "activation", m * d_ff)
            dn = gemm([a], "mlp_down", m, d_ff, d_model, layer)
            last = vec([dn, r1], "residual", "residual", m * d_model)
    return items


SHAPES = {
    "default": dict(tokens=128, layers=8),
    "7b": dict(tokens=256, layers=32, d_model=4096, d_ff=11008, heads=32, prompt=128,
               unique_layers=8),
}
MODES = {"default": ("closed_form", "tile_by_tile"), "7b": ("closed_form",)}


def bench(hw_path: Path, dag: str, in_flight: int, **overrides) -> dict:
    hw = load_hardware(hw_path)
    shape = SHAPES[dag] | {k: v for k, v in overrides.items() if v is not None}
    items = decode_dag(in_flight=in_flight, bytes_per_element=hw.bytes_per_element, **shape)
    out = {"hw": hw.name, "dag": dag, "shape": shape, "items": len(items)}
    for mode in MODES[dag]:
        t0 = time.perf_counter()
        r = replay(items, hw, closed_form_runs=(mode == "closed_form"))
        wall = time.perf_counter() - t0
        out[mode] = {"wall_s": round(wall, 3), "items_per_s": round(len(items) / wall),
                     "events": r.events, "events_per_s": round(r.events / wall),
                     "total_cycles": r.total_cycles,
                     "sim_cycles_per_wall_s": round(r.total_cycles / wall),
                     "roofline_cycles": r.roofline.cycles}
    if "tile_by_tile" in out:
        assert out["closed_form"]["total_cycles"] == out["tile_by_tile"]["total_cycles"]
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hw", type=Path, default=ROOT / "hw_configs" / "edge.yaml")
    p.add_argument("--dags", default="default,7b", help=f"comma-separated, of {', '.join(SHAPES)}")
    p.add_argument("--tokens", type=int, default=None, help="override the shape's token count")
    p.add_argument("--layers", type=int, default=None, help="override the shape's layer count")
    p.add_argument("--in-flight", type=int, default=1, help="tokens fused per step (1: sequential)")
    args = p.parse_args(argv)
    dags = args.dags.split(",")
    for d in dags:
        if d not in SHAPES:
            p.error(f"--dags: unknown DAG {d!r} (known: {', '.join(SHAPES)})")
    results = [bench(args.hw, d, args.in_flight, tokens=args.tokens, layers=args.layers) for d in dags]
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Measure the per-op costs of transformer decoding on one NVIDIA GPU (bf16, CUDA graphs).

What it measures (one CSV each, written to OUT_DIR):

- ``env.csv``       GPU name, SM count, L2 size, clocks before/after, torch/CUDA versions.
- ``ceiling.csv``   device-to-device copy bandwidth (bytes read + written) and an 8192^3
                    bf16 matmul rate: the two ceilings.
- ``overhead.csv``  a chain of R tiny kernels captured in one graph: time per kernel
                    (launch gap + the shortest kernel), for several kernel kinds.
- ``gemm.csv``      ``y = x @ W.T`` (``F.linear``) for M = 1..16 rows and K, N = 768..16384,
                    plus N = K = 12288 at M = 32..8192 (the LLMCompass sweep).
- ``attn.csv``      decode attention of t tokens in flight, each with its own KV cache of
                    length L (tokens at different layers read different K/V), as one batched
                    kernel per op: scores (baddbmm), softmax, values (bmm), and fused SDPA.
- ``vector.csv``    LayerNorm, RMSNorm, GELU, SiLU, gated SiLU (silu(g)*u), add, softmax by size.
- ``layer.csv``     one pre-LN decoder layer (gated MLP, ctx 1024) at 1..16 tokens in flight.

Method: every case is captured as a CUDA graph of R back-to-back launches of the same op
on R different buffer sets (rotating so that the working set exceeds the L2 and every
launch reads its operands from DRAM, as in a decode where every layer has its own
weights); a replay is timed with CUDA events, warm-ups first; the time per launch is the
median replay time over R. Inputs are random normal, never zeros.

Usage on the GPU machine: ``python3 measure.py OUT_DIR [--quick]``.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
import time
import traceback
from pathlib import Path

import torch
import torch.nn.functional as F

DT = torch.bfloat16
DEV = "cuda"
ROT_BYTES = 512 * 2**20      # working set each graph rotates over (> 8x the 60 MB L2)
MAX_COPIES = 96              # at most this many launches (buffer sets) per graph
WARMUP = 3
REPS = 40


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def copies_for(bytes_per_launch: int, lo: int = 4) -> int:
    """Launches per graph: enough buffer sets to exceed ROT_BYTES, at least ``lo``."""
    return max(lo, min(MAX_COPIES, math.ceil(ROT_BYTES / max(1, bytes_per_launch))))


def capture(fn) -> "torch.cuda.CUDAGraph":
    """``fn`` (which launches work) captured in one CUDA graph, after two eager warm-up
    calls on a side stream."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(2):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    return g


def time_graph(fn, reps: int = REPS) -> tuple[float, float]:
    """Capture ``fn`` (which launches work) in a CUDA graph; median and min replay ms."""
    g = capture(fn)
    for _ in range(WARMUP):
        g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    del g
    return median(times), min(times)


def rnd(*shape) -> torch.Tensor:
    return torch.randn(*shape, device=DEV, dtype=DT)


class Sink:
    """Rows -> CSV, flushed after every row so partial results survive a crash."""

    def __init__(self, path: Path, fields: list[str]):
        self.f = open(path, "w", newline="")
        self.w = csv.DictWriter(self.f, fieldnames=fields)
        self.w.writeheader()
        self.rows: list[dict] = []

    def add(self, **row) -> None:
        self.w.writerow(row)
        self.f.flush()
        self.rows.append(row)


def nvsmi(fields: str) -> str:
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:  # noqa: BLE001 (diagnostic only)
        return f"n/a ({e})"


# ---------------------------------------------------------------- sections

def env_rows(out: Path, when: str, sink: Sink | None) -> Sink:
    if sink is None:
        sink = Sink(out / "env.csv", ["key", "value"])
    p = torch.cuda.get_device_properties(0)
    if when == "start":
        for k, v in [("gpu", p.name), ("sm_count", p.multi_processor_count),
                     ("l2_bytes", getattr(p, "L2_cache_size", "n/a")),
                     ("total_memory_bytes", p.total_memory), ("torch", torch.__version__),
                     ("cuda", torch.version.cuda), ("cublas_workspace", "default"),
                     ("driver", nvsmi("driver_version"))]:
            sink.add(key=k, value=v)
    q = "clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,power.draw,power.limit,temperature.gpu"
    sink.add(key=f"nvsmi_{when} ({q})", value=nvsmi(q))
    return sink


def ceilings(out: Path) -> None:
    sink = Sink(out / "ceiling.csv", ["what", "bytes", "flop", "ms", "gb_s", "tflop_s"])
    n = 2 * 2**30 // 2
    a, b = rnd(n), torch.empty(n, device=DEV, dtype=DT)
    ms, _ = time_graph(lambda: b.copy_(a), reps=15)
    by = 2 * n * 2
    sink.add(what="d2d_copy_2GiB", bytes=by, flop=0, ms=ms, gb_s=by / ms / 1e6, tflop_s=0)
    acc = torch.empty((), device=DEV, dtype=torch.float32)
    ms, _ = time_graph(lambda: torch.sum(a, dtype=torch.float32, out=acc), reps=15)
    sink.add(what="read_sum_2GiB", bytes=2 * n, flop=n, ms=ms, gb_s=2 * n / ms / 1e6, tflop_s=0)
    del a, b
    x, w = rnd(8192, 8192), rnd(8192, 8192)
    ms, _ = time_graph(lambda: torch.mm(x, w), reps=15)
    fl = 2 * 8192**3
    sink.add(what="mm_8192^3", bytes=3 * 8192 * 8192 * 2, flop=fl, ms=ms, gb_s=0,
             tflop_s=fl / ms / 1e9)


def overheads(out: Path) -> None:
    sink = Sink(out / "overhead.csv", ["kind", "launches", "ms_per_launch", "graph_ms"])
    t1 = rnd(1)
    small = rnd(64, 64)
    xs = rnd(1, 64)
    v2k = rnd(2048)
    cases = {
        "add_1elem": lambda: t1.add_(1.0),
        "linear_1x64x64": lambda: F.linear(xs, small),
        "add_2048": lambda: v2k.mul_(1.0),
        "layernorm_1x2048": lambda: F.layer_norm(v2k.view(1, -1), (2048,)),
    }
    for kind, op in cases.items():
        for r in (1, 10, 100, 400):
            ms, _ = time_graph(lambda: [op() for _ in range(r)])
            sink.add(kind=kind, launches=r, ms_per_launch=ms / r, graph_ms=ms)


def gemm_shapes(quick: bool) -> list[tuple[int, int, int]]:
    kn = [(768, 768), (768, 3072), (3072, 768), (1024, 1024), (2048, 2048), (2048, 6144),
          (2048, 11008), (5504, 2048), (4096, 4096), (4096, 12288), (4096, 22016),
          (11008, 4096), (4096, 11008), (8192, 8192), (12288, 12288), (16384, 16384),
          (4096, 32000), (2048, 32000)]
    ms = [1, 2, 4, 8, 16]
    if quick:
        kn, ms = kn[:3], [1, 16]
    shapes = [(m, k, n) for k, n in kn for m in ms]
    big = [] if quick else [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
    return shapes + [(m, 12288, 12288) for m in big]


def gemms(out: Path, quick: bool) -> None:
    sink = Sink(out / "gemm.csv", ["M", "K", "N", "resident", "copies", "weight_bytes", "ms",
                                   "ms_min", "gb_s", "tflop_s"])
    for m, k, n in gemm_shapes(quick):
        wb = k * n * 2
        gemm_case(sink, m, k, n, resident=False)
        if wb <= 16 * 2**20 and m in (1, 16):
            gemm_case(sink, m, k, n, resident=True)


def gemm_case(sink: Sink, m: int, k: int, n: int, resident: bool) -> None:
    """resident: all launches use one weight matrix, which stays in the L2."""
    wb = k * n * 2
    by = wb + m * (k + n) * 2
    r = 32 if resident else copies_for(by, lo=4)
    w0 = rnd(n, k)
    ws = [w0] * r if resident else [w0] + [rnd(n, k) for _ in range(r - 1)]
    x = rnd(m, k)
    ys = [torch.empty(m, n, device=DEV, dtype=DT) for _ in range(r)]
    ms, mn = time_graph(lambda: [torch.matmul(x, w.t(), out=y) for w, y in zip(ws, ys)])
    t = ms / r
    sink.add(M=m, K=k, N=n, resident=int(resident), copies=r, weight_bytes=wb, ms=t,
             ms_min=mn / r, gb_s=by / t / 1e6, tflop_s=2 * m * k * n / t / 1e9)


def attention(out: Path, quick: bool) -> None:
    sink = Sink(out / "attn.csv", ["op", "tokens", "heads", "head_dim", "kv_len", "copies",
                                   "kv_bytes", "ms", "gb_s"])
    lens = [128, 256, 512, 1024, 2048, 4096, 8192] if not quick else [1024]
    for heads in (32, 16):
        dh = 128
        for t in (1, 4, 16):
            for L in lens:
                attn_case(sink, t, heads, dh, L)


def attn_case(sink: Sink, t: int, heads: int, dh: int, L: int) -> None:
    """t tokens, each its own KV of length L: batch = t*heads, one query row each."""
    kvb = 2 * t * heads * L * dh * 2
    r = copies_for(kvb)
    bh = t * heads
    qs = [rnd(bh, 1, dh) for _ in range(r)]
    ks = [rnd(bh, L, dh) for _ in range(r)]
    vs = [rnd(bh, L, dh) for _ in range(r)]
    sc = [torch.empty(bh, 1, L, device=DEV, dtype=DT) for _ in range(r)]
    ps = [torch.softmax(rnd(bh, 1, L), -1) for _ in range(r)]
    os_ = [torch.empty(bh, 1, dh, device=DEV, dtype=DT) for _ in range(r)]
    scale = dh ** -0.5
    cases = {
        "attn_score": (lambda: [torch.baddbmm(s, q, k.transpose(1, 2), beta=0.0, alpha=scale,
                                              out=s) for q, k, s in zip(qs, ks, sc)], kvb / 2),
        "softmax": (lambda: [torch.softmax(s, -1) for s in sc], 0),
        "attn_value": (lambda: [torch.bmm(p, v, out=o) for p, v, o in zip(ps, vs, os_)],
                       kvb / 2),
        "sdpa": (lambda: [F.scaled_dot_product_attention(q.view(t, heads, 1, dh),
                                                         k.view(t, heads, L, dh),
                                                         v.view(t, heads, L, dh))
                          for q, k, v in zip(qs, ks, vs)], kvb),
    }
    for op, (fn, by) in cases.items():
        ms, _ = time_graph(fn)
        tt = ms / r
        sink.add(op=op, tokens=t, heads=heads, head_dim=dh, kv_len=L, copies=r,
                 kv_bytes=int(by), ms=tt, gb_s=by / tt / 1e6 if by else 0)


def vector_ops(out: Path, quick: bool) -> None:
    sink = Sink(out / "vector.csv", ["op", "rows", "cols", "elements", "copies", "bytes",
                                     "ms", "gb_s"])
    shapes = [(m, d) for d in (2048, 4096) for m in (1, 4, 16, 64, 256, 1024, 4096)]
    shapes += [(m, 11008) for m in (1, 4, 16, 256)]
    if quick:
        shapes = shapes[:3]
    for m, d in shapes:
        vector_case(sink, m, d)


def vector_case(sink: Sink, m: int, d: int) -> None:
    nb = m * d * 2
    r = copies_for(3 * nb)
    xs = [rnd(m, d) for _ in range(r)]
    ys = [rnd(m, d) for _ in range(r)]
    gs = [rnd(m, 2 * d) for _ in range(r)]
    w, b = rnd(d), rnd(d)
    cases = {
        "layernorm": (lambda: [F.layer_norm(x, (d,), w, b) for x in xs], 2 * nb),
        "rmsnorm": (lambda: [F.rms_norm(x, (d,), w) for x in xs], 2 * nb),
        "gelu": (lambda: [F.gelu(x, approximate="tanh") for x in xs], 2 * nb),
        "silu": (lambda: [F.silu(x) for x in xs], 2 * nb),
        "silu_mul": (lambda: [F.silu(g[:, :d]) * g[:, d:] for g in gs], 3 * nb),
        "add": (lambda: [x + y for x, y in zip(xs, ys)], 3 * nb),
        "softmax": (lambda: [torch.softmax(x, -1) for x in xs], 2 * nb),
    }
    for op, (fn, by) in cases.items():
        ms, _ = time_graph(fn)
        tt = ms / r
        sink.add(op=op, rows=m, cols=d, elements=m * d, copies=r, bytes=by, ms=tt,
                 gb_s=by / tt / 1e6)


# ---------------------------------------------------------------- one decoder layer

class Layer:
    """One pre-LN decoder layer (LayerNorm, fused QKV, gated SiLU MLP) for t tokens in
    flight, each with its own KV cache (the tokens sit at different layers in SPEED).

    Kernels per call (math attention): norm, qkv, KV write (2 copies), q scale folded into
    baddbmm, scores, softmax, values, out_proj, residual, norm, up, silu, mul, down,
    residual.
    """

    def __init__(self, d: int, heads: int, d_ff: int, t: int, ctx: int):
        self.d, self.h, self.dh, self.f, self.t, self.ctx = d, heads, d // heads, d_ff, t, ctx
        self.wqkv, self.wo = rnd(3 * d, d) * 0.02, rnd(d, d) * 0.02
        self.wup, self.wdown = rnd(2 * d_ff, d) * 0.02, rnd(d, d_ff) * 0.02
        self.n1w, self.n1b, self.n2w, self.n2b = rnd(d), rnd(d), rnd(d), rnd(d)
        self.kc = rnd(t * heads, ctx + 1, self.dh)
        self.vc = rnd(t * heads, ctx + 1, self.dh)

    def weight_bytes(self) -> int:
        return 2 * (self.wqkv.numel() + self.wo.numel() + self.wup.numel() + self.wdown.numel())

    def kv_bytes(self) -> int:
        return 2 * (self.kc.numel() + self.vc.numel())

    def __call__(self, x: torch.Tensor, sdpa: bool) -> torch.Tensor:
        t, h, dh, d, L = self.t, self.h, self.dh, self.d, self.ctx
        a = F.layer_norm(x, (d,), self.n1w, self.n1b)
        qkv = F.linear(a, self.wqkv).view(t, 3, h, dh)
        q = qkv[:, 0].reshape(t * h, 1, dh)
        self.kc[:, L:L + 1].copy_(qkv[:, 1].reshape(t * h, 1, dh))
        self.vc[:, L:L + 1].copy_(qkv[:, 2].reshape(t * h, 1, dh))
        if sdpa:
            o = F.scaled_dot_product_attention(q.view(t, h, 1, dh), self.kc.view(t, h, L + 1, dh),
                                               self.vc.view(t, h, L + 1, dh))
        else:
            s = torch.baddbmm(torch.empty(t * h, 1, L + 1, device=DEV, dtype=DT), q,
                              self.kc.transpose(1, 2), beta=0.0, alpha=dh ** -0.5)
            o = torch.bmm(torch.softmax(s, -1), self.vc)
        x = x + F.linear(o.reshape(t, d), self.wo)
        b = F.layer_norm(x, (d,), self.n2w, self.n2b)
        g = F.linear(b, self.wup)
        y = F.silu(g[:, :self.f]) * g[:, self.f:]
        return x + F.linear(y, self.wdown)


def count_kernels(fn) -> int:
    """CUDA kernels one eager call launches (torch profiler); -1 when it cannot tell."""
    try:
        from torch.profiler import ProfilerActivity, profile
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            fn()
            torch.cuda.synchronize()
        return sum(1 for e in prof.events() if e.device_type.name == "CUDA")
    except Exception:  # noqa: BLE001 (diagnostic only)
        traceback.print_exc()
        return -1


def layers(out: Path, quick: bool) -> None:
    sink = Sink(out / "layer.csv", ["d_model", "heads", "d_ff", "ctx", "tokens", "attn",
                                    "resident", "copies", "kernels_per_layer", "weight_bytes",
                                    "kv_bytes", "ms", "ms_min"])
    shapes = [(4096, 32, 11008), (2048, 16, 5504), (768, 12, 2048)]
    toks = [1, 2, 4, 8, 16] if not quick else [1, 4]
    for d, h, f in shapes:
        for t in toks:
            layer_case(sink, d, h, f, t, 1024, resident=False)
            if d < 4096:
                layer_case(sink, d, h, f, t, 1024, resident=True)


def stack_runner(stack: list, x, sdpa: bool):
    """A function that runs ``x`` through every layer of ``stack`` in turn (graph-capturable)."""
    def run():
        y = x
        for lay in stack:
            y = lay(y, sdpa)
        return y
    return run


def layer_case(sink: Sink, d: int, h: int, f: int, t: int, ctx: int, resident: bool) -> None:
    """resident: the graph repeats one layer (its weights stay in the L2 when they fit)."""
    probe = Layer(d, h, f, t, ctx)
    r = 8 if resident else min(24, copies_for(probe.weight_bytes() + probe.kv_bytes(), lo=4))
    stack = [probe] * r if resident else [probe] + [Layer(d, h, f, t, ctx) for _ in range(r - 1)]
    x = rnd(t, d)
    for sdpa in (False, True):
        run = stack_runner(stack, x, sdpa)
        kern = count_kernels(lambda: probe(x, sdpa))
        ms, mn = time_graph(run)
        sink.add(d_model=d, heads=h, d_ff=f, ctx=ctx, tokens=t, attn="sdpa" if sdpa else "math",
                 resident=int(resident), copies=r, kernels_per_layer=kern, weight_bytes=probe.weight_bytes(),
                 kv_bytes=probe.kv_bytes() // (ctx + 1) * ctx, ms=ms / r, ms_min=mn / r)
    del stack, probe


def kernel_events(fn) -> list:
    """(name, start_us, duration_us) of the CUDA kernels ``fn`` launches (torch profiler)."""
    from torch.profiler import ProfilerActivity, profile
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    ev = [e for e in prof.events() if e.device_type.name == "CUDA"]
    return sorted(((e.name, e.time_range.start, e.time_range.end - e.time_range.start)
                   for e in ev), key=lambda x: x[1])


def layer_kernels(out: Path, quick: bool) -> None:
    """Per-kernel durations inside the layer stacks, eager and graph-replayed."""
    sink = Sink(out / "layer_kernels.csv", ["d_model", "tokens", "attn", "mode", "layer", "idx",
                                            "kernel", "start_us", "dur_us"])
    for d, h, f in [(4096, 32, 11008), (2048, 16, 5504)]:
        for t in ((1, 16) if not quick else (1,)):
            layer_kernel_case(sink, d, h, f, t)


def layer_kernel_case(sink: Sink, d: int, h: int, f: int, t: int) -> None:
    stack = [Layer(d, h, f, t, 1024) for _ in range(4)]
    x = rnd(t, d)
    for sdpa in (False, True):
        run = stack_runner(stack, x, sdpa)
        run()
        graph = torch.cuda.CUDAGraph()
        run()
        torch.cuda.synchronize()
        with torch.cuda.graph(graph):
            run()
        graph.replay()
        for mode, fn in (("eager", run), ("graph", graph.replay)):
            ev = kernel_events(fn)
            per = max(1, len(ev) // len(stack))
            for i, (name, st, du) in enumerate(ev):
                sink.add(d_model=d, tokens=t, attn="sdpa" if sdpa else "math", mode=mode,
                         layer=i // per, idx=i % per, kernel=name[:90], start_us=st, dur_us=du)
        del graph


def warm_up(seconds: float) -> None:
    """Run large matmuls until the clocks have ramped up."""
    x = rnd(8192, 8192)
    t = time.time()
    while time.time() - t < seconds:
        for _ in range(20):
            torch.mm(x, x)
        torch.cuda.synchronize()


# ---------------------------------------------------------------- main

def main() -> int:
    out = Path(sys.argv[1])
    quick = "--quick" in sys.argv
    only = next((a.split("=", 1)[1].split(",") for a in sys.argv if a.startswith("--only=")), None)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.backends.cuda.matmul.allow_bf16_reduced_precision_reduction = True
    env = env_rows(out, "start", None)
    warm_up(3.0)  # the clocks idle at 345 MHz; the first run measured ramping clocks early on
    env_rows(out, "warm", env)
    t0 = time.time()
    sections = [("ceilings", lambda: ceilings(out)), ("overheads", lambda: overheads(out)),
                ("layers", lambda: layers(out, quick)), ("gemms", lambda: gemms(out, quick)),
                ("attention", lambda: attention(out, quick)),
                ("vector", lambda: vector_ops(out, quick)),
                ("layer_kernels", lambda: layer_kernels(out, quick))]
    for name, fn in sections:
        if only is not None and name not in only:
            continue
        t = time.time()
        try:
            fn()
        except Exception:  # noqa: BLE001 (keep the other sections' results)
            traceback.print_exc()
        torch.cuda.empty_cache()
        print(f"section {name}: {time.time() - t:.1f} s", flush=True)
    env_rows(out, "end", env)
    print(f"total {time.time() - t0:.1f} s")
    for name in ("env", "ceiling", "overhead", "layer"):
        path = out / f"{name}.csv"
        if path.exists():
            print(path.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())

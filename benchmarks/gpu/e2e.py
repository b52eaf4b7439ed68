"""Whole decode runs and layer-kernel sequences on one NVIDIA GPU (bf16, CUDA graphs).

What it measures (one CSV each, written to OUT_DIR):

- ``e2e.csv``    the cases of ``cases.py`` (shape x batch x context), each decoded
                 sequentially (one CUDA graph per token: embedding, N layers, final norm,
                 LM head, argmax) and by SPEED (one graph per stage step, the stages
                 occupied at each step read from ``cases.json``, i.e. the schedule speedsim
                 derives, flushes included). Time of the whole decode (31 tokens after the
                 first): events around the back-to-back graph replays, median of REPS runs.
                 Two SPEED harnesses: ``speed``, the ring step (``Model.ring_step``: a token
                 moves on by where its last layer writes, no copies; what validate.py
                 compares), and ``speed_roll``, the first harness (``Model.speed_step``:
                 the stages' hidden states copied, rolled and copied back every step, 3-4
                 small kernels more; measured beside it to show what the moves cost).
- ``steps.csv``  every distinct SPEED stage step (and the sequential token step) replayed
                 alone, back to back: its time, for diagnosis.
- ``seq.csv``    layer-kernel sequences: n consecutive decoder layers, each with its own
                 weights (DRAM-streamed) or all the same (L2-resident), in one graph, as a
                 decoding engine runs them, at M = 1..16 rows; the time per layer.
- ``clock.csv``  SM clock (nvidia-smi, sampled every 0.1 s) under a long bf16 matmul and
                 under a memory-bound decode loop: the sustained clocks.
- ``env.csv``    GPU, SMs, L2 size, driver, torch.

How one layer runs (``Model.layer``): LayerNorm, fused QKV ``F.linear``, the new K and V
copied into the cache at the current position, fused attention
(``scaled_dot_product_attention``) over the cache, out projection, residual add,
LayerNorm, fused gate+up ``F.linear``, ``gelu(gate) * up``, down projection, residual
add. KV caches are laid out ``[U, G, B, H, L, hd]`` (layer ``g*U + j`` at ``[j, g]``), so
that at SPEED layer step j the tokens of consecutive stages attend over one strided view,
one kernel for all of them, each token its own layer's K/V. The KV length of every step is
the context plus half the new tokens (the mean over the run; attention is linear in it).

Usage on the GPU machine: ``python3 e2e.py OUT_DIR CASES_JSON [--only SHAPE,...]``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

import measure  # beside this file: its Sink, median, nvidia-smi query and graph capture
from measure import Sink, median, nvsmi

DT = torch.bfloat16
DEV = "cpu" if os.environ.get("E2E_DRY") else "cuda"  # E2E_DRY=1: logic check without a GPU
REPS = 7
WARMUP = 2


def capture(fn):
    """``measure.capture`` (one CUDA graph); on the CPU dry run, ``fn`` itself."""
    return SimpleNamespace(replay=fn) if DEV == "cpu" else measure.capture(fn)


def time_sequence(graphs: list, reps: int = REPS) -> float:
    """Median ms of replaying ``graphs`` back to back (one decode run), over ``reps`` runs."""
    if DEV == "cpu":
        t = time.time()
        for g in graphs:
            g.replay()
        return (time.time() - t) * 1e3
    for _ in range(WARMUP):
        for g in graphs:
            g.replay()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        for g in graphs:
            g.replay()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    return median(times)


def rnd(*shape, scale=0.02):
    return torch.randn(*shape, device=DEV, dtype=DT) * scale


class Model:
    """A cycle-shared decoder: U weight sets, N = G * U layers, tied LM head."""

    def __init__(self, c: dict, batch: int, kv_len: int, sets: int | None = None):
        self.d, self.h, self.f = c["d_model"], c["n_heads"], c["d_ff"]
        self.U = sets or c["unique_layers"]
        self.G = c["n_layers"] // c["unique_layers"]
        self.B, self.L, self.dh = batch, kv_len, self.d // self.h
        d, f, U = self.d, self.f, self.U
        self.wqkv = [rnd(3 * d, d) for _ in range(U)]
        self.wo = [rnd(d, d) for _ in range(U)]
        self.wup = [rnd(2 * f, d) for _ in range(U)]
        self.wdown = [rnd(d, f) for _ in range(U)]
        self.ln = [(rnd(d, scale=1.0), rnd(d, scale=1.0)) for _ in range(2 * U + 1)]
        self.emb = rnd(c["vocab"], d)
        self.pos = rnd(kv_len + 1, d)
        cache = (U, self.G, batch, self.h, kv_len + 1, self.dh)
        self.k, self.v = rnd(*cache, scale=1.0), rnd(*cache, scale=1.0)
        self.x = rnd(self.G * batch, d, scale=1.0)      # SPEED: row block g = the token in stage g
        # the ring step's two buffers: G + 1 row blocks each (stage g's output at g + 1)
        self.ring = [rnd((self.G + 1) * batch, d, scale=1.0) for _ in range(2)]
        self.heads = torch.cat([torch.arange(batch, 2 * batch),
                                torch.arange(self.G * batch, (self.G + 1) * batch)]).to(DEV)
        self.ids = torch.zeros(2 * batch, dtype=torch.long, device=DEV)

    def layer(self, x, j: int, g0: int, g1: int, out=None):
        """One decoder layer with weight set j for the tokens of stages g0..g1-1 (rows of x);
        the last residual add writes into ``out`` when given (no copy after it)."""
        d, h, dh, f, L = self.d, self.h, self.dh, self.f, self.L
        m, k = x.shape[0], g1 - g0
        a = F.layer_norm(x, (d,), *self.ln[2 * j])
        qkv = F.linear(a, self.wqkv[j]).view(k, self.B, 3, h, dh)
        kc, vc = self.k[j, g0:g1], self.v[j, g0:g1]
        kc[:, :, :, L].copy_(qkv[:, :, 1])
        vc[:, :, :, L].copy_(qkv[:, :, 2])
        q = qkv[:, :, 0].reshape(m, h, 1, dh)
        o = F.scaled_dot_product_attention(q, kc.reshape(m, h, L + 1, dh),
                                           vc.reshape(m, h, L + 1, dh))
        x = x + F.linear(o.reshape(m, d), self.wo[j])
        b = F.layer_norm(x, (d,), *self.ln[2 * j + 1])
        u = F.linear(b, self.wup[j])
        return torch.add(x, F.linear(F.gelu(u[:, :f]) * u[:, f:], self.wdown[j]), out=out)

    def head(self, x):
        """Final norm, tied LM head, greedy argmax."""
        return F.linear(F.layer_norm(x, (self.d,), *self.ln[-1]), self.emb).argmax(-1)

    def embed(self, ids):
        return F.embedding(ids, self.emb) + self.pos[self.L]

    def sequential_step(self):
        B, U = self.B, self.U
        x = self.embed(self.ids[:B])
        for layer in range(self.G * U):
            x = self.layer(x, layer % U, layer // U, layer // U + 1)
        self.ids[:B].copy_(self.head(x))

    def speed_step(self, stages: tuple[int, ...]):
        """One stage step: the tokens of consecutive stages g0..g1-1 run U layers (GEMMs
        fused over all their rows); exit head for stage 0, final head for stage G-1 (one
        fused head when both); then every token moves one stage on and stage 0 takes the
        predicted token."""
        B, G = self.B, self.G
        g0, g1 = stages[0], stages[-1] + 1
        assert list(stages) == list(range(g0, g1)), stages
        x = self.x[g0 * B:g1 * B]
        for j in range(self.U):
            x = self.layer(x, j, g0, g1)
        self.x[g0 * B:g1 * B].copy_(x)
        heads = ([self.x[:B]] if g0 == 0 else []) + ([self.x[-B:]] if g1 == G else [])
        if heads:
            ids = self.head(torch.cat(heads) if len(heads) > 1 else heads[0])
            self.ids[:ids.shape[0]].copy_(ids)
        self.x.copy_(torch.roll(self.x, B, 0))
        if g0 == 0:
            self.x[:B].copy_(self.embed(self.ids[:B]))


    def ring_step(self, stages: tuple[int, ...], parity: int):
        """The same stage step as a serving engine would write it, with no moves: the
        tokens of stages g0..g1-1 read row blocks g0..g1-1 of one buffer and their last
        layer writes blocks g0+1..g1 of the other (a token moves on by where it is written;
        the buffers swap every step); the exit head reads block 1, the final head block G
        (one gather when both); argmax writes the ids in place; the predicted token's
        embedding is written into block 0. Kernels beyond the layers and heads: the
        gather in a step with both heads, and the embedding's add (as in sequential)."""
        B, G = self.B, self.G
        src, dst = self.ring[parity], self.ring[1 - parity]
        g0, g1 = stages[0], stages[-1] + 1
        assert list(stages) == list(range(g0, g1)), stages
        x = src[g0 * B:g1 * B]
        for j in range(self.U):
            x = self.layer(x, j, g0, g1, out=dst[(g0 + 1) * B:(g1 + 1) * B] if j == self.U - 1
                           else None)
        exit_, final = g0 == 0, g1 == G
        if exit_ and final:
            h = dst[B:3 * B] if G == 2 else dst.index_select(0, self.heads)
        elif exit_ or final:
            h = dst[B:2 * B] if exit_ else dst[G * B:(G + 1) * B]
        if exit_ or final:
            n = h.shape[0]
            torch.argmax(F.linear(F.layer_norm(h, (self.d,), *self.ln[-1]), self.emb), -1,
                         out=self.ids[:n])
        if exit_:
            torch.add(F.embedding(self.ids[:B], self.emb), self.pos[self.L], out=dst[:B])


def e2e_case(sink: Sink, steps_sink: Sink, c: dict) -> None:
    decode = c["new_tokens"] - 1
    m = Model(c, c["batch"], c["ctx"] + c["new_tokens"] // 2)
    key = dict(shape=c["shape"], batch=c["batch"], ctx=c["ctx"])
    g = capture(m.sequential_step)
    ms = time_sequence([g] * decode)
    sink.add(**key, strategy="sequential", steps=decode, tokens=decode, ms=ms)
    steps_sink.add(**key, stages="seq", ms=time_sequence([g] * 20) / 20)
    del g
    patterns = sorted({tuple(s) for s in c["speed_steps"]})
    graphs = {p: capture(lambda p=p: m.speed_step(p)) for p in patterns}
    ms = time_sequence([graphs[tuple(s)] for s in c["speed_steps"]])
    sink.add(**key, strategy="speed_roll", steps=len(c["speed_steps"]), tokens=decode, ms=ms)
    for p, gp in graphs.items():
        steps_sink.add(**key, stages="roll:" + "-".join(map(str, p)),
                       ms=time_sequence([gp] * 20) / 20)
    del graphs
    ring = {(p, q): capture(lambda p=p, q=q: m.ring_step(p, q)) for p in patterns for q in (0, 1)}
    ms = time_sequence([ring[tuple(s), i % 2] for i, s in enumerate(c["speed_steps"])])
    sink.add(**key, strategy="speed", steps=len(c["speed_steps"]), tokens=decode, ms=ms)
    for p in patterns:
        steps_sink.add(**key, stages="-".join(map(str, p)),
                       ms=time_sequence([ring[p, 0], ring[p, 1]] * 10) / 20)
    del ring, m
    torch.cuda.empty_cache()


def seq_case(sink: Sink, c: dict, rows: int, resident: bool, n: int = 8) -> None:
    """n consecutive layers at ``rows`` rows, KV 1024: distinct weights or one set."""
    m = Model(dict(c, n_layers=c["unique_layers"] * 1), rows, 1024, sets=1 if resident else n)
    m.G = 1
    x = rnd(rows, m.d, scale=1.0)

    def layers():
        y = x
        for i in range(n):
            y = m.layer(y, 0 if resident else i, 0, 1)
        return y
    g = capture(layers)
    ms = time_sequence([g] * 10) / 10
    sink.add(shape=c["shape"], rows=rows, resident=int(resident), layers=n, ms_per_layer=ms / n)
    del g, m
    torch.cuda.empty_cache()


class ClockSampler:
    """nvidia-smi's SM clock every 0.1 s while a workload runs."""

    def __init__(self):
        self.samples, self.stop = [], threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            self.samples.append(nvsmi("clocks.sm,power.draw"))
            time.sleep(0.1)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.t.join()


def clocks(sink: Sink, cases: list[dict]) -> None:
    x, w = rnd(8192, 8192, scale=1.0), rnd(8192, 8192, scale=1.0)
    torch.mm(x, w)
    torch.cuda.synchronize()
    with ClockSampler() as s:
        t = time.time()
        n = 0
        while time.time() - t < 4.0:
            for _ in range(20):
                torch.mm(x, w)
            torch.cuda.synchronize()
            n += 20
    el = time.time() - t
    tf = 2 * 8192 ** 3 * n / el / 1e12
    for i, v in enumerate(s.samples):
        sink.add(load="mm_8192", sample=i, value=v, tflop_s=tf)
    del x, w
    c = cases[0]
    m = Model(c, 1, c["ctx"])
    g = capture(m.sequential_step)
    with ClockSampler() as s:
        t = time.time()
        while time.time() - t < 3.0:
            for _ in range(50):
                g.replay()
            torch.cuda.synchronize()
    for i, v in enumerate(s.samples):
        sink.add(load=f"decode_{c['shape']}", sample=i, value=v, tflop_s=0)
    del g, m
    torch.cuda.empty_cache()


def env(out: Path) -> None:
    p = torch.cuda.get_device_properties(0)
    sink = Sink(out / "env.csv", ["key", "value"])
    for k, v in [("gpu", p.name), ("sm_count", p.multi_processor_count),
                 ("l2_bytes", getattr(p, "L2_cache_size", "n/a")),
                 ("total_memory_bytes", p.total_memory), ("torch", torch.__version__),
                 ("cuda", torch.version.cuda), ("driver", nvsmi("driver_version")),
                 ("clocks", nvsmi("clocks.sm,clocks.mem,clocks.max.sm,clocks.max.mem,"
                                  "power.limit,temperature.gpu"))]:
        sink.add(key=k, value=v)


def main() -> int:
    out, cases = Path(sys.argv[1]), json.loads(Path(sys.argv[2]).read_text())
    only = next((a.split("=", 1)[1].split(",") for a in sys.argv[3:] if a.startswith("--only=")),
                None)
    sections = [a.split("=", 1)[1].split(",") for a in sys.argv[3:] if a.startswith("--sections=")]
    sections = sections[0] if sections else ["env", "clock", "seq", "e2e"]
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cases = [c for c in cases if only is None or c["shape"] in only]
    t0 = time.time()
    if "env" in sections:
        env(out)
    if "clock" in sections:
        clocks(Sink(out / "clock.csv", ["load", "sample", "value", "tflop_s"]), cases)
        print(f"clocks {time.time() - t0:.1f} s", flush=True)
    if "seq" in sections:
        sink = Sink(out / "seq.csv", ["shape", "rows", "resident", "layers", "ms_per_layer"])
        seen = set()
        for c in cases:
            if c["shape"] in seen:
                continue
            seen.add(c["shape"])
            for rows in (1, 2, 4, 8, 16):
                for resident in (False, True):
                    seq_case(sink, c, rows, resident)
        print(f"seq {time.time() - t0:.1f} s", flush=True)
    if "e2e" in sections:
        sink = Sink(out / "e2e.csv", ["shape", "batch", "ctx", "strategy", "steps", "tokens", "ms"])
        steps = Sink(out / "steps.csv", ["shape", "batch", "ctx", "stages", "ms"])
        for c in cases:
            e2e_case(sink, steps, c)
            print(f"e2e {c['shape']} b{c['batch']} c{c['ctx']} {time.time() - t0:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

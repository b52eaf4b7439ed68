"""Regenerate ``reference.csv``: SCALE-Sim 3.0.0 compute cycles for a grid of GEMMs.

Run with a Python that has ``scalesim==3.0.0`` installed (not the project's venv)::

    python3 -m venv /tmp/scalesim-venv
    /tmp/scalesim-venv/bin/pip install scalesim==3.0.0 'numpy<2.4'
    /tmp/scalesim-venv/bin/python tests/scalesim/make_reference.py [--workers 8]

Each row is one SCALE-Sim run of a one-layer GEMM topology ``name, M, N, K,``
(SCALE-Sim's GEMM convention: ifmap M×K, filter K×N, ofmap M×N) in ``CALC``
interface-bandwidth mode, so memory never stalls the array. ``cycles`` is the
"Total Cycles" column of SCALE-Sim's COMPUTE_REPORT.csv; the run is rejected
if it reports stall cycles. ``tests/test_hw_systolic.py`` compares
``speedsim.hw.systolic.gemm_cycles`` with every row exactly.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import redirect_stdout
from pathlib import Path

HERE = Path(__file__).resolve().parent

ARRAYS = ((8, 8), (16, 16), (8, 32), (32, 8))  # rows x cols; non-square ones catch a swap
DATAFLOWS = ("ws", "os", "is")
# (M, K, N): decode-like (M = 1..8) and prefill-like (M >= 64), some not multiples of the array.
SHAPES = (
    (1, 64, 64), (1, 128, 96), (1, 100, 37), (1, 256, 64), (1, 32, 256),
    (2, 64, 128), (2, 96, 96), (3, 50, 70), (4, 128, 128), (4, 64, 200),
    (5, 33, 17), (6, 128, 64), (8, 64, 64), (8, 256, 128), (8, 17, 9),
    (1, 8, 8), (1, 1, 1), (8, 8, 32), (7, 40, 24),
    (64, 64, 64), (64, 128, 32), (64, 32, 128), (72, 64, 48), (100, 64, 64),
    (128, 64, 64), (128, 32, 96), (96, 48, 80), (64, 16, 16), (65, 33, 31),
    (128, 128, 16), (80, 8, 40), (256, 16, 32),
)

CONFIG = """[general]
run_name = ref

[architecture_presets]
ArrayHeight : {rows}
ArrayWidth : {cols}
IfmapSramSzkB : 1024
FilterSramSzkB : 1024
OfmapSramSzkB : 1024
IfmapOffset : 0
FilterOffset : 10000000
OfmapOffset : 20000000
Dataflow : {dataflow}
Bandwidth : 10
ReadRequestBuffer : 32
WriteRequestBuffer : 32

[layout]
IfmapCustomLayout : False
IfmapSRAMBankBandwidth : 10
IfmapSRAMBankNum : 10
IfmapSRAMBankPort : 2
FilterCustomLayout : False
FilterSRAMBankBandwidth : 10
FilterSRAMBankNum : 10
FilterSRAMBankPort : 2

[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40

[run_presets]
InterfaceBandwidth : CALC
UseRamulatorTrace : False
"""


def run_one(case: tuple[int, int, str, int, int, int]) -> dict:
    """One SCALE-Sim run; returns the reference row."""
    from scalesim.scale_sim import scalesim

    rows, cols, dataflow, m, k, n = case
    with tempfile.TemporaryDirectory() as tmp:
        cfg = os.path.join(tmp, "ref.cfg")
        topo = os.path.join(tmp, "gemm.csv")
        layout = os.path.join(tmp, "layout.csv")
        out = os.path.join(tmp, "out")
        os.mkdir(out)
        Path(cfg).write_text(CONFIG.format(rows=rows, cols=cols, dataflow=dataflow))
        Path(topo).write_text(f"Layer, M, N, K,\ng, {m}, {n}, {k},\n")
        Path(layout).write_text("Layer name,\n")
        with open(os.devnull, "w") as null, redirect_stdout(null):
            sim = scalesim(save_disk_space=True, verbose=False, config=cfg,
                           topology=topo, layout=layout, input_type_gemm=True)
            sim.run_scale(top_path=out)
        report = next(Path(out).rglob("COMPUTE_REPORT.csv"))
        header, values = [line.split(",") for line in report.read_text().splitlines()[:2]]
        fields = {h.strip(): v.strip() for h, v in zip(header, values)}
    assert float(fields["Stall Cycles"]) == 0, (case, fields)
    return {"rows": rows, "cols": cols, "dataflow": dataflow, "m": m, "k": k, "n": n,
            "cycles": int(float(fields["Total Cycles"]))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", type=Path, default=HERE / "reference.csv")
    args = parser.parse_args(argv)
    cases = [(r, c, df, m, k, n) for (r, c) in ARRAYS for df in DATAFLOWS for (m, k, n) in SHAPES]
    with ProcessPoolExecutor(args.workers) as pool:
        rows = list(pool.map(run_one, cases, chunksize=4))
    with args.out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())

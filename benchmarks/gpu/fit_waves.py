"""The per-wave time of fused decode attention, fitted to its kernels (``attention_waves``).

``kernels.py`` times every kernel of every distinct SPEED ring step of a case
(``results/<gpu>/kernels_<shape>_b<batch>_c<ctx>.csv``, eager, torch.profiler). The fused
attention of a step (cuDNN's SDPA flash kernel) runs one thread block per (sequence row,
head): rows x heads blocks, with rows = batch x the stages in flight. At short KV its time
follows the waves those blocks take over the SMs (``sm_count`` of ``env.csv``), not its
bytes (docs/calibration.md §7): one wave up to 132 blocks, two up to 264, three up to 396.
The fit is least squares of ``t = a + wave_ns · (waves − 1)`` over every step of the kernels
files at short KV (context ``SHORT_CTX``: KV 145, L2-resident); ``a`` (the kernel at one
wave) is the part the per-item overheads already hold, ``wave_ns`` the config value. At
context 2048 (KV 2065) each block streams its row's keys from HBM and the kernel's time
follows its bytes (s01b_l2 batch 4 on the H100: 18, 40 and 61 µs at one, two and three
waves, about its 68-203 MB at the achievable bandwidth), which speedsim charges as the
item's KV stream; those files are not fitted. Run ``python benchmarks/gpu/fit_waves.py GPU``
(no GPU needed): it prints the fit and each step's residual.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from cases import SHAPES  # noqa: E402  (beside this file)

SHORT_CTX = 128  # the contexts whose attention is fitted (module docstring)
ATTENTION = "sdpa"  # in the fused attention kernel's name (cuDNN: ..._sdpa_..._flash_fprop_...)


def sm_count(gpu_dir: Path) -> int:
    """The GPU's SMs, as ``measure.py`` recorded them (``env.csv``)."""
    env = pd.read_csv(gpu_dir / "env.csv").set_index("key").value
    return int(env["sm_count"])


def attention_steps(gpu_dir: Path) -> pd.DataFrame:
    """One row per (file, step pattern): rows, blocks and the fused attention's µs (the mean
    of its kernels in the step, one per layer step)."""
    out = []
    for path in sorted(gpu_dir.glob(f"kernels_*_c{SHORT_CTX}.csv")):
        df = pd.read_csv(path)
        df = df[df.kernel.str.contains(ATTENTION)]
        for (shape, batch, stages), g in df.groupby(["shape", "batch", "stages"]):
            rows = batch * len(str(stages).split("-"))
            out.append(dict(file=path.name, stages=stages, rows=rows,
                            blocks=rows * SHAPES[shape]["n_heads"], us=g.us.mean()))
    return pd.DataFrame(out)


def fit(gpu_dir: Path) -> tuple[float, float, pd.DataFrame]:
    """(a, wave_ns, the steps with their waves and residuals)."""
    df = attention_steps(gpu_dir)
    if df.empty:
        raise SystemExit(f"no kernels_*.csv with fused attention under {gpu_dir}")
    df["waves"] = -(-df.blocks // sm_count(gpu_dir))
    A = np.c_[np.ones(len(df)), df.waves - 1]
    (a, w), *_ = np.linalg.lstsq(A, df.us.to_numpy(), rcond=None)
    df["fit_us"] = a + w * (df.waves - 1)
    df["err"] = df.fit_us / df.us - 1
    return a, w * 1e3, df


def main(argv: list[str]) -> int:
    gpu = argv[1] if len(argv) > 1 else "h200"
    a, wave_ns, df = fit(HERE / "results" / gpu)
    print(df.round({"us": 3, "fit_us": 3, "err": 3}).to_string(index=False))
    print(f"{gpu}: one wave {a:.3f} us; wave_ns = {wave_ns:.0f} "
          f"(worst step {df.err.abs().max():.1%}, {len(df)} steps)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

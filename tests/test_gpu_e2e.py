"""speedsim against whole decode runs measured on real GPUs (benchmarks/gpu/e2e.py).

Every case of ``benchmarks/gpu/cases.py`` measured on a GPU is simulated on that GPU's
shipped config: sequential and SPEED decode time within 10 % of the measurement and SPEED's
speedup within 5 % (issue 29), the small model that fits in the L2 included. The measured
CSVs are committed; a GPU without them is an error, not a skip.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GPUS = ("h100", "h200")


def _validate():
    spec = importlib.util.spec_from_file_location("gpu_validate", ROOT / "benchmarks/gpu/validate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module", params=GPUS)
def compared(request):
    return request.param, _validate().compare(request.param)


def test_every_case_was_measured(compared):
    gpu, df = compared
    cases = _validate()._cases()
    assert sorted(map(tuple, df[["shape", "batch", "ctx"]].values.tolist())) == \
        sorted(cases.case_ids()), gpu


def test_decode_times_within_10_percent(compared):
    gpu, df = compared
    for col in ("err_sequential", "err_speed"):
        worst = df.loc[df[col].abs().idxmax()]
        assert abs(worst[col]) <= 0.10, (gpu, col, worst.to_dict())


def test_speedup_within_5_percent(compared):
    gpu, df = compared
    worst = df.loc[df.err_speedup.abs().idxmax()]
    assert abs(worst.err_speedup) <= 0.05, (gpu, worst.to_dict())

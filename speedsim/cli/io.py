"""Every file the commands write goes through here (atomically: whole or absent).

- ``write_run``: the result directory of ``speedsim run --out`` (DESIGN §9);
- ``write_csv``: one table (``speedsim trace --out``);
- ``save_figure``: a figure as PNG or SVG (``speedsim plot``, ``plot pareto``);
- ``ReferenceCache`` (from ``speedsim.report.io``): the reference runs kept by
  ``run --cache-dir`` (one ``<key>.npz`` per key of
  ``speedsim.model.reference_cache.reference_key``).

The atomic writers themselves are ``speedsim.report.io`` (the sweep's result
store appends through them too).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from speedsim.report.io import (ReferenceCache, write_atomic, write_csv_atomic,  # noqa: F401
                                write_json_atomic, write_text_atomic)
from speedsim.report.timeline import chrome_trace


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    write_csv_atomic(frame, path)


def write_run(result, out: Path) -> None:
    """The four result files of DESIGN §9 (plus the plans' per-item tables for plots)."""
    timeline = chrome_trace({n: (r.plan, r.sim) for n, r in result.runs.items()},
                            result.hw.clock_hz)
    config_text = yaml.safe_dump(result.resolved_config(), sort_keys=False)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(result.summary, out / "summary.json")
    write_csv_atomic(result.tokens, out / "tokens.csv")
    write_json_atomic(timeline, out / "timeline.json")
    write_text_atomic(config_text, out / "resolved_config.yaml")
    for name, frame in result.saved_tables().items():
        write_csv_atomic(frame, out / name)


def save_figure(fig, out: Path, fmt: str, dpi: int) -> Path:
    """Write ``fig`` as ``fmt`` (png | svg) to ``out``."""
    write_atomic(out, lambda fh: fig.savefig(fh, format=fmt, dpi=dpi), binary=True)
    return out


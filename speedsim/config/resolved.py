"""A run's recorded configuration (``resolved_config.yaml``), read back to run it again.

``speedsim run --out DIR`` writes ``{hw: …, workload: …}``: both configs with
every default filled in and every file path absolute, so the file alone
reproduces the run from any folder. Errors name the file and the full key
path (``hw.dram.bandwidth_gb_s``), as ``--set`` writes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from speedsim.config.errors import ConfigError
from speedsim.config.hw import Hardware, hardware_from_dict
from speedsim.config.loader import apply_overrides, blaming_overrides, load_mapping
from speedsim.config.workload import Workload, workload_from_dict

SECTIONS = ("hw", "workload")


def is_run_config(path: str | Path) -> bool:
    """True when ``path`` holds a mapping with exactly the keys ``hw`` and ``workload``."""
    try:
        return set(load_mapping(path)) == set(SECTIONS)
    except ConfigError:
        return False


def load_run_config(path: str | Path, hw_overrides: list[tuple[str, Any]] = (),
                    wl_overrides: list[tuple[str, Any]] = ()) -> tuple[Hardware, Workload]:
    path = Path(path)
    data = load_mapping(path)
    for key in set(data) - set(SECTIONS):
        raise ConfigError(f"unknown key {key!r} (a run config holds hw and workload)",
                          file=str(path), key=key)
    for key in SECTIONS:
        if not isinstance(data.get(key), dict):
            raise ConfigError("required mapping is missing", file=str(path), key=key)
    hw_data = apply_overrides(data["hw"], hw_overrides, root=Hardware)
    wl_data = apply_overrides(data["workload"], wl_overrides, root=Workload)
    hw = blaming_overrides(lambda: _prefixed("hw", lambda: hardware_from_dict(
        hw_data, file=str(path))), [(f"hw.{k}", v) for k, v in hw_overrides], "")
    wl = blaming_overrides(lambda: _prefixed("workload", lambda: workload_from_dict(
        wl_data, file=str(path), base_dir=path.parent)),
        [(f"workload.{k}", v) for k, v in wl_overrides], "")
    return hw, wl


def _prefixed(section: str, build):
    try:
        return build()
    except ConfigError as exc:
        raise ConfigError(exc.message, file=exc.file,
                          key=f"{section}.{exc.key}" if exc.key else section) from None

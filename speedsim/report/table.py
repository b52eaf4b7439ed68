"""The side-by-side terminal table of a run (rich)."""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Console
from rich.table import Table

ROWS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("TTFT", lambda m: m["ttft_s"] * 1e3, "{:.3f} ms"),
    ("decode time", lambda m: m["decode_time_s"] * 1e3, "{:.3f} ms"),
    ("time per token", lambda m: m["time_per_token_s"] * 1e6, "{:.1f} µs"),
    ("inter-token p50 / p99", lambda m: (m["inter_token_p50_s"] * 1e6, m["inter_token_p99_s"] * 1e6),
     "{:.1f} / {:.1f} µs"),
    ("tokens/s (batch)", lambda m: m["tokens_per_s"], "{:,.1f}"),
    ("cycles", lambda m: m["cycles"], "{:,}"),
    ("array utilization", lambda m: m["array_utilization"] * 100, "{:.1f} %"),
    ("vector utilization", lambda m: m["vector_utilization"] * 100, "{:.1f} %"),
    ("DRAM bandwidth util.", lambda m: m["dram_bandwidth_utilization"] * 100, "{:.1f} %"),
    ("DRAM traffic", lambda m: m["dram_bytes"] / 2**20, "{:,.2f} MiB"),
    ("  weights", lambda m: m["dram_bytes_by_kind"]["weight_bytes"] / 2**20, "{:,.2f} MiB"),
    ("  KV reads + writes", lambda m: (m["dram_bytes_by_kind"]["kv_read_bytes"]
                                       + m["dram_bytes_by_kind"]["kv_write_bytes"]) / 2**20,
     "{:,.2f} MiB"),
    ("MACs", lambda m: m["macs"] / 1e9, "{:,.3f} G"),
    ("energy", lambda m: m["energy_j"]["total"] * 1e3, "{:.3f} mJ"),
    ("  DRAM / SRAM / compute", lambda m: tuple(m["energy_j"][k] * 1e3
                                                for k in ("dram", "sram", "compute")),
     "{:.3f} / {:.3f} / {:.3f} mJ"),
    ("  vector / static", lambda m: tuple(m["energy_j"][k] * 1e3 for k in ("vector", "static")),
     "{:.3f} / {:.3f} mJ"),
    ("energy per token", lambda m: m["energy_per_token_j"] * 1e6, "{:.2f} µJ"),
    ("wasted energy", lambda m: m["energy_j"].get("wasted", 0.0) * 1e3, "{:.3f} mJ"),
    ("bound: DRAM/array/vec/lat.",
     lambda m: tuple(m["bound_by"][k] * 100 for k in ("dram", "array", "vector", "latency")),
     "{:.0f} / {:.0f} / {:.0f} / {:.0f} %"),
]

SPEC_ROWS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("launched / committed / flushed", lambda s: (s["launched"], s["committed"], s["flushed"]),
     "{} / {} / {}"),
    ("acceptance rate", lambda s: s["acceptance_rate"] * 100, "{:.1f} %"),
    ("mean tokens in flight", lambda s: s["mean_tokens_in_flight"], "{:.2f}"),
]


def _fmt(fmt: str, value: Any) -> str:
    return fmt.format(*value) if isinstance(value, tuple) else fmt.format(value)


def summary_table(summary: dict[str, Any]) -> Table:
    names = list(summary["strategies"])
    table = Table(title=f"speedsim: {summary['workload']} on {summary['hardware']}",
                  title_justify="left")
    table.add_column("metric")
    for n in names:
        table.add_column(n, justify="right")
    for label, get, fmt in ROWS:
        table.add_row(label, *(_fmt(fmt, get(summary["strategies"][n])) for n in names))
    table.add_row("roofline decode bound",
                  *(f"{summary['roofline'][n] * 1e3:.3f} ms" for n in names))
    table.add_row("fraction of roofline",
                  *(f"{summary['roofline_fraction'][n] * 100:.1f} %" for n in names))
    if any("speculation" in summary["strategies"][n] for n in names):
        for label, get, fmt in SPEC_ROWS:
            table.add_row(label, *(_fmt(fmt, get(summary["strategies"][n]["speculation"]))
                                   if "speculation" in summary["strategies"][n] else "—"
                                   for n in names))
    table.add_row("[bold]decode speedup vs sequential",
                  *(f"[bold]{summary['speedup'][n]:.2f}×" for n in names))
    table.add_row("tokens match", *(str(summary["tokens_match"]) for _ in names))
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        # rich falls back to 80 columns off a terminal (pipes, CI logs): too narrow for
        # the labels and two or more strategy columns
        console.width = max(console.width, 40 + 26 * len(summary["strategies"]))
    console.print(summary_table(summary))

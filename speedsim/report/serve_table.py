"""The terminal table of a serving run (``speedsim serve``): one column per strategy."""

from __future__ import annotations

from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from speedsim.report.units import human

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _dist(key: str, q: str) -> Callable[[dict[str, Any]], str]:
    return lambda m: human(m[key][q], "s")


ROWS: tuple[Row, ...] = (
    ("requests", lambda m: f"{m['requests']:,}"),
    *((f"TTFT {q}", _dist("ttft_s", q)) for q in ("p50", "p99")),
    *((f"TPOT {q}", _dist("tpot_s", q)) for q in ("p50", "p90", "p99")),
    *((f"end-to-end {q}", _dist("e2e_s", q)) for q in ("p50", "p99")),
    ("queueing mean", _dist("queueing_s", "mean")),
    ("throughput", lambda m: f"{m['throughput_tokens_per_s']:,.1f} tok/s"),
    ("goodput (SLO met)", lambda m: f"{m['goodput_rps']:.3g} req/s ({m['slo_attainment'] * 100:.0f} %)"),
    ("mean batch", lambda m: f"{m['mean_batch']:.2f} ({m['batch_occupancy'] * 100:.0f} %)"),
    ("energy per token", lambda m: human(m["energy_per_token_j"], "J")),
    ("iterations (replayed)", lambda m: f"{m['memo']['iterations']:,} ({m['memo']['replays']:,})"),
)


def serve_table(summary: dict[str, Any]) -> Table:
    names = list(summary["strategies"])
    table = Table(title=f"speedsim serve: {summary['workload']} on {summary['hardware']}, "
                        f"traffic {summary['traffic']}", title_justify="left")
    table.add_column("metric")
    for n in names:
        table.add_column(n, justify="right")
    for label, get in ROWS:
        table.add_row(label, *(get(summary["strategies"][n]) for n in names))
    if all("throughput_vs_sequential" in summary["strategies"][n] for n in names):
        table.add_row("[bold]throughput vs sequential",
                      *(f"[bold]{summary['strategies'][n]['throughput_vs_sequential']:.3f}x"
                        for n in names))
    return table


def print_serve_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        console.width = max(console.width, 30 + 22 * len(summary["strategies"]))
    console.print(serve_table(summary))

"""The side-by-side terminal table of a run (rich): one column per strategy, fitting an
80-column terminal with all five; a caption says what the roofline fraction means."""

from __future__ import annotations

from typing import Any, Callable

from rich import box
from rich.console import Console
from rich.table import Table

from speedsim.report.units import human, human_many

Row = tuple[str, Callable[[dict[str, Any]], str]]


def _kind_bytes(m: dict[str, Any], *kinds: str) -> float:
    return sum(m["dram_bytes_by_kind"][k] for k in kinds)


def rows(m: dict[str, Any]) -> list[Row]:
    """The table's rows for strategies whose metrics are like ``m``: a row per compute
    unit (its ``<unit>_utilization``) and per unit energy part (``energy_j``'s keys
    between ``sram`` and ``static``), in the summary's order."""
    units = [k.removesuffix("_utilization") for k in m
             if k.endswith("_utilization") and k != "dram_bandwidth_utilization"]
    energy = list(m["energy_j"])
    parts = energy[energy.index("sram") + 1:energy.index("static")]
    return [*ROWS[:_UTIL_AT], *(_util_row(u) for u in units), *ROWS[_UTIL_AT:_ENERGY_AT],
            *(_energy_row(p, p) for p in parts), *ROWS[_ENERGY_AT:]]


def _util_row(unit: str) -> Row:
    return (f"{unit} util.", lambda m: f"{m[f'{unit}_utilization'] * 100:.1f} %")


def _energy_row(label: str, key: str) -> Row:
    return (f"  {label}", lambda m: human(m["energy_j"][key], "J"))


# the rows every table has; the units' rows go in at _UTIL_AT and _ENERGY_AT (``rows``)
ROWS: list[Row] = [
    ("TTFT", lambda m: human(m["ttft_s"], "s")),
    ("decode time", lambda m: human(m["decode_time_s"], "s")),
    ("time per token", lambda m: human(m["time_per_token_s"], "s")),
    ("inter-token p50", lambda m: human(m["inter_token_p50_s"], "s")),
    ("inter-token p99", lambda m: human(m["inter_token_p99_s"], "s")),
    ("tokens/s (batch)", lambda m: f"{m['tokens_per_s']:,.1f}"),
    ("cycles", lambda m: human(m["cycles"], "")),
    ("DRAM bandwidth util.", lambda m: f"{m['dram_bandwidth_utilization'] * 100:.1f} %"),
    ("DRAM traffic", lambda m: human(m["dram_bytes"], "B")),
    ("  weights", lambda m: human(_kind_bytes(m, "weight_bytes"), "B")),
    ("  KV reads + writes", lambda m: human(_kind_bytes(m, "kv_read_bytes", "kv_write_bytes"), "B")),
    ("MACs", lambda m: human(m["macs"], "")),
    ("energy", lambda m: human(m["energy_j"]["total"], "J")),
    _energy_row("DRAM", "dram"),
    _energy_row("SRAM", "sram"),
    _energy_row("static", "static"),
    ("energy per token", lambda m: human(m["energy_per_token_j"], "J")),
    ("wasted energy", lambda m: human(m["energy_j"].get("wasted", 0.0), "J")),
    ("bound by (share)", lambda m: _bound_by(m["bound_by"])),
]
_UTIL_AT = [label for label, _ in ROWS].index("DRAM bandwidth util.")
_ENERGY_AT = [label for label, _ in ROWS].index("  static")

SPEC_ROWS: list[Row] = [
    ("launched", lambda s: f"{s['launched']}"),
    ("  committed", lambda s: f"{s['committed']}"),
    ("  flushed", lambda s: f"{s['flushed']}"),
    ("acceptance rate", lambda s: f"{s['acceptance_rate'] * 100:.1f} %"),
    ("  expected (± s.e.)", lambda s: f"{s['expected_acceptance_rate'] * 100:.1f}±"
                                      f"{s['acceptance_stderr'] * 100:.1f}%"),
    ("mean tokens in flight", lambda s: f"{s['mean_tokens_in_flight']:.2f}"),
    ("accepted per verify", lambda s: f"{s['mean_accepted_per_step']:.2f}"),
    ("  if i.i.d.", lambda s: f"{s['expected_accepted_per_step']:.2f}"),
]

BOUND_NOTE = ("roofline bound: the least decode time this plan's dependencies, its busiest "
              "unit and the weight traffic a weight buffer of this size cannot avoid allow; "
              "achieved = bound / decode time (100 %: nothing left to gain on this hardware).")
def _bound_by(shares: dict[str, float]) -> str:
    """The resource critical the longest, and its share: ``array 99 %``."""
    name = max(shares, key=shares.get)
    return f"{'DRAM' if name == 'dram' else name} {shares[name] * 100:.0f}%"


def _header(name: str) -> str:
    """A strategy's column header, breakable at its underscores (``early exit spec``)."""
    return name.replace("_", " ")


def _speedup(value: Any) -> str:
    """``2.47×``; ``—`` where there is no sequential run to compare with."""
    return "—" if value is None else f"{value:.2f}×"


def _cell(get: Callable[[dict[str, Any]], str], section: dict[str, Any] | None) -> str:
    """One strategy's cell; "—" where the strategy has no such figure."""
    try:
        return get(section) if section is not None else "—"
    except (KeyError, TypeError):
        return "—"


def _match(summary: dict[str, Any], m: dict[str, Any]) -> str:
    """Lossless strategies: the run's ``tokens_match``; lossy ones: how many tokens differ."""
    q = m.get("quality")
    if q is None:
        return str(summary["tokens_match"])
    n = q.get("differing_tokens")
    return "lossy" if n is None else f"lossy ({n})"


def summary_table(summary: dict[str, Any]) -> Table:
    """One column per strategy, laid out to fit 80 terminal columns with five strategies:
    one number per cell, no vertical rules, headers broken at their underscores."""
    names = list(summary["strategies"])
    table = Table(title=f"speedsim: {summary['workload']} on {summary['hardware']}",
                  title_justify="left", box=box.SIMPLE_HEAD, padding=0,
                  pad_edge=False, caption=BOUND_NOTE, caption_justify="left")
    table.add_column("metric", no_wrap=True)
    for n in names:
        table.add_column(_header(n), justify="right", min_width=10)
    for label, get in rows(summary["strategies"][names[0]]):
        table.add_row(label, *(get(summary["strategies"][n]) for n in names))
    table.add_row("roofline bound", *(human(summary["roofline"][n], "s") for n in names))
    table.add_row("  achieved", *(f"{summary['roofline_fraction'][n] * 100:.1f} %" for n in names))
    if any("speculation" in summary["strategies"][n] for n in names):
        for label, get in SPEC_ROWS:
            table.add_row(label, *(_cell(get, summary["strategies"][n].get("speculation"))
                                   for n in names))
    table.add_row("[bold]speedup vs sequential",
                  *(f"[bold]{_speedup(summary['speedup'].get(n))}" for n in names))
    table.add_row("tokens match", *(_match(summary, summary["strategies"][n]) for n in names))
    return table


def print_summary(summary: dict[str, Any], console: Console | None = None) -> None:
    if console is None:
        console = Console()
        # rich falls back to 80 columns off a terminal (pipes, CI logs); the table fits
        # them with five strategies, and a wider terminal is used as it is
        console.width = max(console.width, 80)
    console.print(summary_table(summary))

"""Terminal rendering for the CLI: a contract's status as a table with RAG colours (rich).

>>> # print_status(services, contract, contract.parse_period("2019/20 Q3"))
"""

from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table

from kpibot.engine.describe import POSITION_WORDS, format_value, trend_text
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import compiled

RAG_STYLE = {"green": "bold green", "amber": "bold yellow", "red": "bold red", "grey": "dim"}


def print_status(
    services: object, contract: Contract, period: Period, console: Console | None = None
) -> None:
    """Every KPI at ``period`` with value, target, tolerance, position, RAG and trend."""
    console = console or Console()
    card = services.scorecard(contract, period)  # type: ignore[attr-defined]
    rows = card.at(period)
    comp = compiled(contract)
    year = contract.year_for(period)
    table = Table(
        title=f"{contract.name} ({contract.id}) · {period.label}"
        + (f" · {year.name}" if year else ""),
        show_lines=False,
        expand=False,
    )
    for col in (
        "KPI",
        "Measure",
        "Period",
        "Value",
        "Target",
        "Tolerance",
        "Position",
        "RAG",
        "Trend",
        "Critical",
    ):
        table.add_column(col, overflow="fold", max_width=44 if col == "Measure" else None)
    counts = {"green": 0, "amber": 0, "red": 0, "grey": 0}
    for r in rows.itertuples(index=False):
        kpi = contract.kpi(r.kpi)
        unit = comp[r.kpi].unit
        counts[r.rag] += 1
        terms = comp[r.kpi].years.get(r.year)
        tol = terms.tolerance.text if terms and terms.tolerance else ""
        value = format_value(None if math.isnan(r.value) else r.value, unit)
        if not math.isnan(r.ytd_value):
            value += (
                f" (YTD {format_value(r.ytd_value, unit)} vs {format_value(r.ytd_target, unit)})"
            )
        table.add_row(
            r.kpi,
            kpi.name,
            r.period,
            value,
            str(r.target),
            tol,
            POSITION_WORDS[r.position],
            f"[{RAG_STYLE[r.rag]}]● {r.rag}[/]",
            trend_text(r.trend),
            "[bold red]CRITICAL[/]" if r.critical else "",
        )
    console.print(table)
    console.print(
        f"[bold red]{counts['red']} red[/]  [bold yellow]{counts['amber']} amber[/]  "
        f"[bold green]{counts['green']} green[/]  [dim]{counts['grey']} grey[/]"
    )

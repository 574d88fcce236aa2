"""``kpibot payments CONTRACT [--year N]`` and ``kpibot compliance CONTRACT``: rich tables.

The same reports as ``/kpi payments`` and ``/kpi compliance`` (``kpibot.features.payments`` and ``kpibot.features.compliance``), for the terminal.

>>> # kpibot.cli calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from kpibot.cli.base import UserError, services_for

if TYPE_CHECKING:
    from kpibot.core.services import Services
    from kpibot.engine.model import Contract

STATUS_STYLE = {
    "guaranteed": "green",
    "earned": "bold green",
    "on_track": "green",
    "at_risk": "bold yellow",
    "not_earned": "bold red",
    "withheld": "bold red",
}
RETURN_STYLE = {"on_time": "green", "late": "yellow", "missing": "bold red", "not_due": "dim"}


def _contract(services: Services, contract_id: str) -> Contract:
    from kpibot.core import texts
    from kpibot.files.figures import suggest

    contract = services.contract(contract_id)
    if contract is None:
        hint = suggest(contract_id, services.contracts.ids())
        if not services.contracts.ids():
            hint += (
                " No contracts are loaded yet: run `kpibot contracts load config/contracts` first."
            )
        raise UserError(texts.UNKNOWN_CONTRACT.format(contract=contract_id, hint=hint))
    return contract


def cmd_payments(args: argparse.Namespace) -> int:
    from kpibot.engine.payments import STATUS_WORDS
    from kpibot.features.payments import (
        NO_ACV,
        NO_PAYMENT_TERMS,
        default_year,
        find_year,
        payment_report,
        totals_line,
    )

    services = services_for(args)
    contract = _contract(services, args.contract)
    if not contract.payments.has_money:
        raise UserError(NO_PAYMENT_TERMS.format(contract=contract.id))
    year = (
        find_year(contract, args.year)
        if args.year is not None
        else default_year(contract, services.now().date())
    )
    if isinstance(year, str):
        raise UserError(year)
    report = payment_report(services, contract, year)
    console = Console()
    table = Table(
        title=f"{contract.name} ({contract.id}) · payments · {report.year_name}", show_lines=True
    )
    for col in ("Item", "Status", "Amount", "Reason"):
        table.add_column(col, overflow="fold", max_width=70 if col == "Reason" else None)
    for line in report.lines:
        style = STATUS_STYLE[line.status]
        crit = " [bold red]CRITICAL[/]" if line.critical else ""
        table.add_row(
            line.item,
            f"[{style}]{STATUS_WORDS[line.status]}[/]{crit}",
            report.amount(line.share),
            line.reason,
        )
    console.print(table)
    console.print(f"[bold]{report.verdict()}[/]")
    console.print(totals_line(report))
    if report.acv is None:
        console.print(f"[dim]{NO_ACV}[/]")
    for text in (*report.readings, *report.notes):
        console.print(f"• {text}")
    return 0


def cmd_compliance(args: argparse.Namespace) -> int:
    from kpibot.engine.calendar import LONDON
    from kpibot.features.compliance import compliance_report

    services = services_for(args)
    report = compliance_report(services, _contract(services, args.contract))
    console = Console()
    console.print(f"[bold]{report.contract.name} ({report.contract.id}) · compliance[/]")
    console.print("[bold]Data submission[/]")
    for text in report.submission_lines():
        console.print(f"  {text}")
    console.print("[bold]Service rating[/]")
    for text in report.rating_lines():
        console.print(f"  {text}")
    for text in report.extra:
        console.print(f"  {text}")
    records = report.submissions.records if report.submissions is not None else ()
    if records:
        table = Table(title="Returns")
        for col in ("Return", "Due", "Received", "Status", "Amended figures"):
            table.add_column(col)
        for r in records:
            got = (
                "—"
                if r.received_at is None
                else f"{r.received_at.astimezone(LONDON):%-d %b %Y %H:%M}"
            )
            style = RETURN_STYLE[r.status]
            table.add_row(
                f"{r.label} ({r.name})",
                f"{r.due_at.astimezone(LONDON):%-d %b %Y}",
                got,
                f"[{style}]{r.status.replace('_', ' ')}[/]",
                "—" if r.received_at is None else f"{r.amended} of {r.figures}",
            )
        console.print(table)
    return 0


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``payments`` and ``compliance`` to the ``kpibot`` parser."""
    p = add(
        "payments",
        cmd_payments,
        "Show what a contract pays in a contract year: guaranteed, earned, on track, at risk, "
        "not earned and withheld, each with the clause and figures behind it.",
    )
    p.add_argument("contract", help="contract id, e.g. one-you-lifestyle")
    p.add_argument(
        "--year",
        help="contract year: a number like 0 or 2, or a period like 2019/20 "
        "(default: the year holding today)",
    )
    db_arg(p)
    p = add(
        "compliance",
        cmd_compliance,
        "Show a contract's data-submission KPIs (timeliness, accuracy, service failure) and its "
        "service-level RAG rating, from the submission records.",
    )
    p.add_argument("contract", help="contract id, e.g. one-you-lifestyle")
    db_arg(p)

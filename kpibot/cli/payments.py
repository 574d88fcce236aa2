"""``kpibot payments CONTRACT [--year N]`` and ``kpibot compliance CONTRACT``: rich tables.

The same reports as ``/kpi payments`` and ``/kpi compliance`` (``kpibot.features.payments`` and ``kpibot.features.compliance``), for the terminal.

>>> # kpibot.cli calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
import sys
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
LINE_STYLE = {
    "charged": "bold red",
    "waived": "dim",
    "suspended": "dim",
    "earned": "bold green",
    "not_earned": "yellow",
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
    terms = contract.payments
    wants_ledger = args.month is not None or args.quarter is not None
    if terms.has_sanctions and (wants_ledger or not terms.has_money):
        return print_ledger(services, contract, args)
    if wants_ledger:
        from kpibot.features.sanctions import NO_SANCTIONS

        raise UserError(NO_SANCTIONS.format(contract=contract.id))
    if args.format == "csv":
        from kpibot.features.sanctions import CSV_FOR_LEDGER

        raise UserError(CSV_FOR_LEDGER.format(contract=contract.id))
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


def print_ledger(services: Services, contract: Contract, args: argparse.Namespace) -> int:
    """The sanctions ledger for a month or quarter: a table, or CSV on stdout."""
    import csv

    from kpibot.features.sanctions import (
        BY_MONTH,
        CSV_COLUMNS,
        MONTH_ONLY,
        QUARTER_ONLY,
        default_month,
        ledger,
        ledger_rows,
        line_note,
        month_range,
    )
    from kpibot.files.exports import formula_safe

    if args.year is not None and not contract.payments.has_money:
        raise UserError(BY_MONTH.format(contract=contract.id))
    text = args.quarter or args.month
    if text is None:
        months = [default_month(contract, services.now().date())]
    else:
        found = month_range(contract, text)
        if isinstance(found, str):
            raise UserError(found)
        if args.month is not None and len(found) != 1:
            raise UserError(MONTH_ONLY.format(text=text))
        if args.quarter is not None and len(found) != 3:
            raise UserError(QUARTER_ONLY.format(text=text))
        months = found
    result = ledger(services, contract, months)
    if args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for row in ledger_rows(result):
            writer.writerow([formula_safe(cell) for cell in row])
        return 0
    console = Console()
    span = months[0].label if len(months) == 1 else f"{months[0].label} to {months[-1].label}"
    table = Table(title=f"{contract.name} ({contract.id}) · sanctions · {span}", show_lines=True)
    for col in ("Month", "Rule", "Events or figures", "Points", "Amount", "Clause", "Why"):
        table.add_column(col, overflow="fold", max_width=60 if col == "Why" else 28)
    for line in result.lines:
        style = LINE_STYLE.get(line.status, "")
        refs = ", ".join(line.events[:8]) + (
            f" …and {len(line.events) - 8} more" if len(line.events) > 8 else ""
        )
        table.add_row(
            line.month,
            f"[{style}]{line.rule}[/]" if style else line.rule,
            refs,
            str(line.points) if line.points else "",
            line.amount.text() if line.amount else "",
            line.clause,
            line_note(line),
        )
    console.print(table)
    console.print(f"[bold]{result.verdict()}[/]")
    if len(result.months) > 1:
        for m in result.months:
            console.print(m.verdict())
    for r in result.months[-1].rolling if result.months else ():
        console.print(r.sentence())
    console.print(
        "[dim]Amounts are the effect on the provider's payment: a deduction is negative.[/]"
    )
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
        "Show what a contract pays in a contract year (guaranteed, earned, on track, at risk, "
        "not earned, withheld), or its sanctions ledger for a month or quarter (every deduction, "
        "credit and point with the clause, the events or figures behind it and the rate in force).",
    )
    p.add_argument("contract", help="contract id, e.g. one-you-lifestyle")
    p.add_argument(
        "--year",
        help="contract year: a number like 0 or 2, or a period like 2019/20 "
        "(default: the year holding today)",
    )
    when = p.add_mutually_exclusive_group()
    when.add_argument(
        "--month",
        help="the sanctions ledger for a month, e.g. 2019-11 (default for contracts with "
        "sums per event, points or service credits: the last whole month)",
    )
    when.add_argument("--quarter", help="the sanctions ledger for a quarter, e.g. '2019/20 Q3'")
    p.add_argument(
        "--format",
        choices=["table", "csv"],
        default="table",
        help="the ledger as a table (default) or CSV with columns "
        "contract,month,kpi,rule,events,points,amount_gbp,clause,note",
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

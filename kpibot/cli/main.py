"""The ``kpibot`` command line. Every command has ``--help``; errors are one sentence, never a traceback.

>>> main(["--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from kpibot.cli import contracts, demo, events, payments, report, scheduler, teams
from kpibot.cli.base import UserError, services_for
from kpibot.core import texts
from kpibot.core.settings import Settings
from kpibot.engine.describe import POSITION_WORDS, format_value, trend_text
from kpibot.engine.model import Contract
from kpibot.engine.numbers import STYLES, NumberStyle
from kpibot.engine.periods import Period
from kpibot.engine.scorecard import compiled

log = logging.getLogger("kpibot")

Handler = Callable[[argparse.Namespace], int]
NUMBER_STYLES = [style.name for style in STYLES]


# ------------------------------------------------------------------------------ commands


def cmd_import(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from kpibot.features.figures import import_return
    from kpibot.files.tables import TableError, read_table

    services = services_for(args)
    try:
        table = read_table(Path(args.file))
    except TableError as exc:
        raise UserError(str(exc)) from None
    with Progress(
        transient=True, disable=len(table.rows) < 500 or not sys.stderr.isatty()
    ) as progress:
        task = progress.add_task(f"Checking {len(table.rows)} rows", total=len(table.rows))
        outcome = import_return(
            services,
            args.contract,
            table,
            actor=args.actor,
            reason=args.reason,
            source="import",
            on_row=lambda: progress.advance(task),
            number_style=NumberStyle.named(args.number_style) if args.number_style else None,
        )
    if outcome.errors:
        for e in outcome.listed():
            print(str(e), file=sys.stderr)
        n = len(outcome.errors) + outcome.more
        print(texts.IMPORT_REJECTED.format(n=f"{n:,}"), file=sys.stderr)
        return 2
    print(outcome.summary)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    services = services_for(args)
    contract = services.contract(args.contract)
    if contract is None:
        from kpibot.files.figures import suggest

        raise UserError(
            texts.UNKNOWN_CONTRACT.format(
                contract=args.contract, hint=suggest(args.contract, services.contracts.ids())
            )
        )
    if args.period:
        from kpibot.files.figures import check_period

        period = check_period(
            contract,
            args.period,
            services.now().date()
            if not args.any_period
            else contract.end.replace(year=contract.end.year + 100),
        )
        if isinstance(period, str):
            raise UserError(period)
    else:
        period = services.default_period(contract)
    print_status(services, contract, period)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from kpibot.files.evaluate import InputErrors, evaluate_tables, format_rows
    from kpibot.files.tables import TableError, read_table

    try:
        kpis = read_table(Path(args.kpis))
        figures = read_table(Path(args.figures))
        rows = evaluate_tables(
            kpis, figures, args.as_of, style=NumberStyle.named(args.number_style)
        )
    except TableError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except InputErrors as exc:
        for e in exc.errors:
            print(str(e), file=sys.stderr)
        return 2
    print(format_rows(rows, args.format))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from kpibot.app.server import serve

    settings = Settings()
    if args.database:
        settings = settings.model_copy(update={"database_url": args.database})
    if args.port:
        settings = settings.model_copy(update={"port": args.port})
    if args.no_scheduler:
        settings = settings.model_copy(update={"run_scheduler": False})
    teams_on = settings.teams_app_id is not None or settings.teams_auth_disabled
    if settings.slack_signing_secret is None and not args.socket_mode and not teams_on:
        raise UserError(
            "Set SLACK_SIGNING_SECRET (and SLACK_BOT_TOKEN) for Slack, or TEAMS_APP_ID and "
            "TEAMS_APP_PASSWORD for Teams, before `kpibot serve`; the README says where to find them."
        )
    services = services_for(args)
    services.load_contracts([settings.contracts_dir], actor="serve")
    serve(settings, socket_mode=args.socket_mode)
    return 0


# ------------------------------------------------------------------------------ terminal rendering

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


# ------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kpibot",
        description="kpibot: contract KPIs in chat. Evaluate figures, chase returns, track incidents.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log details to stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(
        name: str,
        handler: Handler,
        help_text: str,
        parent: argparse._SubParsersAction = sub,  # type: ignore[type-arg]
    ) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = parent.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(handler=handler)
        return p

    def db_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--database", help="database URL (default: $KPIBOT_DATABASE_URL or sqlite:///kpibot.db)"
        )

    p = add("import", cmd_import, "Import a CSV or XLSX monitoring return; all rows or none.")
    p.add_argument(
        "file",
        help="the return: .csv or .xlsx with columns kpi, period, value "
        "(or numerator, denominator), optional note, benchmark, reason",
    )
    p.add_argument("--contract", required=True, help="contract id, e.g. childrens-trust")
    p.add_argument("--actor", default="cli", help="who is submitting (recorded in the audit trail)")
    p.add_argument("--reason", help="reason for amending figures already submitted")
    p.add_argument(
        "--number-style",
        choices=NUMBER_STYLES,
        help="how the file writes numbers: uk (1,234.5) or european (1.234,5); default: the "
        "contract's number_style, else uk. A number that could be read either way is refused",
    )
    db_arg(p)

    p = add("status", cmd_status, "Show a contract's KPIs with position, RAG and trend.")
    p.add_argument("contract", help="contract id, e.g. childrens-trust")
    p.add_argument(
        "--period", help="period to report, e.g. '2019/20 Q3' (default: the latest ended)"
    )
    p.add_argument("--any-period", action="store_true", help=argparse.SUPPRESS)
    db_arg(p)

    p = add(
        "evaluate",
        cmd_evaluate,
        "Evaluate FIGURES.csv against KPIS.csv; prints kpi,period,value,target,position,rag,trend,critical.",
    )
    p.add_argument(
        "kpis",
        help="KPIS.csv: kpi, name, polarity, target, tolerance, critical_failure, unit, "
        "baseline, national_average, frequency",
    )
    p.add_argument(
        "figures",
        help="FIGURES.csv: kpi, period, value or numerator+denominator, optional benchmark",
    )
    p.add_argument("--as-of", help="report one row per KPI at this period, e.g. '2019/20 Q3'")
    p.add_argument(
        "--format",
        choices=["csv", "json", "table"],
        default="csv",
        help="output format (default csv)",
    )
    p.add_argument(
        "--number-style",
        choices=NUMBER_STYLES,
        default="uk",
        help="how the files write numbers: uk (1,234.5, the default) or european (1.234,5); "
        "a number that could be read either way is refused",
    )

    p = add(
        "serve",
        cmd_serve,
        "Serve Slack (/slack/events) and Teams (/api/messages) with /healthz and /readyz, and run the scheduler.",
    )
    p.add_argument(
        "--socket-mode",
        action="store_true",
        help="connect to Slack over Socket Mode (needs SLACK_APP_TOKEN)",
    )
    p.add_argument(
        "--no-scheduler",
        action="store_true",
        help="do not run the reminder scheduler in this process",
    )
    p.add_argument("--port", type=int, help="HTTP port (default $KPIBOT_PORT or 3000)")
    db_arg(p)

    _add_later_commands(sub, add, db_arg)
    return parser


def _add_later_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Commands that live in their own modules register here."""
    for group in (contracts, demo, scheduler, payments, teams, report, events):
        group.register(sub, add, db_arg)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return handler(args)
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: log the detail, show one sentence
        log.exception("command failed")
        print(texts.INTERNAL_ERROR.format(error=type(exc).__name__), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

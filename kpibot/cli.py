"""The ``kpibot`` command line. Every command has ``--help``; errors are one sentence, never a traceback.

>>> main(["--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from kpibot import messages
from kpibot.cli_support import UserError, services_for
from kpibot.contract_files import ContractFilesInvalid, load_contracts
from kpibot.settings import Settings

log = logging.getLogger("kpibot")

Handler = Callable[[argparse.Namespace], int]


# ------------------------------------------------------------------------------ commands


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from kpibot.store.database import Database

    settings = Settings()
    db = Database(args.database or settings.database_url)
    db.upgrade()
    print(f"Database is at the latest schema ({db.revision()}).")
    return 0


def cmd_contracts_check(args: argparse.Namespace) -> int:
    try:
        contracts = load_contracts([Path(p) for p in args.files])
    except ContractFilesInvalid as exc:
        for e in exc.errors:
            print(str(e), file=sys.stderr)
        return 2
    for c in contracts:
        print(
            f"ok  {c.id}: {len(c.kpis)} KPIs, {len(c.contract_years)} contract years, "
            f"{len(c.history)} history figures"
        )
    return 0


def cmd_contracts_load(args: argparse.Namespace) -> int:
    services = services_for(args)
    try:
        contracts = services.load_contracts(
            [Path(args.dir)], actor=args.actor, with_history=not args.no_history
        )
    except ContractFilesInvalid as exc:
        for e in exc.errors:
            print(str(e), file=sys.stderr)
        print("Nothing was loaded.", file=sys.stderr)
        return 2
    for c in contracts:
        print(f"loaded  {c.id}: {len(c.kpis)} KPIs")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from kpibot.imports import import_return
    from kpibot.tabular import TableError, read_table

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
        )
    if outcome.errors:
        for e in outcome.errors:
            print(str(e), file=sys.stderr)
        print(messages.IMPORT_REJECTED.format(n=len(outcome.errors)), file=sys.stderr)
        return 2
    print(outcome.summary)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from kpibot.terminal import print_status

    services = services_for(args)
    contract = services.contract(args.contract)
    if contract is None:
        from kpibot.ingest import suggest

        raise UserError(
            messages.UNKNOWN_CONTRACT.format(
                contract=args.contract, hint=suggest(args.contract, services.contracts.ids())
            )
        )
    if args.period:
        from kpibot.ingest import check_period

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
    from kpibot.spreadsheet import InputErrors, evaluate_tables, format_rows
    from kpibot.tabular import TableError, read_table

    try:
        kpis = read_table(Path(args.kpis))
        figures = read_table(Path(args.figures))
        rows = evaluate_tables(kpis, figures, args.as_of)
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
    from kpibot.server import serve

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

    db = sub.add_parser(
        "db", help="database administration", description="Database administration."
    )
    dbs = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_arg(
        add(
            "upgrade",
            cmd_db_upgrade,
            "Create or migrate the database schema to the latest version.",
            dbs,
        )
    )

    contracts = sub.add_parser(
        "contracts",
        help="validate and load contract definitions",
        description="Validate and load contract definitions (YAML).",
    )
    cs = contracts.add_subparsers(dest="contracts_command", metavar="ACTION", required=True)
    p = add("check", cmd_contracts_check, "Validate contract YAML files without loading them.", cs)
    p.add_argument("files", nargs="+", help="contract YAML files or directories")
    p = add(
        "load",
        cmd_contracts_load,
        "Validate every contract in DIR, then load them all (or none).",
        cs,
    )
    p.add_argument("dir", help="directory of contract YAML files, e.g. config/contracts")
    p.add_argument("--actor", default="cli", help="who is loading (recorded in the audit trail)")
    p.add_argument(
        "--no-history", action="store_true", help="do not load the contracts' demo history"
    )
    db_arg(p)

    p = add("import", cmd_import, "Import a CSV or XLSX monitoring return; all rows or none.")
    p.add_argument(
        "file",
        help="the return: .csv or .xlsx with columns kpi, period, value "
        "(or numerator, denominator), optional note, benchmark, reason",
    )
    p.add_argument("--contract", required=True, help="contract id, e.g. childrens-trust")
    p.add_argument("--actor", default="cli", help="who is submitting (recorded in the audit trail)")
    p.add_argument("--reason", help="reason for amending figures already submitted")
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
    from kpibot import cli_money, cli_more, cli_teams

    cli_more.register(sub, add, db_arg)
    cli_money.register(sub, add, db_arg)
    cli_teams.register(sub, add, db_arg)


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
        print(messages.INTERNAL_ERROR.format(error=type(exc).__name__), file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())

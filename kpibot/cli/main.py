"""The ``kpibot`` command line. Every command has ``--help``; errors are one sentence, never a traceback.

Start-up is kept short: this module imports only argparse and kpibot's texts. The command groups
that live in their own modules are listed in ``GROUPS`` and imported only when their command runs;
the commands here load what they need when they run. ``kpibot --help`` and ``kpibot --version``
therefore load no pandas, SQLAlchemy, matplotlib or chat SDK.

>>> main(["--help"])  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpibot.cli.base import EXIT_GRACE_S, UserError, exit_by, services_for
from kpibot.core import texts
from kpibot.engine.numbers import STYLES, NumberStyle

if TYPE_CHECKING:
    from rich.console import Console

    from kpibot.engine.model import Contract
    from kpibot.engine.periods import Period

log = logging.getLogger("kpibot")

Handler = Callable[[argparse.Namespace], int]
NUMBER_STYLES = [style.name for style in STYLES]


# ------------------------------------------------------------------------------ commands


def cmd_import(args: argparse.Namespace) -> int:
    # Loaded here, not at the top, for start-up speed.
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
        # Loaded here, not at the top, for start-up speed (as every import in a command).
        from kpibot.files.figures import suggest

        raise UserError(
            texts.UNKNOWN_CONTRACT.format(
                contract=args.contract, hint=suggest(args.contract, services.contracts.ids())
            )
        )
    if args.period:
        # Loaded here, not at the top, for start-up speed.
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
    # Loaded here, not at the top, for start-up speed: pandas only when evaluating.
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
    # Loaded here, not at the top, for start-up speed: the server and its SDKs only to serve.
    from kpibot.app.checks import NOT_STARTED, configuration_problems
    from kpibot.app.server import serve
    from kpibot.core.settings import Settings
    from kpibot.files.contracts import ContractFilesInvalid

    settings = Settings()
    if args.database:
        settings = settings.model_copy(update={"database_url": args.database})
    if args.port:
        settings = settings.model_copy(update={"port": args.port})
    if args.no_scheduler:
        settings = settings.model_copy(update={"run_scheduler": False})
    problems = configuration_problems(settings, socket_mode=args.socket_mode)
    if problems:
        raise UserError("\n".join([*problems, NOT_STARTED]))
    services = services_for(args)
    try:
        services.load_contracts([settings.contracts_dir], actor="serve")
    except ContractFilesInvalid as exc:
        raise UserError("\n".join([*(str(e) for e in exc.errors), NOT_STARTED])) from None
    finally:
        services.db.dispose()
    serve(settings, socket_mode=args.socket_mode)
    # Work still finishing on thread pools gets a moment; the process exits 0 by then anyway.
    exit_by(EXIT_GRACE_S)
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    # Loaded here, not at the top, for start-up speed (as every import in a command).
    from kpibot.app.starter import StarterExists, write_starter

    try:
        written = write_starter(Path(args.dir), force=args.force)
    except StarterExists as exc:
        raise UserError(str(exc)) from None
    for path in written:
        print(f"wrote  {path}")
    print(texts.INIT_DONE.format(folder=Path(args.dir)))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    # Loaded here, not at the top, for start-up speed.
    from kpibot.app.starter import effective_settings
    from kpibot.core.settings import Settings

    settings = Settings()
    width = max(len(name) for name, _, _ in effective_settings(settings))
    for name, value, source in effective_settings(settings):
        print(f"{name:<{width}}  {value}  ({source})")
    return 0


# ------------------------------------------------------------------------------ terminal rendering

PIPED_WIDTH = 160  # status printed to a pipe or a log, where the terminal gives no width
RAG_STYLE = {"green": "bold green", "amber": "bold yellow", "red": "bold red", "grey": "dim"}


def print_status(
    services: object, contract: Contract, period: Period, console: Console | None = None
) -> None:
    """Every KPI at ``period`` with value, target, tolerance, position, RAG and trend."""
    # Loaded here, not at the top, for start-up speed: rich and the engine only when printing.
    import math

    from rich.console import Console
    from rich.table import Table

    from kpibot.engine.describe import POSITION_WORDS, format_value, trend_text
    from kpibot.engine.groups import group_verdicts
    from kpibot.engine.scorecard import compiled

    if console is None:
        console = Console()
        if not console.is_terminal and "COLUMNS" not in os.environ:
            # Piped or logged: a wide page, not 80 columns of words folded five letters wide.
            console = Console(width=PIPED_WIDTH)
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
        wraps = col in ("Measure", "Target", "Tolerance")  # the rest are a word or two: never cut
        table.add_column(
            col, overflow="fold", no_wrap=not wraps, max_width=44 if col == "Measure" else None
        )
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
    for verdict in group_verdicts(contract, rows):  # as chat's status shows them
        console.print(f"Group rule: {verdict.text()}", markup=False, highlight=False)


# ------------------------------------------------------------------------------ parser


# Command groups in their own modules: name -> (module, one-line help). Listing them here lets
# `kpibot --help` show them without importing them; a module is imported when its command runs.
GROUPS: dict[str, tuple[str, str]] = {
    "db": ("kpibot.cli.contracts", "database administration"),
    "contracts": ("kpibot.cli.contracts", "validate and load contract definitions"),
    "demo": (
        "kpibot.cli.demo",
        "Run kpibot in the terminal on the seed contracts (fresh SQLite database). "
        "Without a terminal it tours every command and exits.",
    ),
    "schedule": (
        "kpibot.cli.scheduler",
        "preview the reminders, digests and alerts a contract will produce",
    ),
    "scheduler": ("kpibot.cli.scheduler", "run the reminder scheduler"),
    "payments": (
        "kpibot.cli.payments",
        "Show what a contract pays in a contract year (guaranteed, earned, on track, at risk, "
        "not earned, withheld), or its sanctions ledger for a month or quarter (every deduction, "
        "credit and point with the clause, the events or figures behind it and the rate in force).",
    ),
    "compliance": (
        "kpibot.cli.payments",
        "Show a contract's data-submission KPIs (timeliness, accuracy, service failure) and its "
        "service-level RAG rating, from the submission records.",
    ),
    "teams": ("kpibot.cli.teams", "Microsoft Teams app tools"),
    "report": (
        "kpibot.cli.report",
        "Write a contract's quarterly performance report for its board: every KPI with this "
        "year's target and tolerance in the contract's words, the last quarters' figures coloured "
        "and lettered by RAG, position, trend, money at risk, action plans, notes and charts.",
    ),
    "events": (
        "kpibot.cli.events",
        "import event logs for sums per event and penalty points",
    ),
}


class _Version(argparse.Action):
    """``--version``: the installed package's version, looked up only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show kpibot's version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *_args: object) -> None:
        # Loaded here, not at the top, for start-up speed: package metadata only when asked.
        from importlib.metadata import PackageNotFoundError, version

        try:
            found = version("kpibot")
        except PackageNotFoundError:  # run from a source tree that was never installed
            found = "unknown"
        print(f"kpibot {found}")
        parser.exit()


def _command(argv: Sequence[str] | None) -> str | None:
    """The command named in ``argv`` (its first word that is not an option)."""
    for word in argv if argv is not None else sys.argv[1:]:
        if not word.startswith("-"):
            return word
    return None


def build_parser(
    argv: Sequence[str] | None = None, *, everything: bool = False
) -> argparse.ArgumentParser:
    """The parser for ``argv``: the command it names is registered in full, other groups only by
    name and help (``everything`` registers every group in full)."""
    parser = argparse.ArgumentParser(
        prog="kpibot",
        description="kpibot: contract KPIs in chat. Evaluate figures, chase returns, track incidents.",
    )
    parser.add_argument("--version", action=_Version)
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

    p = add(
        "init",
        cmd_init,
        "Write a starter config folder: the four seed contracts, an access file and "
        ".env.example (for a deployment installed from a wheel).",
    )
    p.add_argument(
        "dir", nargs="?", default="config", help="the folder to write (default: ./config)"
    )
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")

    add(
        "config",
        cmd_config,
        "Print the effective settings (environment, then .env, then defaults), secrets masked.",
    )

    wanted = _command(argv)
    modules = [m for m, _ in GROUPS.values()] if everything else []
    if wanted in GROUPS:
        modules.append(GROUPS[wanted][0])
    for module in dict.fromkeys(modules):
        importlib.import_module(module).register(sub, add, db_arg)
    for name, (_module, help_text) in GROUPS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text, description=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    # Loaded here, not at the top, for start-up speed: `--help` and `--version` never get here.
    from pydantic import ValidationError

    from kpibot.core import logs
    from kpibot.core.settings import Settings
    from kpibot.store.database import unavailable

    try:
        settings = Settings()
    except ValidationError as error:  # a bad value in the environment or .env
        for problem in error.errors():
            where = ".".join(str(part) for part in problem["loc"])
            print(
                texts.BAD_SETTING.format(name=where.upper(), problem=problem["msg"]),
                file=sys.stderr,
            )
        return 2
    # kpibot's own loggers follow KPIBOT_LOG_LEVEL; when it is not set, the servers log at INFO
    # and one-off commands only warnings (their answer is the output), unless -v.
    serving = args.command == "serve" or getattr(args, "scheduler_command", None) == "run"
    chosen = "log_level" in settings.model_fields_set
    level = settings.log_level if chosen or serving else "WARNING"
    logs.configure(level, settings.log_format, verbose=args.verbose)
    try:
        return handler(args)
    except UserError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the last line of defence: log the detail, show one sentence
        if unavailable(exc):
            log.warning("command failed: the database is unavailable (%s)", _first_line(exc))
            print(texts.DATABASE_UNAVAILABLE, file=sys.stderr)
            return 1
        # The traceback is for the log of a server, or for -v; a one-off command's user reads
        # the sentence below, not a stack of frames and SQL.
        log.error(
            "command failed: %s: %s",
            type(exc).__name__,
            _first_line(exc),
            exc_info=serving or args.verbose,
        )
        print(texts.INTERNAL_ERROR.format(error=type(exc).__name__), file=sys.stderr)
        return 1


def _first_line(error: BaseException) -> str:
    """An error's own words without what SQLAlchemy appends: the SQL and the user's values."""
    return next(iter(str(error).splitlines()), "")


if __name__ == "__main__":
    raise SystemExit(main())

"""``kpibot schedule preview`` and ``kpibot scheduler run``.

>>> # kpibot.cli.main calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path

from kpibot.cli.base import EXIT_GRACE_S, UserError, exit_by, services_for
from kpibot.core import texts
from kpibot.core.access import AccessPolicy
from kpibot.core.services import Services
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import Contract
from kpibot.engine.numbers import STYLES, NumberStyle
from kpibot.files.contracts import ContractFilesInvalid, load_contracts
from kpibot.files.figures import suggest
from kpibot.scheduler.inputs import read_milestones, read_receipts
from kpibot.scheduler.preview import combined, format_csv, preview, print_table
from kpibot.store.rows import NewFigure

SCHEDULE_BAD_DATE = "{option} '{value}' is not a date; write it like 2019-07-01."
SCHEDULE_BAD_RANGE = "--from {start} is after --to {end}; give the earlier date first."
SCHEDULE_TOO_LONG = (
    "--from {start} to --to {end} is {days:,} days; preview at most {limit:,} days (ten years) "
    "at a time."
)
# Every day of the range is simulated: bounded, as every input is.
PREVIEW_MAX_DAYS = 3_660
SCHEDULE_NO_CALENDAR = (
    "Contract '{contract}' has no reporting calendar, so it schedules no reminders; "
    "add a calendar: section to its YAML (see config/contracts/one-you-lifestyle.yaml)."
)
SCHEDULER_ONCE = "Tick wrote {written} new outbox message(s); {sent} delivered."
# The moment a previewed --figures file counts as imported: 09:00 on --from.
PREVIEW_IMPORT_AT = time(9, 0)


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UserError(SCHEDULE_BAD_DATE.format(option=option, value=value)) from None


def _contract_for_preview(services: Services, contract_id: str) -> Contract:
    """The stored contract, else the one in the contracts folder (a fresh machine)."""
    contract = services.contract(contract_id)
    if contract is not None:
        return contract
    known = services.contracts.ids()
    try:
        files = {c.id: c for c in load_contracts([services.settings.contracts_dir])}
    except (ContractFilesInvalid, OSError):
        files = {}
    if contract_id in files:
        return files[contract_id]
    hint = suggest(contract_id, sorted({*known, *files}))
    raise UserError(texts.UNKNOWN_CONTRACT.format(contract=contract_id, hint=hint))


def _figures_for_preview(
    services: Services, contract: Contract, path: str, at: datetime, style: str | None = None
) -> list[NewFigure]:
    """The figures in a ``kpibot import`` file, checked as if imported at ``at`` (numbers read
    as ``kpibot import --number-style`` reads them: ``style``, else the contract's)."""
    # Loaded here, not at the top: `kpibot --help` must not pay for the table readers.
    from kpibot.files.figures import check_return
    from kpibot.files.tables import TableError, read_table

    try:
        table = read_table(Path(path))
    except TableError as exc:
        raise UserError(str(exc)) from None
    check = check_return(
        contract,
        table,
        at,
        is_late=services.is_late(contract),
        style=NumberStyle.named(style) if style else None,
    )
    if check.errors:
        raise UserError("\n".join(str(e) for e in check.errors))
    return check.figures


def cmd_schedule_preview(args: argparse.Namespace) -> int:
    # Loaded here, not at the top: `kpibot --help` must not pay for the whole bot.
    from kpibot.features.alerts import preview_alerts
    from kpibot.features.subscriptions import planned_digests

    start, end = _day(args.start, "--from"), _day(args.end, "--to")
    if end < start:
        raise UserError(SCHEDULE_BAD_RANGE.format(start=start, end=end))
    days = (end - start).days + 1
    if days > PREVIEW_MAX_DAYS:
        raise UserError(
            SCHEDULE_TOO_LONG.format(start=start, end=end, days=days, limit=PREVIEW_MAX_DAYS)
        )
    services = services_for(args)
    contract = _contract_for_preview(services, args.contract)
    if not contract.calendar and not args.figures:
        raise UserError(SCHEDULE_NO_CALENDAR.format(contract=contract.id))
    at = datetime.combine(start, PREVIEW_IMPORT_AT, tzinfo=LONDON)
    figures = (
        _figures_for_preview(services, contract, args.figures, at, args.number_style)
        if args.figures
        else []
    )
    received = None
    done = None
    if not args.no_submissions:
        received = read_receipts(services.db, [contract.id]).get(contract.id, {})
        for f in figures:
            received.setdefault(f.period.label, at)
        done = read_milestones(services.db, [contract]).get(contract.id, {})
    calendar = (
        preview(
            contract,
            start,
            end,
            received,
            no_submissions=args.no_submissions,
            milestones_done=done,
        )
        if contract.calendar
        else []
    )
    first = datetime.combine(start, time(), tzinfo=LONDON)
    last = datetime.combine(end + timedelta(days=1), time(), tzinfo=LONDON)
    digests = planned_digests(services, contract.id, first, last)
    alerts = preview_alerts(services, contract, figures, at) if figures else []
    rows = combined(calendar, digests, alerts)
    if args.format == "table":
        print_table(rows, f"{contract.name} ({contract.id}) · {start} to {end}")
    else:
        sys.stdout.write(format_csv(rows))
    return 0


def cmd_scheduler_run(args: argparse.Namespace) -> int:
    import signal
    import threading

    # Loaded here, not at the top: `kpibot --help` must not pay for the whole bot.
    from kpibot.app.checks import NOT_STARTED, configuration_problems
    from kpibot.app.wiring import scheduler_for

    services = services_for(args)
    settings = services.settings
    problems = configuration_problems(settings, serving=False)
    if problems:
        raise UserError("\n".join([*problems, NOT_STARTED]))
    policy = AccessPolicy.load(settings.access_file)
    since = None
    if args.since:
        since = datetime.combine(_day(args.since, "--since"), time(), tzinfo=LONDON)
    service = scheduler_for(
        services,
        policy,
        settings,
        since,
        tick_seconds=args.tick_seconds,
        dispatch_seconds=args.dispatch_seconds,
    )
    if args.once:
        try:
            written, sent = service.run_once()
        finally:
            service.shutdown()
        print(SCHEDULER_ONCE.format(written=written, sent=sent))
        return 0
    stop = threading.Event()
    # SIGTERM or SIGINT: finish the message in flight, hand back the claims, exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    service.start()
    try:
        stop.wait()
    finally:
        service.shutdown(timeout=settings.shutdown_timeout)
        services.db.dispose()
    exit_by(EXIT_GRACE_S)
    return 0


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``kpibot schedule preview`` and ``kpibot scheduler run``."""
    schedule = sub.add_parser(
        "schedule",
        help="preview the reminders, digests and alerts a contract will produce",
        description="Preview the reminders, escalations, summaries and meetings of a contract, "
        "the digests its subscribers will get and the alerts a return would raise.",
    )
    actions = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    p = add(
        "preview",
        cmd_schedule_preview,
        "List every message a contract will produce from --from to --to, on a simulated clock "
        "running the live scheduler's code (columns when,contract,kind,audience,period,text): "
        "reminders, summaries, the digests subscribers will get and, with --figures, the alerts "
        "a return would raise. Nothing is written to the store.",
        actions,
    )
    p.add_argument("contract", help="contract id, e.g. one-psychology")
    p.add_argument(
        "--from", dest="start", required=True, metavar="DATE", help="first day, e.g. 2018-07-01"
    )
    p.add_argument(
        "--to",
        dest="end",
        required=True,
        metavar="DATE",
        help="last day (inclusive), e.g. 2021-07-31",
    )
    p.add_argument(
        "--no-submissions",
        action="store_true",
        help="ignore returns already received: show every return's full ladder",
    )
    p.add_argument(
        "--figures",
        metavar="FILE",
        help="a return in the `kpibot import` format (CSV or XLSX): list the alerts its figures "
        "would raise if imported at 09:00 on --from (kinds alert_critical, alert_red, "
        "alert_red_run, alert_money, …); nothing is stored",
    )
    p.add_argument(
        "--number-style",
        choices=[style.name for style in STYLES],
        help="how --figures writes numbers, as for `kpibot import`: uk (1,234.5) or european "
        "(1.234,5); default: the contract's number_style, else uk",
    )
    p.add_argument(
        "--format", choices=["csv", "table"], default="csv", help="output format (default csv)"
    )
    db_arg(p)

    scheduler = sub.add_parser(
        "scheduler",
        help="run the reminder scheduler",
        description="Run the reminder scheduler: the tick (one replica) and the dispatcher.",
    )
    actions = scheduler.add_subparsers(dest="scheduler_command", metavar="ACTION", required=True)
    p = add(
        "run",
        cmd_scheduler_run,
        "Run the scheduler alone until stopped (Ctrl-C). Messages go to Slack when "
        "SLACK_BOT_TOKEN is set (SLACK_API_URL overrides the API address), else to this terminal.",
        actions,
    )
    p.add_argument(
        "--once", action="store_true", help="tick once, deliver everything due, then exit"
    )
    p.add_argument(
        "--tick-seconds",
        type=float,
        default=60.0,
        metavar="N",
        help="seconds between ticks (default 60)",
    )
    p.add_argument(
        "--dispatch-seconds",
        type=float,
        default=5.0,
        metavar="N",
        help="seconds between dispatch runs (default 5)",
    )
    p.add_argument(
        "--since",
        metavar="DATE",
        help="on a database that has never ticked, start from this day "
        "(default: one minute ago, so history is not replayed)",
    )
    db_arg(p)

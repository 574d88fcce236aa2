"""``kpibot events import FILE --contract ID``: an event log (CSV or XLSX) for sums per event and
penalty points; every row checked, all stored or none.

>>> # kpibot.cli calls register(subparsers, add, db_arg) while building its parser.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from kpibot.cli.base import UserError, services_for


def cmd_events_import(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from kpibot.core import texts
    from kpibot.engine.sanctions import event_kinds
    from kpibot.features.sanctions import EVENTS_REJECTED, NO_EVENT_KINDS, EventLog
    from kpibot.files.events import check_events
    from kpibot.files.figures import suggest
    from kpibot.files.tables import TableError, read_table

    services = services_for(args)
    contract = services.contract(args.contract)
    if contract is None:
        hint = suggest(args.contract, services.contracts.ids())
        raise UserError(texts.UNKNOWN_CONTRACT.format(contract=args.contract, hint=hint))
    if not event_kinds(contract.payments):
        raise UserError(NO_EVENT_KINDS.format(contract=contract.id))
    try:
        table = read_table(Path(args.file))
    except TableError as exc:
        raise UserError(str(exc)) from None
    with Progress(
        transient=True, disable=len(table.rows) < 500 or not sys.stderr.isatty()
    ) as progress:
        task = progress.add_task(f"Checking {len(table.rows)} events", total=len(table.rows))
        checked = check_events(
            contract, table, services.now(), on_row=lambda: progress.advance(task)
        )
    if not checked.errors:
        outcome = EventLog(services).record(
            contract, checked.events, args.actor, "import", file=Path(args.file).name
        )
        errors = outcome.errors
    else:
        errors = checked.errors
        services.audit.record(
            args.actor,
            "events",
            contract.id,
            Path(args.file).name,
            "refused",
            {"source": "import", "problems": [str(e) for e in errors][:20]},
        )
    if errors:
        for e in errors:
            print(str(e), file=sys.stderr)
        print(EVENTS_REJECTED.format(n=len(errors)), file=sys.stderr)
        return 2
    print(outcome.summary)
    return 0


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    add: Callable[..., argparse.ArgumentParser],
    db_arg: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add ``events`` to the ``kpibot`` parser."""
    events = sub.add_parser(
        "events",
        help="import event logs for sums per event and penalty points",
        description="Event logs (missed collections, breaches, patients over a waiting limit).",
    )
    es = events.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    p = add(
        "import",
        cmd_events_import,
        "Import an event log (CSV or XLSX); every row is checked and all are stored or none.",
        es,
    )
    p.add_argument(
        "file",
        help="the log: columns date, kind, reference, and optionally rectified_at, value, "
        "affected, note",
    )
    p.add_argument("--contract", required=True, help="contract id, e.g. waste-collection-example")
    p.add_argument("--actor", default="cli", help="who is importing (recorded in the audit trail)")
    db_arg(p)

"""``kpibot schedule preview``: every message a contract will produce, on a simulated clock.

It runs the live tick's planner (``plan_window``, with inputs built by the same function) in
daily windows, ``(D 00:00, D+1 00:00]`` Europe/London for each day D from ``start`` to ``end``,
so what it lists is exactly what the tick would write to the outbox, one row per message
(before the message is addressed to its channels). Time is only an argument here.

``kpibot schedule preview`` adds the digests planned for the contract and, given a file of
figures, the alerts they would raise (``combined`` merges them in the tick's order).

>>> from kpibot.files.contracts import load_contracts  # doctest: +SKIP
>>> rows = preview(contract, date(2019, 12, 1), date(2020, 1, 31), no_submissions=True)
... # doctest: +SKIP
>>> [(m.when.date().isoformat(), m.kind) for m in rows if m.kind == "due"]  # doctest: +SKIP
[('2020-01-10', 'due')]
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta

from rich.console import Console
from rich.table import Table

from kpibot.engine.calendar import LONDON, calendar_for
from kpibot.engine.model import Contract
from kpibot.engine.reminders import IncidentClock, Message, order
from kpibot.files.exports import formula_safe
from kpibot.scheduler.inputs import contract_inputs
from kpibot.scheduler.plan import plan_window

COLUMNS = ("when", "contract", "kind", "audience", "period", "text")
FORMATS = ("csv", "table")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=LONDON).astimezone(UTC)


def preview(
    contract: Contract,
    start: date,
    end: date,
    received: Mapping[str, datetime] | None = None,
    no_submissions: bool = False,
    incidents: Sequence[IncidentClock] = (),
    milestones_done: Mapping[str, datetime] | None = None,
) -> list[Message]:
    """Messages from ``start`` to ``end`` (inclusive), as daily ticks would enqueue them.

    ``received`` maps period labels to when the return arrived (read it from the store with
    ``kpibot.scheduler.tick.read_receipts``); ``no_submissions`` ignores it, showing the full
    ladder of every return.
    """
    got = {} if no_submissions else dict(received or {})
    inputs = contract_inputs(contract, calendar_for(contract), got, incidents)
    if not no_submissions and milestones_done:
        inputs.milestones_done = dict(milestones_done)
    out: list[Message] = []
    day = start
    while day <= end:
        out.extend(plan_window([inputs], _midnight(day), _midnight(day + timedelta(days=1))))
        day += timedelta(days=1)
    return out


def combined(*groups: Iterable[Message]) -> list[Message]:
    """Messages from several planners (the calendar, digests, alerts) in one time order, as the
    tick orders a window: by moment, contract, then the kinds' order."""
    return sorted(
        (m for group in groups for m in group), key=lambda m: (m.when, m.contract, order(m.kind))
    )


def preview_rows(messages: Iterable[Message]) -> list[dict[str, str]]:
    """One dict per message with the ``COLUMNS``; ``when`` is ISO 8601 in Europe/London."""
    return [
        {
            "when": m.when.astimezone(LONDON).isoformat(),
            "contract": m.contract,
            "kind": m.kind,
            "audience": m.audience,
            "period": m.period,
            "text": m.text,
        }
        for m in messages
    ]


def format_csv(messages: Iterable[Message]) -> str:
    """The preview as CSV with a header row."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    # Message texts quote contract and incident text, which a spreadsheet must not run.
    writer.writerows(
        {column: formula_safe(value) for column, value in row.items()}
        for row in preview_rows(messages)
    )
    return out.getvalue()


def print_table(messages: Sequence[Message], title: str, console: Console | None = None) -> None:
    """The preview as a terminal table (rich)."""
    table = Table(title=title, show_lines=False)
    for column in COLUMNS:
        table.add_column(column, overflow="fold", max_width=70 if column == "text" else None)
    for row in preview_rows(messages):
        when = datetime.fromisoformat(row["when"]).strftime("%a %d %b %Y %H:%M")
        table.add_row(when, *(row[c] for c in COLUMNS[1:]))
    (console or Console()).print(table)

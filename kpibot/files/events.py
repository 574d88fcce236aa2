"""Check an event log (CSV/XLSX, or one event typed in chat) against a contract before storing it.

Columns (case-insensitive; unknown columns ignored): ``date`` (when it happened: ``2019-11-04``,
``2019-11-04 14:30`` or ``04/11/2019 14:30``, Europe/London), ``kind`` (one of the contract's event
kinds), ``reference`` (the event's own id: a property, a patient pathway, a job number), and
optionally ``rectified_at`` (when it was put right), ``value`` (what it measured, such as minutes
waited, for tiers), ``affected`` (people or households affected, default 1) and ``note``.

Every problem names the file, line and column. A file with any problem is rejected whole;
``check_events`` never writes.

>>> # check = check_events(contract, read_table(Path("events.csv")), now)
>>> # check.errors -> [CellError(...)], check.events -> [NewEvent(...)]
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, time

from kpibot.engine.calendar import LONDON
from kpibot.engine.freetext import NOTE, text_problem
from kpibot.engine.model import Contract
from kpibot.engine.sanctions import EventKind, event_kinds
from kpibot.files.figures import parse_number, suggest
from kpibot.files.tables import CellError, Table

REQUIRED = ("date", "kind", "reference")
ALIASES = {
    "occurred_at": "date",
    "occurred": "date",
    "when": "date",
    "event": "kind",
    "type": "kind",
    "ref": "reference",
    "rectified": "rectified_at",
    "rectified_on": "rectified_at",
    "people": "affected",
    "households": "affected",
}
MAX_REFERENCE = 200
#: People or households one event affects; far above any real event, low enough that no sum
#: per event can overflow.
MAX_AFFECTED = 1_000_000
_FORMS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M",
    "%d/%m/%Y %H:%M:%S",
    "%d/%m/%Y %H:%M",
)
_DATE_FORMS = ("%Y-%m-%d", "%d/%m/%Y")


@dataclass(frozen=True)
class NewEvent:
    """An event checked and ready to store; ``line`` is where it came from (None in chat)."""

    line: int | None
    kind: str
    reference: str
    occurred_at: datetime
    rectified_at: datetime | None = None
    value: float | None = None
    affected: int = 1
    note: str | None = None


@dataclass
class EventCheck:
    """The outcome of checking a log: every problem, or every event (never both)."""

    errors: list[CellError] = field(default_factory=list)
    events: list[NewEvent] = field(default_factory=list)


def parse_moment(text: str, *, end_of_day: bool = False) -> datetime | None:
    """'2019-11-04 14:30' or '04/11/2019' as an aware London time; a bare date is the start of the
    day (or its end with ``end_of_day``, for rectifications). None when unreadable.

    >>> parse_moment("04/11/2019 14:30").isoformat()
    '2019-11-04T14:30:00+00:00'
    """
    raw = " ".join(text.split())
    for form in _FORMS:
        try:
            return datetime.strptime(raw, form).replace(tzinfo=LONDON)
        except ValueError:
            continue
    for form in _DATE_FORMS:
        try:
            day = datetime.strptime(raw, form).date()
        except ValueError:
            continue
        return datetime.combine(day, time.max if end_of_day else time(0), tzinfo=LONDON)
    return None


def _when(text: str) -> str:
    return f"'{text}' is not a date I can read; write it like 2019-11-04 or 2019-11-04 14:30"


def check_event(
    contract: Contract,
    cells: Mapping[str, str],
    now: datetime,
    *,
    file: str = "your message",
    line: int | None = None,
    kinds: Mapping[str, EventKind] | None = None,
) -> tuple[NewEvent | None, list[CellError]]:
    """Check one event's cells; (the event, []) or (None, every problem found)."""
    kinds = event_kinds(contract.payments) if kinds is None else kinds
    errors: list[CellError] = []

    def bad(column: str, reason: str) -> None:
        errors.append(CellError(file, line, column, reason))

    cell = {ALIASES.get(k, k): v.strip() for k, v in cells.items() if v is not None}
    for column in REQUIRED:
        if not cell.get(column):
            bad(column, f"the {column} is missing")
    kind = cell.get("kind", "")
    if kind and kind not in kinds:
        lowered = {k.lower(): k for k in kinds}
        if kind.lower() in lowered:
            kind = lowered[kind.lower()]
        else:
            known = ", ".join(sorted(kinds)) or "none"
            bad(
                "kind",
                f"'{kind}' is not an event kind of {contract.id}.{suggest(kind, sorted(kinds))} "
                f"Its kinds: {known}",
            )
    reference = cell.get("reference", "")
    if len(reference) > MAX_REFERENCE:
        bad(
            "reference", f"the reference is {len(reference)} characters; keep it to {MAX_REFERENCE}"
        )
    note_problem = text_problem(cell.get("note"), NOTE)
    if note_problem is not None:
        bad("note", note_problem[0].lower() + note_problem[1:].rstrip("."))
    occurred = parse_moment(cell["date"]) if cell.get("date") else None
    if cell.get("date") and occurred is None:
        bad("date", _when(cell["date"]))
    elif occurred is not None:
        day = occurred.date()
        if occurred > now:
            bad("date", f"{day:%-d %b %Y} is in the future")
        elif not contract.start <= day <= contract.end:
            bad(
                "date",
                f"{day:%-d %b %Y} is outside the contract, which runs from "
                f"{contract.start:%-d %b %Y} to {contract.end:%-d %b %Y}",
            )
    rectified = None
    if cell.get("rectified_at"):
        rectified = parse_moment(cell["rectified_at"], end_of_day=True)
        if rectified is None:
            bad("rectified_at", _when(cell["rectified_at"]))
        elif rectified.date() > now.astimezone(LONDON).date():
            bad("rectified_at", f"{rectified:%-d %b %Y} is in the future")
        elif occurred is not None and rectified < occurred:
            bad("rectified_at", "it says the event was put right before it happened")
    value = None
    if cell.get("value"):
        try:
            value = parse_number(cell["value"])
        except ValueError:
            bad("value", f"'{cell['value']}' is not a number")
    elif kind in kinds and kinds[kind].needs_value:
        bad(
            "value", f"{kind} events are charged by their value ({kinds[kind].value_hint}); give it"
        )
    affected = 1
    if cell.get("affected"):
        text = cell["affected"].replace(",", "")
        # the length first: int() of thousands of digits is refused by Python itself
        if not re.fullmatch(r"\d{1,7}", text) or not 1 <= int(text) <= MAX_AFFECTED:
            bad(
                "affected",
                f"'{cell['affected'][:40]}' should be a whole number from 1 to {MAX_AFFECTED:,}",
            )
        else:
            affected = int(text)
    if errors or occurred is None:
        return None, errors
    event = NewEvent(
        line, kind, reference, occurred, rectified, value, affected, cell.get("note") or None
    )
    return event, []


def check_events(
    contract: Contract,
    table: Table,
    now: datetime,
    on_row: Callable[[], None] | None = None,
) -> EventCheck:
    """Check every row; the file is accepted only when every row is good. ``on_row`` is called
    after each row (for a progress bar)."""
    kinds = event_kinds(contract.payments)
    result = EventCheck()
    named: dict[str, str] = {}
    for column in filter(None, table.columns):
        field_name = ALIASES.get(column, column)
        if field_name in named:
            # Two names for one field ('date' and 'when'): reading either would be a guess.
            reason = (
                f"'{named[field_name]}' and '{column}' both give the {field_name}; "
                "delete one of them"
            )
            result.errors.append(CellError(table.name, 1, column, reason))
            return result
        named[field_name] = column
    columns = set(named)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        result.errors.append(
            CellError(
                table.name,
                1,
                missing[0],
                f"the header has no '{missing[0]}' column; an event log needs "
                "date, kind and reference (and may give rectified_at, value, affected, note)",
            )
        )
        return result
    seen: dict[tuple[str, str, datetime], int] = {}
    for row in table:
        event, errors = check_event(
            contract, row.cells, now, file=table.name, line=row.line, kinds=kinds
        )
        if on_row is not None:
            on_row()
        result.errors.extend(errors)
        if event is None:
            continue
        key = (event.kind, event.reference, event.occurred_at)
        if key in seen:
            result.errors.append(
                table.error(
                    row,
                    "reference",
                    f"the same {event.kind} event ({event.reference} on "
                    f"{event.occurred_at:%-d %b %Y %H:%M}) is already on {table.line_word} {seen[key]}",
                )
            )
            continue
        seen[key] = row.line
        result.events.append(event)
    if result.errors:
        result.events = []
    return result

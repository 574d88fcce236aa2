"""``event`` records one event for a contract's sums per event and penalty points, or its fix.

- ``event <contract> <kind> <reference> [when] [value:N] [affected:N] [rectified:when] ["note"]``
  (``event waste-collection-example missed-collection UPRN-1042 2019-11-04``);
- ``event <contract> rectified <reference> [when]`` records that it was put right.

``when`` is ``2019-11-04``, ``2019-11-04 14:30`` or ``04/11/2019 14:30`` (Europe/London; default
now). The event goes through the same checks as an imported log, and the reply ends with the
month's verdict, so the provider sees at once what the event costs.

>>> parse_event_args(["UPRN-1", "2019-11-04", "08:30", "affected:12", "bins", "left"])
({'reference': 'UPRN-1', 'date': '2019-11-04 08:30', 'affected': '12'}, 'bins left')
"""

from __future__ import annotations

import re

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import resolve_contract
from kpibot.core.protocol import Reply, Request, error
from kpibot.engine.calendar import LONDON
from kpibot.engine.sanctions import event_kinds, month_of
from kpibot.features.sanctions import (
    NO_EVENT_KINDS,
    EventLog,
    SanctionError,
    ledger,
    when_text,
)
from kpibot.files.events import check_event, parse_moment

USAGE = "event <contract> <kind> <reference> [when] [value:N] [affected:N] [rectified:when] [note]"
NO_KIND = "Say which kind of event and its reference, e.g. `event {contract} {kind} UPRN-1042`. Its kinds: {kinds}."
NO_REFERENCE = (
    "Give the event's reference after its kind, e.g. `event {contract} {kind} UPRN-1042`."
)
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})(T\d{1,2}:\d{2})?$")
_TIME = re.compile(r"^\d{1,2}:\d{2}$")
_KEYS = {
    "value": "value",
    "minutes": "value",
    "affected": "affected",
    "households": "affected",
    "people": "affected",
    "rectified": "rectified_at",
    "on": "date",
    "at": "date",
    "date": "date",
}


def parse_event_args(args: list[str]) -> tuple[dict[str, str], str]:
    """Cells from ``<reference> [when] [key:value …] [note]`` and the note text."""
    cells: dict[str, str] = {"reference": args[0]} if args else {}
    rest = list(args[1:])
    note: list[str] = []
    while rest:
        token = rest.pop(0)
        key, sep, value = token.partition(":")
        if sep and key.lower() in _KEYS and value:
            column = _KEYS[key.lower()]
            if rest and _TIME.match(rest[0]) and column in ("date", "rectified_at"):
                value = f"{value} {rest.pop(0)}"
            cells[column] = value
        elif "date" not in cells and _DATE.match(token):
            cells["date"] = token
            if rest and _TIME.match(rest[0]):
                cells["date"] += f" {rest.pop(0)}"
        else:
            note.append(token)
    return cells, " ".join(note)


class EventHandler(CommandHandler):
    verb = "event"
    summary = (
        "record an event (a missed collection, a breach) for sums per event and penalty points"
    )
    usage = USAGE
    examples = (
        "event waste-collection-example missed-collection UPRN-1042 2019-11-04 08:30",
        "event acute-hospital-example handover-delay HO-2231 2015-11-04 14:05 value:75",
        "event waste-collection-example rectified UPRN-1042 2019-11-05 10:00",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "submit")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        kinds = event_kinds(contract.payments)
        if not kinds:
            return error(NO_EVENT_KINDS.format(contract=contract.id), "No event kinds")
        example = sorted(kinds)[0]
        if not rest:
            return error(
                NO_KIND.format(contract=contract.id, kind=example, kinds=", ".join(sorted(kinds))),
                "Which event?",
            )
        now = ctx.services.now()
        if rest[0].lower() == "rectified":
            return self.rectified(request, ctx, contract.id, rest[1:])
        if len(rest) < 2:
            return error(
                NO_REFERENCE.format(contract=contract.id, kind=rest[0]), "Which reference?"
            )
        cells, note = parse_event_args(rest[1:])
        cells.setdefault("date", f"{now.astimezone(LONDON):%Y-%m-%d %H:%M}")
        cells["kind"] = rest[0]
        if note:
            cells["note"] = note
        event, problems = check_event(contract, cells, now)
        if event is None:
            return error("\n".join(f"• {p}" for p in problems), "The event was not recorded")
        outcome = EventLog(ctx.services).record(contract, [event], request.user, "chat")
        if outcome.errors:
            return error("\n".join(f"• {e}" for e in outcome.errors), "The event was not recorded")
        month = month_of(event.occurred_at.astimezone(LONDON).date(), contract)
        verdict = ledger(ctx.services, contract, [month]).verdict()
        what = "Already recorded" if outcome.unchanged else "Recorded"
        text = (
            f"{what}: {event.kind} {event.reference}, {when_text(event.occurred_at)}"
            + (f", value {event.value:g}" if event.value is not None else "")
            + (f", {event.affected} affected" if event.affected != 1 else "")
            + (f", put right {when_text(event.rectified_at)}" if event.rectified_at else "")
            + f".\n{verdict}"
        )
        reply = Reply(f"Event · {contract.name}", text, kind="done")
        return reply

    def rectified(self, request: Request, ctx: Context, contract_id: str, args: list[str]) -> Reply:
        contract = ctx.services.contract(contract_id)
        assert contract is not None
        if not args:
            return error(
                f"Give the event's reference, e.g. `event {contract_id} rectified UPRN-1042`.",
                "Which event?",
            )
        cells, _note = parse_event_args(args)
        now = ctx.services.now()
        at = now
        if "date" in cells:
            found = parse_moment(cells["date"], end_of_day=True)
            if found is None:
                return error(
                    f"'{cells['date']}' is not a date I can read; write it like 2019-11-05 10:00."
                )
            if found > now:
                return error(f"{when_text(found)} is in the future.")
            at = found
        try:
            text = EventLog(ctx.services).rectify(contract, cells["reference"], at, request.user)
        except SanctionError as exc:
            return error(str(exc), "Not recorded")
        return Reply(f"Event · {contract.name}", text, kind="done")

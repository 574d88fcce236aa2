"""``incident`` logs an incident or files its report; ``incidents`` shows the register.

- ``incident [contract] <type> "what happened"`` logs it and starts the reporting clock
  (``incident childrens-trust sui "Child harmed…"``, or ``incident sui "…"`` in a bound channel);
- ``incident report <id> "report. Action plan: …"`` files the report and stops the clock;
- ``incidents [contract] [open]`` lists the register.

The register's colours: **red** open past its deadline; **amber** open, clock still running;
**green** reported on time; **grey** reported late (closed, but the deadline was missed). The status
column says the same in words, so nothing depends on colour alone.

>>> # dispatch(Request.from_text('incident childrens-trust sui "Child injured"', ...), ctx)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import refuse, resolve_contract
from kpibot.core.protocol import Action, Cell, Reply, Request, error
from kpibot.engine.calendar import DEFAULT_INCIDENT_RULES, LONDON
from kpibot.engine.describe import RAG_DOT
from kpibot.features.incidents import (
    Incident,
    IncidentError,
    IncidentNotAllowed,
    IncidentRegister,
    incident_kinds,
    match_kind,
    span_text,
    when_text,
)

MAX_ROWS = 25
_ACTION_PLAN = re.compile(r"\baction[ -]?plan\s*:", re.IGNORECASE)
_INCIDENT_ID = re.compile(r"#?(\d{1,9})", re.ASCII)

# User-facing wording for this verb, kept together.
USAGE_OPEN = 'incident [contract] <type> "what happened"'
USAGE_REPORT = 'incident report <id> "what happened and why. Action plan: what changes"'
NO_ARGS = (
    'Say which type of incident and what happened, e.g. `incident sui "Child injured at a clinic"`.'
)
NO_TYPE = 'Start with the type of incident, then what happened, e.g. `incident {contract}sui "…"`.'
NO_DESCRIPTION = (
    "Say what happened after the type, in quotes, "
    'e.g. `incident {kind} "Child injured at a clinic"`.'
)
NO_ID = "Give the incident's number, e.g. `{usage}`; `incidents` lists them."
NO_REPORT = (
    "Write the report after the number, "
    'e.g. `incident report {id} "What happened. Action plan: …"`.'
)
WHICH_CONTRACT = (
    'Name the contract first, e.g. `incident childrens-trust {kind} "…"`; yours: {yours}.'
)
LEGEND = (
    "Red: open past its deadline · amber: open, clock running · green: reported on time · "
    "grey: reported late."
)


@dataclass(frozen=True)
class ReportArgs:
    """``incident report <id> "text"`` as parsed."""

    incident_id: int
    report: str
    action_plan: str | None


def split_action_plan(text: str) -> tuple[str, str | None]:
    """Split 'report … Action plan: …' into the report and the plan (None when not marked).

    >>> split_action_plan("Fell on stairs. Action plan: fit a handrail")
    ('Fell on stairs.', 'fit a handrail')
    """
    match = _ACTION_PLAN.search(text)
    if match is None:
        return text.strip(), None
    return text[: match.start()].strip(), text[match.end() :].strip() or None


def parse_report(args: list[str]) -> ReportArgs | Reply:
    """Read ``<id> "text"`` (after the word 'report'); a Reply says what is missing."""
    number = _INCIDENT_ID.fullmatch(args[0].strip()) if args else None
    if number is None:
        return error(NO_ID.format(usage=USAGE_REPORT), "Which incident?")
    incident_id = int(number[1])
    report, plan = split_action_plan(" ".join(args[1:]))
    if not report:
        return error(NO_REPORT.format(id=incident_id), "No report given")
    return ReportArgs(incident_id, report, plan)


def _when(moment: datetime) -> str:
    return moment.astimezone(LONDON).strftime("%-d %b %Y %H:%M")


class IncidentHandler:
    verb = "incident"
    summary = "log an incident and start its reporting clock, or file its report"
    usage = f"{USAGE_OPEN} | {USAGE_REPORT}"
    examples: tuple[str, ...] = (
        'incident childrens-trust sui "Child injured at the Hillside centre"',
        'incident near-miss "Wrong dose drawn up, caught before it was given"',
        'incident report 3 "Fall on stairs, no injury. Action plan: handrail fitted by 1 March"',
    )

    def check(self, request: Request, ctx: Context) -> Reply | None:
        """Refuse malformed input before touching the register (nothing is written)."""
        args = request.args
        if not args:
            return error(NO_ARGS, "What happened?")
        if args[0].lower() == "report":
            parsed = parse_report(args[1:])
            return parsed if isinstance(parsed, Reply) else None
        named = args[0] if args[0] in ctx.services.contract_ids() else None
        rest = args[1:] if named else args
        if not rest or " " in rest[0].strip():
            return error(NO_TYPE.format(contract=f"{named} " if named else ""), "Which type?")
        if not " ".join(rest[1:]).strip():
            return error(NO_DESCRIPTION.format(kind=rest[0]), "What happened?")
        return None

    def handle(self, request: Request, ctx: Context) -> Reply:
        if request.args and request.args[0].lower() == "report":
            parsed = parse_report(request.args[1:])
            return parsed if isinstance(parsed, Reply) else self.report(request, ctx, parsed)
        return self.open(request, ctx)

    def open(self, request: Request, ctx: Context) -> Reply:
        args = list(request.args)
        ids = ctx.services.contract_ids()
        bound = ctx.policy.bound_contract(request.channel)
        if args[0] not in ids and bound is not None:
            args = [bound, *args]
        elif args[0] not in ids and _known_kind(ctx, args[0]):
            yours = [c for c in ids if ctx.policy.can(ctx.who, "incident", c)]
            return error(
                WHICH_CONTRACT.format(kind=args[0], yours=", ".join(yours) or "none yet"),
                "Which contract?",
            )
        resolved = resolve_contract(request, ctx, "incident", args)
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        kinds = incident_kinds(contract)
        if len(rest) >= 3 and match_kind(kinds, f"{rest[0]} {rest[1]}"):
            rest = [f"{rest[0]} {rest[1]}", *rest[2:]]
        register = IncidentRegister(ctx.services)
        try:
            incident = register.open(
                contract,
                rest[0],
                " ".join(rest[1:]),
                request.user,
                ctx.services.now(),
                may=_may(ctx),
            )
        except IncidentError as exc:
            return error(str(exc), "Incident not logged")
        rule = kinds[incident.kind].rule
        lines = [f"{incident.label} logged on {contract.name} as incident #{incident.id}."]
        if incident.immediate:
            lines.append(
                "The commissioner is being notified now; file the written report with "
                f'`incident report {incident.id} "…"` as soon as you can.'
            )
        else:
            lines.append(
                f"Report due by {when_text(incident.deadline)} ({rule.describe()}). "
                "Reminders go out at 50% and 90% of that time; file it with "
                f'`incident report {incident.id} "…"`.'
            )
        reply = Reply(
            f"Incident #{incident.id} logged · {contract.id}", "\n".join(lines), kind="done"
        )
        reply.actions = [Action("Incident register", f"incidents {contract.id}")]
        return reply

    def report(self, request: Request, ctx: Context, args: ReportArgs) -> Reply:
        register = IncidentRegister(ctx.services)
        found = register.get(args.incident_id)
        if found is not None and not ctx.policy.can(ctx.who, "incident", found.contract_id):
            return refuse(request, ctx, "incident", found.contract_id)
        try:
            incident = register.report(
                args.incident_id,
                args.report,
                args.action_plan,
                request.user,
                ctx.services.now(),
                may=_may(ctx),
            )
        except IncidentNotAllowed as exc:
            return refuse(request, ctx, "incident", exc.contract_id)
        except IncidentError as exc:
            return error(str(exc), "Report not filed")
        assert incident.reported_at is not None
        if incident.immediate:
            timing = "The commissioner was notified when it was logged."
        elif incident.late:
            timing = (
                f"It was {span_text(incident.reported_at - incident.deadline)} late: "
                f"due by {when_text(incident.deadline)}."
            )
        else:
            timing = f"It was on time: due by {when_text(incident.deadline)}."
        plan = (
            "The action plan is recorded with it."
            if incident.action_plan
            else "No action plan was marked (write `Action plan: …` in the report next time)."
        )
        text = (
            f"Report filed for incident #{incident.id} ({incident.label}) on "
            f"{incident.contract_id}. {timing} Its clock has stopped, so no more reminders "
            f"go out.\n{plan}"
        )
        reply = Reply(
            f"Incident #{incident.id} reported · {incident.contract_id}", text, kind="done"
        )
        reply.actions = [Action("Incident register", f"incidents {incident.contract_id}")]
        return reply


class IncidentsHandler(CommandHandler):
    verb = "incidents"
    summary = "the incident register: what is open, overdue, and reported on time or late"
    usage = "incidents [contract] [open]"
    examples: tuple[str, ...] = (
        "incidents",
        "incidents childrens-trust",
        "incidents healthy-child-0-19 open",
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        words = [a for a in request.args if a.lower() != "open"]
        open_only = len(words) != len(request.args)
        if not words and ctx.policy.bound_contract(request.channel) is None:
            ids = ctx.policy.visible(ctx.who, ctx.services.contract_ids())
            if not ids:
                return Reply(
                    "No contracts yet",
                    f"You have no kpibot contracts yet; {ctx.policy.grantor} can give you access.",
                    kind="refusal",
                    ephemeral=True,
                )
            return self.table(ctx, ids, "your contracts", open_only)
        resolved = resolve_contract(request, ctx, "view", words)
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        if rest:
            return error(
                f"I did not understand '{' '.join(rest)}'; usage: `{self.usage}`.", "Incidents"
            )
        return self.table(ctx, [contract.id], contract.id, open_only)

    def table(self, ctx: Context, ids: list[str], scope: str, open_only: bool) -> Reply:
        now = ctx.services.now()
        incidents = IncidentRegister(ctx.services).list(ids, include_closed=not open_only)
        rags = {i.id: i.rag(now) for i in incidents}
        still_open = sorted(
            (i for i in incidents if i.is_open), key=lambda i: (rags[i.id] != "red", i.deadline)
        )
        closed = sorted((i for i in incidents if not i.is_open), key=lambda i: -i.id)
        several = len(ids) > 1
        columns = ["#", *(["Contract"] if several else []), "Type", "Opened", "Deadline", "Status"]
        title = f"Incident register · {scope}" + (" · open only" if open_only else "")
        reply = Reply(title, columns=columns)
        for i in [*still_open, *closed][:MAX_ROWS]:
            rag = rags[i.id]
            reply.rows.append(
                [
                    Cell(f"#{i.id}", rag),
                    *([Cell(i.contract_id)] if several else []),
                    Cell(i.label),
                    Cell(_when(i.opened_at)),
                    Cell(_when(i.deadline)),
                    Cell(_status(i, now), rag),
                ]
            )
        counts = {rag: sum(1 for r in rags.values() if r == rag) for rag in RAG_DOT}
        reply.text = (
            f"{RAG_DOT['red']} {counts['red']} overdue · {RAG_DOT['amber']} "
            f"{counts['amber']} open · {RAG_DOT['green']} {counts['green']} reported on "
            f"time · {RAG_DOT['grey']} {counts['grey']} reported late"
        )
        if not incidents:
            reply.text = "No open incidents." if open_only else "No incidents logged."
        hidden = len(incidents) - MAX_ROWS
        more = f"…and {hidden} more. " if hidden > 0 else ""
        reply.footer = f'{more}{LEGEND} `incident report <id> "…"` files a report.'
        return reply


def _status(incident: Incident, now: datetime) -> str:
    if incident.is_open:
        if incident.overdue(now):
            return f"overdue by {span_text(now - incident.deadline)}"
        return f"open · {span_text(incident.deadline - now)} left"
    assert incident.reported_at is not None
    if incident.late:
        return f"reported {span_text(incident.reported_at - incident.deadline)} late"
    return f"reported on time ({_when(incident.reported_at)})"


def _may(ctx: Context) -> Callable[[str], bool]:
    return lambda contract_id: ctx.policy.can(ctx.who, "incident", contract_id)


def _known_kind(ctx: Context, word: str) -> bool:
    """Whether ``word`` names an incident type of any contract (so it is not a contract name)."""
    kinds: set[str] = set(DEFAULT_INCIDENT_RULES)
    for contract in ctx.services.all_contracts():
        kinds.update(contract.incidents)
    return match_kind(kinds, word) is not None

"""``actionplan``: underperformance action plans in chat (seed 003 Schedule 3, seed 001 2.7).

Syntax (the contract may be left out in a channel bound to one)::

    actionplan <contract> [show]                         the contract's plans, open first
    actionplan <contract> show <id>                      one plan: state, actions, next steps
    actionplan <contract> new [KPI …] "areas of underperformance"
    actionplan <contract> detect [period]                open plans for KPIs red 2+ periods running
                                                         or at critical failure (commissioners)
    actionplan <contract> update <id> add-action "what" owner:"Name" due:2020-03-31
    actionplan <contract> update <id> done <n> ["note"]
    actionplan <contract> update <id> agree | review ["meeting date"]
    actionplan <contract> update <id> improved "progress report"      (closes the plan)
    actionplan <contract> update <id> not-improved "note"    (escalates after the first review,
                                                              instigates penalties after the final)
    actionplan <contract> update <id> escalate "exception report" | penalty "why"
                                    | decommission "why" | withdraw "why"
    actionplan <contract> close <id> "progress report"

Providers draft plans and add and complete actions; commissioners also agree plans, arrange
reviews, record outcomes, escalate and apply penalties. Every reply lists the caller's next
allowed steps as buttons; a step that needs a note asks for it with a form.

>>> # dispatch(Request.from_text('actionplan childrens-trust new C7 "Adoption timeliness"', ...), ctx)
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from kpibot.commands.base import CommandHandler, Context
from kpibot.commands.resolve import refuse, resolve_contract
from kpibot.core.access import Action as Permission
from kpibot.core.protocol import Action, Cell, Form, FormField, Reply, ReplyKind, Request, error
from kpibot.engine.actionplan import (
    ACTION_NEEDS,
    STATE_WORDS,
    Event,
    Role,
    Transition,
    allowed,
    find,
    review_outcome,
)
from kpibot.engine.calendar import LONDON
from kpibot.engine.model import Contract
from kpibot.features.actionplan import (
    ActionPlan,
    ActionPlanError,
    ActionPlanService,
    describe_progress,
    open_plans_summary,
)
from kpibot.files.figures import check_period

MAX_ROWS = 20
SUBS = ("show", "new", "detect", "update", "close")
SIMPLE: dict[str, Event] = {
    "agree": "agree",
    "review": "review",
    "escalate": "escalate",
    "penalty": "penalty",
    "decommission": "decommission",
    "withdraw": "withdraw",
    "close": "close",
}
UPDATE_WORDS = ("add-action", "done", *SIMPLE, "improved", "not-improved")
_ID = re.compile(r"#?(\d{1,9})", re.ASCII)
_CODE_LIKE = re.compile(r"^[A-Za-z]{1,4}-?\d{1,3}[a-z]?$")
_DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d %b %Y", "%d %B %Y", "%d-%m-%Y")

# User-facing wording for this verb, kept together.
USAGE = (
    'actionplan <contract> [show [id] | new [KPI …] "areas" | update <id> … | close <id> "report"]'
)
UNKNOWN_SUB = (
    "I don't know '{word}' here; use show, new, update, close or detect, e.g. `{example}`."
)
NO_ID = "Give the plan's number, e.g. `actionplan {contract} {sub} 3`; `actionplan {contract}` lists them."
NO_UPDATE = "Say what to update on plan #{id}: {words}."
UNKNOWN_UPDATE = "'{word}' is not an update I know; use one of: {words}."
ACTION_SYNTAX = 'e.g. `actionplan {contract} update {id} add-action "Weekly audit" owner:"Jane Smith" due:2020-03-31`'
BAD_DATE = "I could not read '{text}' as a date; write it as 2020-03-31 or 31/03/2020."
NO_NUMBER = "Say which action is done, e.g. `actionplan {contract} update {id} done 1`."
NOT_A_CODE = (
    "{contract} has no KPI '{code}'; `status {contract}` lists its KPIs "
    "(start the areas with a word, not a code)."
)
NO_ROLE = "Only the commissioner or the provider can change action plans; you are a {role}."
DONE_TITLES: dict[Event, str] = {
    "add_action": "Action added",
    "complete_action": "Action done",
    "agree": "Plan agreed",
    "review": "Review meeting arranged",
    "close": "Plan closed",
    "escalate": "Escalated to a FINAL action plan",
    "penalty": "Penalty clauses instigated",
    "decommission": "Service decommissioned",
    "withdraw": "Plan withdrawn",
}
NO_PLANS = 'No action plans on {contract}. Open one with `actionplan {contract} new C7 "areas…"`.'


def split_tags(words: Iterable[str], names: dict[str, str]) -> tuple[str, dict[str, str]]:
    """Split 'free text owner: Jane due: 2020-03-31' into the free text and the tagged values.

    ``names`` maps every accepted tag (and synonym) to its canonical name. Works on shell-split
    words, so quoted and unquoted values (as chat forms send them) read the same.

    >>> split_tags(["Weekly audit", "owner:Jane Smith", "due:", "2020-03-31"],
    ...            {"owner": "owner", "due": "due"})
    ('Weekly audit', {'owner': 'Jane Smith', 'due': '2020-03-31'})
    """
    text = " ".join(words)
    alternatives = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    parts = re.split(rf"(?:^|(?<=\s))({alternatives}):", text, flags=re.IGNORECASE)
    free = parts[0].strip()
    tags: dict[str, str] = {}
    for name, value in zip(parts[1::2], parts[2::2], strict=True):
        tags[names[name.lower()]] = value.strip().strip('"').strip()
    return free, tags


def parse_due(text: str) -> date | None:
    """A due date from '2020-03-31', '31/03/2020' or '31 Mar 2020'; None if unreadable."""
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), fmt).date()
        except ValueError:
            continue
    return None


def parse_id(token: str | None) -> int | None:
    match = _ID.fullmatch(token.strip()) if token else None
    return int(match[1]) if match else None


@dataclass(frozen=True)
class NewPlan:
    """``new [KPI …] "areas"`` as read against a contract's KPI codes."""

    kpis: tuple[str, ...]
    areas: str


def parse_new(words: list[str], codes: Collection[str]) -> NewPlan | str:
    """Leading words that are KPI codes, then the areas; a string says what is wrong."""
    known = {c.lower(): c for c in codes}
    kpis: list[str] = []
    rest = list(words)
    while rest and rest[0].strip(",").lower() in known:
        kpis.append(known[rest.pop(0).strip(",").lower()])
    if rest and _CODE_LIKE.match(rest[0].strip(",")):
        return rest[0]
    return NewPlan(tuple(kpis), " ".join(rest).strip())


def _role(ctx: Context) -> Role | None:
    role = ctx.who.role
    return role if role == "commissioner" or role == "provider" else None


def _who(ctx: Context, user: str) -> str:
    """A user's name from the access policy (their id when it has none)."""
    grant = ctx.policy.users.get(user)
    return grant.name if grant is not None and grant.name else user


def _when(moment: datetime) -> str:
    return f"{moment.astimezone(LONDON):%-d %b %Y}"


class ActionPlanHandler(CommandHandler):
    verb = "actionplan"
    summary = "underperformance action plans: open, add actions, agree, review, escalate, close"
    usage = USAGE
    examples = (
        "actionplan childrens-trust",
        'actionplan childrens-trust new C7 C9 "Adoption timeliness and care leaver contact"',
        'actionplan childrens-trust update 1 add-action "Weekly tracker" owner:"Jane Smith" due:2020-03-31',
        "actionplan childrens-trust update 1 agree",
        'actionplan childrens-trust close 1 "C7 back above target two quarters running"',
    )

    def handle(self, request: Request, ctx: Context) -> Reply:
        resolved = resolve_contract(request, ctx, "view")
        if isinstance(resolved, Reply):
            return resolved
        contract, rest = resolved
        sub = rest[0].lower() if rest else "show"
        args = rest[1:]
        if parse_id(sub) is not None:  # 'actionplan childrens-trust 3' shows plan #3
            sub, args = "show", rest
        if sub not in SUBS:
            return error(UNKNOWN_SUB.format(word=rest[0], example=self.examples[1]), "Action plans")
        plans = ActionPlanService(ctx.services)
        if sub == "show":
            if not args:
                return self.listing(ctx, contract, plans)
            plan_id = parse_id(args[0])
            if plan_id is None:
                return error(NO_ID.format(contract=contract.id, sub="show"), "Which plan?")
            try:
                return self.detail(ctx, contract, plans.get(plan_id, contract.id))
            except ActionPlanError as exc:
                return error(str(exc), "Unknown action plan")
        action: Permission = "approve" if sub == "detect" else "submit"
        if not ctx.policy.can(ctx.who, action, contract.id):
            return refuse(request, ctx, action, contract.id)
        role = _role(ctx)
        if role is None:
            return error(NO_ROLE.format(role=ctx.who.role), "Not allowed")
        now = ctx.services.now()
        try:
            if sub == "new":
                return self.open(request, ctx, contract, plans, args, now)
            if sub == "detect":
                return self.detect(request, ctx, contract, plans, args, now)
            plan_id = parse_id(args[0] if args else None)
            if plan_id is None:
                return error(NO_ID.format(contract=contract.id, sub=sub), "Which plan?")
            if sub == "close":
                return self.update(
                    request, ctx, contract, plans, plan_id, ["close", *args[1:]], role, now
                )
            return self.update(request, ctx, contract, plans, plan_id, args[1:], role, now)
        except ActionPlanError as exc:
            return error(str(exc), "Action plan unchanged")

    # ------------------------------------------------------------------ sub-commands
    def open(
        self,
        request: Request,
        ctx: Context,
        contract: Contract,
        plans: ActionPlanService,
        args: list[str],
        now: datetime,
    ) -> Reply:
        parsed = parse_new(args, [k.code for k in contract.kpis])
        if isinstance(parsed, str):
            return error(NOT_A_CODE.format(contract=contract.id, code=parsed), "Unknown KPI")
        plan = plans.open(contract, parsed.kpis, parsed.areas, request.user, now)
        return self.detail(ctx, contract, plan, f"Opened action plan #{plan.id}", "done")

    def detect(
        self,
        request: Request,
        ctx: Context,
        contract: Contract,
        plans: ActionPlanService,
        args: list[str],
        now: datetime,
    ) -> Reply:
        period = None
        if args:
            found = check_period(contract, " ".join(args), now.date())
            if isinstance(found, str):
                return error(found, "Which period?")
            period = found
        opened = plans.detect_and_open(contract, request.user, now, period)
        if not opened:
            triggers = plans.triggers(contract, period)
            why = (
                "the KPIs it finds are already covered by open plans"
                if triggers
                else f"no KPI is red {plans.consecutive_red} periods running or at critical failure"
            )
            reply = Reply(f"No new action plan · {contract.id}", f"Nothing new to open: {why}.")
            reply.actions = [Action("Action plans", f"actionplan {contract.id}")]
            return reply
        reply = Reply(
            f"Opened {len(opened)} action plan{'s' if len(opened) != 1 else ''} · {contract.id}",
            "\n".join(f"#{p.id} {', '.join(p.kpis)}: {p.trigger}" for p in opened),
            kind="done",
        )
        reply.actions = [
            Action(f"Show #{p.id}", f"actionplan {contract.id} show {p.id}", "primary")
            for p in opened[:5]
        ]
        return reply

    def update(
        self,
        request: Request,
        ctx: Context,
        contract: Contract,
        plans: ActionPlanService,
        plan_id: int,
        args: list[str],
        role: Role,
        now: datetime,
    ) -> Reply:
        words = ", ".join(UPDATE_WORDS)
        if not args:
            return error(NO_UPDATE.format(id=plan_id, words=words), "Update what?")
        word, rest = args[0].lower(), args[1:]
        plan = plans.get(plan_id, contract.id)
        if word == "add-action":
            return self.add_action(request, ctx, contract, plans, plan, rest, role, now)
        if word == "done":
            number = parse_id(rest[0] if rest else None)
            if number is None:
                return error(NO_NUMBER.format(contract=contract.id, id=plan_id), "Which action?")
            after = plans.complete_action(
                plan_id,
                number,
                role,
                request.user,
                now,
                " ".join(rest[1:]),
                contract_id=contract.id,
            )
            return self.detail(
                ctx, contract, after, f"Action {number} done · plan #{plan_id}", "done"
            )
        if word in ("improved", "not-improved"):
            event: Event = review_outcome(plan.state, word == "improved")
        elif word in SIMPLE:
            event = SIMPLE[word]
        else:
            return error(UNKNOWN_UPDATE.format(word=args[0], words=words), "Update what?")
        note = " ".join(rest).strip()
        row = find(plan.state, event)
        if row is not None and row.note and not note and role in row.roles:
            return self.ask_note(contract, plan, row, " ".join(args[:1]))
        after = plans.transition(
            plan_id, event, role, request.user, now, note, contract_id=contract.id
        )
        title = f"{DONE_TITLES[event]} · plan #{plan_id}"
        return self.detail(ctx, contract, after, title, "done")

    def add_action(
        self,
        request: Request,
        ctx: Context,
        contract: Contract,
        plans: ActionPlanService,
        plan: ActionPlan,
        words: list[str],
        role: Role,
        now: datetime,
    ) -> Reply:
        what, tags = split_tags(
            words, {"owner": "owner", "who": "owner", "due": "due", "by": "due"}
        )
        if not words:
            reply = error(
                "Describe the action, its owner and its due date, "
                + ACTION_SYNTAX.format(contract=contract.id, id=plan.id)
                + ".",
                "Add an action",
            )
            reply.form = Form(
                f"Add an action to plan #{plan.id}",
                f"actionplan {contract.id} update {plan.id} add-action",
                (
                    FormField("description", "Action", "what will be done"),
                    FormField("owner", "Owner", "owner: Jane Smith", "owner: "),
                    FormField("due", "Due date", "due: 2020-03-31", "due: "),
                ),
            )
            return reply
        due = None
        if tags.get("due"):
            due = parse_due(tags["due"])
            if due is None:
                return error(BAD_DATE.format(text=tags["due"]), "Which date?")
        try:
            after = plans.add_action(
                plan.id,
                what,
                tags.get("owner"),
                due,
                role,
                request.user,
                now,
                contract_id=contract.id,
            )
        except ActionPlanError as exc:
            text = str(exc)
            if text in ACTION_NEEDS.values():
                text = (
                    text.rstrip(".")
                    + ", "
                    + ACTION_SYNTAX.format(contract=contract.id, id=plan.id)
                    + "."
                )
            return error(text, "Action not added")
        added = after.actions[-1]
        return self.detail(
            ctx, contract, after, f"Added action {added.number} · plan #{plan.id}", "done"
        )

    def ask_note(self, contract: Contract, plan: ActionPlan, row: Transition, word: str) -> Reply:
        reply = Reply(f"{row.label} · plan #{plan.id}", row.note or "", kind="info", ephemeral=True)
        verb = (
            f"actionplan {contract.id} close {plan.id}"
            if word == "close"
            else f"actionplan {contract.id} update {plan.id} {word}"
        )
        reply.form = Form(
            row.label,
            verb,
            (FormField("note", "Note", row.note or "", multiline=True),),
            submit_label="Send",
        )
        return reply

    # ------------------------------------------------------------------ views
    def listing(self, ctx: Context, contract: Contract, plans: ActionPlanService) -> Reply:
        found = plans.list([contract.id])
        if not found:
            reply = Reply(f"Action plans · {contract.id}", NO_PLANS.format(contract=contract.id))
            if ctx.policy.can(ctx.who, "approve", contract.id):
                reply.actions = [
                    Action("Detect underperformance", f"actionplan {contract.id} detect")
                ]
            return reply
        found.sort(key=lambda p: (not p.is_open, -p.id))
        today = ctx.services.now().astimezone(LONDON).date()
        reply = Reply(
            f"Action plans · {contract.id}",
            "\n".join(open_plans_summary(ctx.services, contract)),
            columns=["Plan", "KPIs", "State", "Opened"],
        )
        for p in found[:MAX_ROWS]:
            rag = (
                None
                if not p.is_open
                else "red"
                if p.state in ("final_plan", "final_review", "penalty")
                else "amber"
            )
            reply.rows.append(
                [
                    Cell(f"#{p.id}", rag),
                    Cell(", ".join(p.kpis) or "—"),
                    Cell(describe_progress(p, today) if p.is_open else STATE_WORDS[p.state]),
                    Cell(_when(p.opened_at)),
                ]
            )
        reply.footer = (
            f"`actionplan {contract.id} show <id>` shows a plan with its actions and next steps."
        )
        reply.actions = [
            Action(f"Show #{p.id}", f"actionplan {contract.id} show {p.id}")
            for p in found[:5]
            if p.is_open
        ]
        return reply

    def detail(
        self,
        ctx: Context,
        contract: Contract,
        plan: ActionPlan,
        title: str | None = None,
        kind: ReplyKind = "info",
    ) -> Reply:
        today = ctx.services.now().astimezone(LONDON).date()
        lines = [
            f"*State:* {STATE_WORDS[plan.state]} (since {_when(plan.state_since)})",
            f"*KPIs:* {', '.join(plan.kpis) or '—'}",
            f"*Areas of underperformance:* {plan.areas}",
        ]
        if plan.trigger:
            lines.append(f"*Identified:* {plan.trigger}")
        for event, label in (
            ("review", "Review meeting"),
            ("escalate", "Exception report"),
            ("close", "Progress report"),
            ("penalty", "Penalty"),
            ("decommission", "Decommissioned"),
            ("withdraw", "Withdrawn"),
        ):
            entry = plan.last(event)
            if entry is not None and entry.note:
                lines.append(
                    f"*{label}:* {entry.note} ({_who(ctx, entry.actor)}, {_when(entry.at)})"
                )
        reply = Reply(
            title or f"Action plan #{plan.id} · {contract.id}",
            "\n".join(lines),
            kind=kind,
            columns=["#", "Action", "Owner", "Due", "Done"],
        )
        for a in plan.actions:
            rag = (
                "green"
                if a.done_at
                else "red"
                if a.due < today
                else "amber"
                if (a.due - today).days <= 7
                else None
            )
            stage = " (FINAL plan)" if a.stage == "final" else ""
            reply.rows.append(
                [
                    Cell(str(a.number), rag),
                    Cell(a.description + stage),
                    Cell(a.owner),
                    Cell(f"{a.due:%a %-d %b %Y}"),
                    Cell(
                        f"{_when(a.done_at)} by {_who(ctx, a.done_by or '')}"
                        if a.done_at
                        else "not yet"
                    ),
                ]
            )
        if not plan.actions:
            reply.text += "\n_No actions yet: every action needs an owner and a due date._"
        reply.footer = "Log: " + "; ".join(
            f"{e.event.replace('_', ' ')} by {_who(ctx, e.actor)} {_when(e.at)}"
            for e in plan.history[-5:]
        )
        role = _role(ctx)
        if role is not None and ctx.policy.can(ctx.who, "submit", contract.id):
            reply.actions = self.buttons(contract, plan, role)
        return reply

    @staticmethod
    def buttons(contract: Contract, plan: ActionPlan, role: Role) -> list[Action]:
        base = f"actionplan {contract.id}"
        out: list[Action] = []
        for row in allowed(plan.snapshot(), role):
            if row.event == "add_action":
                out.append(Action(row.label, f"{base} update {plan.id} add-action"))
            elif row.event == "complete_action":
                out.extend(
                    Action(f"Done: action {a.number}", f"{base} update {plan.id} done {a.number}")
                    for a in plan.open_actions()[:3]
                )
            elif row.event == "close":
                out.append(Action(row.label, f"{base} close {plan.id}", "primary"))
            else:
                style: Literal["primary", "danger"] = (
                    "danger"
                    if row.event in ("escalate", "penalty", "decommission", "withdraw")
                    else "primary"
                )
                out.append(Action(row.label, f"{base} update {plan.id} {row.event}", style))
        return out

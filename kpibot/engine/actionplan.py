"""The underperformance workflow as a pure, table-driven state machine, and the rules that open it.

Seed 003 (Schedule 3) and seed 001 (2.7) describe one process. Underperformance (U/P) is identified
at monitoring; the provider drafts an action plan (areas of U/P, actions with an owner and a due
date, accountability) and the commissioner agrees it; a review meeting follows. Improvement closes
the plan ("No further action. Progress report to commissioners."). No improvement escalates it:
a FINAL re-negotiated action plan and an exception report to the Assistant Director, then a second
review, which either closes the plan or instigates penalty clauses, and finally decommissioning.

States and the events between them (the full table is ``TRANSITIONS``)::

    opened ──agree──▶ plan_agreed ──review──▶ under_review ──close──▶ closed
       │                                         │
       └─withdraw─▶ closed                       └─escalate─▶ final_plan ──review──▶ final_review
                                                                                   │    │
                                                        closed ◀──close────────────┘    └─penalty─▶ penalty
                                                                                     decommissioned ◀─┘

``add_action`` and ``complete_action`` keep the state. Every transition names who may take it,
what it needs (a note, actions with owners and due dates) and why it is refused otherwise.

>>> plan = PlanState("opened")
>>> plan = apply(plan, Step("add_action", "provider", action=ActionItem(1, "Weekly caseload audit",
...                                                                    "Jane Smith", date(2020, 3, 31))))
>>> apply(plan, Step("agree", "commissioner")).state
'plan_agreed'
>>> refusal(plan, Step("close", "commissioner", note="Improved"))
"A plan can only be closed after a review meeting (or once penalties apply); this one is at 'opened'."
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal, get_args

import pandas as pd

from kpibot.engine.calendar import LONDON
from kpibot.engine.freetext import PLAN_ACTION, PLAN_NOTE, PLAN_OWNER, first_problem
from kpibot.engine.model import Contract

State = Literal[
    "opened",
    "plan_agreed",
    "under_review",
    "final_plan",
    "final_review",
    "closed",
    "penalty",
    "decommissioned",
]
Event = Literal[
    "add_action",
    "complete_action",
    "agree",
    "review",
    "close",
    "escalate",
    "penalty",
    "decommission",
    "withdraw",
]
Role = Literal["commissioner", "provider"]
Stage = Literal["plan", "final"]

STATES: tuple[State, ...] = get_args(State)
EVENTS: tuple[Event, ...] = get_args(Event)
ROLES: tuple[Role, ...] = get_args(Role)
TERMINAL: frozenset[State] = frozenset({"closed", "decommissioned"})
# States in which actions are being worked on, so their due dates are chased.
WORKING: frozenset[State] = frozenset(
    {"opened", "plan_agreed", "under_review", "final_plan", "final_review"}
)
OPEN: frozenset[State] = frozenset(STATES) - TERMINAL

STATE_WORDS: dict[State, str] = {
    "opened": "underperformance identified; action plan being drafted",
    "plan_agreed": "action plan agreed",
    "under_review": "review meeting arranged",
    "final_plan": "FINAL re-negotiated action plan being drawn up (exception report sent)",
    "final_review": "review meeting on the FINAL action plan arranged",
    "closed": "closed",
    "penalty": "penalty clauses instigated",
    "decommissioned": "service decommissioned",
}
EVENT_WORDS: dict[Event, str] = {
    "add_action": "add an action",
    "complete_action": "mark an action done",
    "agree": "agree the action plan",
    "review": "arrange the review meeting",
    "close": "close the plan",
    "escalate": "escalate to a FINAL action plan",
    "penalty": "instigate penalty clauses",
    "decommission": "decommission the service",
    "withdraw": "withdraw the plan",
}
# Why an event is refused in a state the table has no row for; ``{state}`` is the plan's state.
NOT_HERE: dict[Event, str] = {
    "add_action": "Actions can only be added while a plan is drafted ('opened' or 'final_plan'), "
    "or by the commissioner once it is agreed; this one is at '{state}'.",
    "complete_action": "Actions can only be marked done while the plan is being worked; "
    "this one is at '{state}'.",
    "agree": "Only a plan being drafted can be agreed; this one is at '{state}'.",
    "review": "A review meeting can only be arranged once a plan is agreed or a FINAL plan is "
    "drawn up; this one is at '{state}'.",
    "close": "A plan can only be closed after a review meeting (or once penalties apply); "
    "this one is at '{state}'.",
    "escalate": "A plan can only be escalated when its first review meeting finds no improvement; "
    "this one is at '{state}'.",
    "penalty": "Penalty clauses can only be instigated after the review of the FINAL action plan; "
    "this one is at '{state}'.",
    "decommission": "The service can only be decommissioned once penalty clauses are instigated; "
    "this one is at '{state}'.",
    "withdraw": "A plan can only be withdrawn before it is agreed; this one is at '{state}'.",
}
FINISHED = "This plan is {state} and nothing more can happen to it; open a new plan if it recurs."
WRONG_ROLE = "Only the {roles} can {words}; you act for the {role}."
NO_ACTIONS = "A plan needs at least one action before it can be agreed."
NO_FINAL_ACTIONS = (
    "The FINAL plan needs at least one re-negotiated action, added since the escalation, "
    "before its review meeting."
)
INCOMPLETE_ACTION = (
    "Action {n} (“{text}”) has no {missing}; every action needs an owner and a due date "
    "before the plan can be {done}."
)
ACTION_NEEDS = {
    "description": "An action needs a description of what will be done.",
    "owner": "Every action needs an owner: name who is accountable for it.",
    "due": "Every action needs a due date (its timeframe).",
}
DUE_PAST = "The due date {due:%-d %b %Y} has already passed; give a date from today on."
NO_SUCH_ACTION = "There is no action {n} on this plan; it has {have}."
ALREADY_DONE = "Action {n} was already marked done on {when:%-d %b %Y}."


@dataclass(frozen=True)
class ActionItem:
    """One action of a plan: what, who is accountable, by when, and when it was done."""

    number: int
    description: str
    owner: str | None
    due: date | None
    stage: Stage = "plan"
    done_at: datetime | None = None


@dataclass(frozen=True)
class PlanState:
    """What the state machine needs to know about a plan: its state and its actions."""

    state: State
    actions: tuple[ActionItem, ...] = ()

    def action(self, number: int) -> ActionItem | None:
        return next((a for a in self.actions if a.number == number), None)

    def next_number(self) -> int:
        return max((a.number for a in self.actions), default=0) + 1


@dataclass(frozen=True)
class Step:
    """One attempted event: who (by role), with a note, a new action, or an action's number.

    ``at`` is when it happens (the engine never reads the clock); it stamps a completed action and
    refuses a new action whose due date has passed.
    """

    event: Event
    role: Role
    note: str = ""
    action: ActionItem | None = None
    number: int | None = None
    at: datetime | None = None


Check = Callable[[PlanState, Step], str | None]


@dataclass(frozen=True)
class Transition:
    """One row of the table: from ``source`` on ``event`` to ``target``, for ``roles``.

    ``note`` is the prompt when the step needs a note (a progress or exception report); ``checks``
    are the other preconditions, each returning a reason to refuse or None.
    """

    source: State
    event: Event
    target: State
    roles: frozenset[Role]
    label: str
    note: str | None = None
    checks: tuple[Check, ...] = ()


def _missing(action: ActionItem) -> str | None:
    if not action.description.strip():
        return "description"
    if not (action.owner or "").strip():
        return "owner"
    if action.due is None:
        return "due"
    return None


def _has_actions(plan: PlanState, _step: Step) -> str | None:
    return None if plan.actions else NO_ACTIONS


def _actions_complete(plan: PlanState, step: Step) -> str | None:
    done = "agreed" if step.event == "agree" else "reviewed"
    for a in plan.actions:
        missing = _missing(a)
        if missing is not None:
            word = "due date" if missing == "due" else missing
            return INCOMPLETE_ACTION.format(n=a.number, text=a.description, missing=word, done=done)
    return None


def _has_final_actions(plan: PlanState, _step: Step) -> str | None:
    return None if any(a.stage == "final" for a in plan.actions) else NO_FINAL_ACTIONS


def _new_action_valid(_plan: PlanState, step: Step) -> str | None:
    if step.action is None:
        return ACTION_NEEDS["description"]
    missing = _missing(step.action)
    if missing is not None:
        return ACTION_NEEDS[missing]
    due = step.action.due
    if step.at is not None and due is not None and due < step.at.astimezone(LONDON).date():
        return DUE_PAST.format(due=due)
    return None


def _action_open(plan: PlanState, step: Step) -> str | None:
    action = plan.action(step.number) if step.number is not None else None
    if action is None:
        numbers = [a.number for a in plan.actions]
        have = (
            "no actions yet"
            if not numbers
            else f"action{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}"
        )
        return NO_SUCH_ACTION.format(n=step.number if step.number is not None else "?", have=have)
    if action.done_at is not None:
        return ALREADY_DONE.format(n=action.number, when=action.done_at.astimezone(LONDON))
    return None


BOTH: frozenset[Role] = frozenset({"commissioner", "provider"})
COMMISSIONER: frozenset[Role] = frozenset({"commissioner"})
_ADD = (_new_action_valid,)
_DONE = (_action_open,)
PROGRESS_REPORT = "Closing needs the progress report to commissioners: say what improved."
EXCEPTION_REPORT = (
    "An escalation needs the exception report to the Assistant Director: say why performance "
    "has not improved or the plan was not kept."
)

TRANSITIONS: tuple[Transition, ...] = (
    Transition("opened", "add_action", "opened", BOTH, "Add an action", checks=_ADD),
    Transition("opened", "complete_action", "opened", BOTH, "Mark done", checks=_DONE),
    Transition(
        "opened",
        "agree",
        "plan_agreed",
        COMMISSIONER,
        "Agree the plan",
        checks=(_has_actions, _actions_complete),
    ),
    Transition(
        "opened",
        "withdraw",
        "closed",
        COMMISSIONER,
        "Withdraw",
        note="Say why the plan is withdrawn (for example, opened in error).",
    ),
    Transition(
        "plan_agreed", "add_action", "plan_agreed", COMMISSIONER, "Add an action", checks=_ADD
    ),
    Transition("plan_agreed", "complete_action", "plan_agreed", BOTH, "Mark done", checks=_DONE),
    Transition("plan_agreed", "review", "under_review", COMMISSIONER, "Arrange review meeting"),
    Transition("under_review", "complete_action", "under_review", BOTH, "Mark done", checks=_DONE),
    Transition(
        "under_review", "close", "closed", COMMISSIONER, "Improved: close", note=PROGRESS_REPORT
    ),
    Transition(
        "under_review",
        "escalate",
        "final_plan",
        COMMISSIONER,
        "Not improved: escalate",
        note=EXCEPTION_REPORT,
    ),
    Transition("final_plan", "add_action", "final_plan", BOTH, "Add an action", checks=_ADD),
    Transition("final_plan", "complete_action", "final_plan", BOTH, "Mark done", checks=_DONE),
    Transition(
        "final_plan",
        "review",
        "final_review",
        COMMISSIONER,
        "Arrange final review",
        checks=(_has_final_actions, _actions_complete),
    ),
    Transition("final_review", "complete_action", "final_review", BOTH, "Mark done", checks=_DONE),
    Transition(
        "final_review", "close", "closed", COMMISSIONER, "Improved: close", note=PROGRESS_REPORT
    ),
    Transition(
        "final_review",
        "penalty",
        "penalty",
        COMMISSIONER,
        "Not improved: penalty",
        note="Say which penalty clauses apply and why the failure occurred.",
    ),
    Transition(
        "penalty",
        "decommission",
        "decommissioned",
        COMMISSIONER,
        "Decommission",
        note="Say why the service is being decommissioned.",
    ),
    Transition(
        "penalty",
        "close",
        "closed",
        COMMISSIONER,
        "Close",
        note="Say how the matter was settled (the penalty applied and the service continues).",
    ),
)
TABLE: dict[tuple[State, Event], Transition] = {(t.source, t.event): t for t in TRANSITIONS}


class TransitionRefused(Exception):
    """A step the table does not allow; ``str(error)`` is one sentence a user can act on."""

    def __init__(self, reason: str, transition: Transition | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transition = transition


def find(state: State, event: Event) -> Transition | None:
    """The table's row for ``event`` in ``state``, or None when the event is not allowed there."""
    return TABLE.get((state, event))


def refusal(plan: PlanState, step: Step) -> str | None:
    """Why ``step`` cannot be taken on ``plan`` (one sentence), or None when it can.

    >>> refusal(PlanState("opened"), Step("agree", "provider"))
    'Only the commissioner can agree the action plan; you act for the provider.'
    """
    if plan.state in TERMINAL:
        return FINISHED.format(state=plan.state)
    row = find(plan.state, step.event)
    if row is None:
        return NOT_HERE[step.event].format(state=plan.state)
    if step.role not in row.roles:
        roles = " or the ".join(sorted(row.roles))
        return WRONG_ROLE.format(roles=roles, words=EVENT_WORDS[step.event], role=step.role)
    if row.note is not None and not step.note.strip():
        return row.note
    action = step.action
    problem = first_problem(
        (step.note, PLAN_NOTE),
        (action.description if action else None, PLAN_ACTION),
        (action.owner if action else None, PLAN_OWNER),
    )
    if problem is not None:
        return problem
    for check in row.checks:
        reason = check(plan, step)
        if reason is not None:
            return reason
    return None


def apply(plan: PlanState, step: Step) -> PlanState:
    """The plan after ``step``; raises :class:`TransitionRefused` with the reason if it is refused."""
    reason = refusal(plan, step)
    row = find(plan.state, step.event)
    if reason is not None or row is None:
        raise TransitionRefused(reason or NOT_HERE[step.event].format(state=plan.state), row)
    actions = plan.actions
    if step.event == "add_action" and step.action is not None:
        stage: Stage = "final" if plan.state == "final_plan" else "plan"
        added = replace(step.action, number=plan.next_number(), stage=stage, done_at=None)
        actions = (*actions, added)
    elif step.event == "complete_action":
        actions = tuple(
            replace(a, done_at=step.at) if a.number == step.number else a for a in actions
        )
    return PlanState(row.target, actions)


def allowed(plan: PlanState, role: Role) -> list[Transition]:
    """The transitions ``role`` could take next, assuming any note it needs is given.

    Adding and completing actions are included only when they could succeed (an open action for
    ``complete_action``); use this for the buttons under a plan.
    """
    out: list[Transition] = []
    for row in TRANSITIONS:
        if row.source != plan.state or role not in row.roles:
            continue
        if row.event == "complete_action":
            if any(a.done_at is None for a in plan.actions):
                out.append(row)
            continue
        if row.event == "add_action":
            out.append(row)
            continue
        probe = Step(row.event, role, note="(given)")
        if all(check(plan, probe) is None for check in row.checks):
            out.append(row)
    return out


def review_outcome(state: State, improved: bool) -> Event:
    """The event a review's outcome stands for: improvement closes the plan; no improvement
    escalates it after the first review and instigates penalty clauses after the FINAL one.

    >>> review_outcome("under_review", False), review_outcome("final_review", False)
    ('escalate', 'penalty')
    """
    if improved:
        return "close"
    return "penalty" if state == "final_review" else "escalate"


# ------------------------------------------------------------------------------ opening rules


@dataclass(frozen=True)
class Breach:
    """One KPI's part in a trigger: the periods that make the case."""

    kpi: str
    periods: tuple[str, ...]


@dataclass(frozen=True)
class Trigger:
    """Underperformance found in a scorecard: a reason, the period it was found at, the KPIs.

    ``key`` is stable for the same finding, so opening a plan per trigger is idempotent.
    """

    reason: Literal["consecutive_red", "critical_failure"]
    period: str
    breaches: tuple[Breach, ...]
    consecutive: int = 0
    periods_word: str = "periods"

    @property
    def kpis(self) -> tuple[str, ...]:
        return tuple(b.kpi for b in self.breaches)

    @property
    def key(self) -> str:
        if self.reason == "critical_failure":
            return f"critical@{self.period}"
        return f"red{self.consecutive}@{self.period}"

    @property
    def text(self) -> str:
        """'Red for 2 or more quarters running at 2019/20 Q3: C9 red 3 quarters running (…); …'"""
        if self.reason == "critical_failure":
            return f"Critical performance failure at {self.period}: {', '.join(self.kpis)}."
        word = self.periods_word
        parts = [
            f"{b.kpi} red {len(b.periods)} {word} running ({b.periods[0]} to {b.periods[-1]})"
            for b in self.breaches
        ]
        return f"Red for {self.consecutive} or more {word} running at {self.period}: " + (
            "; ".join(parts) + "."
        )


def detect(
    contract: Contract, scorecard_frame: pd.DataFrame, consecutive_red: int = 2
) -> list[Trigger]:
    """Underperformance triggers in a scorecard frame (``Scorecard.frame``), as of its latest period.

    A KPI triggers when its latest ``consecutive_red`` periods (or more), ending at the latest
    period of its kind with any figure, are all red with no gap; or when it is a critical failure
    at that latest period. KPIs of one reason are grouped into one trigger, critical first.

    >>> # detect(contract, services.scorecard(contract).frame)  -> [Trigger("consecutive_red", …)]
    """
    if consecutive_red < 1:
        raise ValueError("consecutive_red must be at least 1")
    if scorecard_frame.empty:
        return []
    rows = scorecard_frame[scorecard_frame["value"].notna()]
    if rows.empty:
        return []
    rows = rows.assign(_ord=[contract.parse_period(p).ordinal for p in rows["period"]])
    latest_by_kind = rows.groupby("kind")["_ord"].max().to_dict()
    order = {k.code: i for i, k in enumerate(contract.kpis)}
    red: list[Breach] = []
    critical: list[Breach] = []
    latest_label: dict[str, str] = {}
    for (code, kind), group in rows.groupby(["kpi", "kind"], sort=False):
        g = group.sort_values("_ord")
        last = g.iloc[-1]
        if last["_ord"] != latest_by_kind[kind]:
            continue
        latest_label[str(kind)] = str(last["period"])
        if bool(last["critical"]):
            critical.append(Breach(str(code), (str(last["period"]),)))
        streak: list[str] = []
        expected = int(last["_ord"])
        history = zip(g["_ord"].tolist(), g["rag"].tolist(), g["period"].tolist(), strict=True)
        for ordinal, rag, label in reversed(list(history)):
            if int(ordinal) != expected or rag != "red":
                break
            streak.append(str(label))
            expected -= 1
        if len(streak) >= consecutive_red:
            red.append(Breach(str(code), tuple(reversed(streak))))
    period = _headline_period(contract, latest_label)
    out: list[Trigger] = []
    if critical:
        critical.sort(key=lambda b: order.get(b.kpi, math.inf))
        out.append(Trigger("critical_failure", period, tuple(critical)))
    if red:
        red.sort(key=lambda b: order.get(b.kpi, math.inf))
        word = {"quarter": "quarters", "month": "months", "year": "years"}
        out.append(
            Trigger(
                "consecutive_red",
                period,
                tuple(red),
                consecutive_red,
                word.get(contract.reporting.period, "periods"),
            )
        )
    return out


def _headline_period(contract: Contract, latest_label: dict[str, str]) -> str:
    """The period a trigger is named after: the contract's reporting kind when it has figures."""
    kind = contract.reporting.period
    if kind in latest_label:
        return latest_label[kind]
    return max(latest_label.values(), key=lambda p: contract.parse_period(p).end, default="")

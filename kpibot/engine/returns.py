"""The quarterly return as a pure, table-driven state machine, and what a return still lacks.

A return is one submission event for a contract and period: the figures, a narrative (what is
working well, challenges, actions) and an exception report for each KPI whose target carries
"with exception reporting" and was not met. The provider builds it over several messages, then
submits it; a commissioner approves it, queries it with a reason (the provider amends and submits
again), or spot-checks and corrects it (approved, with the corrections counted against accuracy).

States and events (the full table is ``TRANSITIONS``)::

    draft ──submit──▶ submitted ──approve──▶ approved ──reopen──▶ submitted
      ▲  edit            │  │                  ▲  correct
      │                  │  └──correct─────────┘
    queried ◀──query─────┘
      └──submit──▶ submitted

"submitted" is what summaries and payments call *pending*. Every transition names who may take
it, what it needs (a reason, nothing missing) and why it is refused otherwise.

>>> ret = ReturnState("draft", missing=Missing(narrative=("challenges",)))
>>> refusal(ret, Step("submit", "provider", actor="U1"))
'This return is not complete yet; still needed: the narrative (challenges).'
>>> apply(ReturnState("submitted", submitted_by="U1"), Step("approve", "commissioner", "U2")).state
'approved'
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from kpibot.engine.freetext import (
    CONTROL,
    NARRATIVE_SECTION,
    QUERY_REASON,
    control_character,
    text_problem,
)

if TYPE_CHECKING:
    import pandas as pd

State = Literal["draft", "submitted", "approved", "queried"]
Event = Literal["edit", "submit", "approve", "query", "correct", "reopen"]
Role = Literal["commissioner", "provider"]

STATES: tuple[State, ...] = get_args(State)
EVENTS: tuple[Event, ...] = get_args(Event)
SECTIONS: tuple[str, ...] = ("working", "challenges", "actions")
SECTION_WORDS: dict[str, str] = {
    "working": "what is working well",
    "challenges": "challenges",
    "actions": "actions",
}
DEFAULT_SECTION_LIMIT = NARRATIVE_SECTION.limit

# The figure status that goes with each state of the return (``figures.status``).
FIGURE_STATUS: dict[State, str] = {
    "draft": "submitted",
    "submitted": "pending",
    "approved": "approved",
    "queried": "queried",
}
STATE_WORDS: dict[State, str] = {
    "draft": "being prepared (not submitted yet)",
    "submitted": "submitted and pending approval",
    "approved": "approved",
    "queried": "queried by the commissioner; the provider is amending it",
}
EVENT_WORDS: dict[Event, str] = {
    "edit": "change the return",
    "submit": "submit the return",
    "approve": "approve the return",
    "query": "query the return",
    "correct": "correct the return",
    "reopen": "reopen the return",
}
NOT_HERE: dict[Event, str] = {
    "edit": "This return is {words}, so it cannot be changed now; "
    "ask the commissioner to query it if something is wrong.",
    "submit": "This return is {words}, so there is nothing to submit.",
    "approve": "Only a submitted return can be approved; this one is {words}.",
    "query": "Only a submitted return can be queried; this one is {words}.",
    "correct": "Only a submitted or approved return can be corrected; this one is {words}.",
    "reopen": "Only an approved return is reopened by new figures; this one is {words}.",
}
WRONG_ROLE = "Only the {roles} can {words}; you act for the {role}."
OWN_RETURN = "You submitted this return, so someone else must {words}."
INCOMPLETE = "This return is not complete yet; still needed: {needed}."
NEEDS_REASON: dict[Event, str] = {
    "query": "A query needs a reason, so the provider knows what to amend, "
    'e.g. `query childrens-trust 2019/20 Q3 "C5 numerator looks doubled"`.',
    "correct": "A correction needs a reason: say what the spot-check found.",
    "reopen": "Reopening an approved return needs a reason: say which figures changed.",
}


@dataclass(frozen=True)
class Missing:
    """What a return still lacks: KPI codes without figures, narrative sections, exception reports.

    >>> Missing(figures=("C1", "C2"), exceptions=("C5",)).needed()
    'figures for C1 and C2; an exception report for C5'
    >>> Missing(narrative=SECTIONS).summary(figures_in=True)
    'figures in, narrative missing'
    """

    figures: tuple[str, ...] = ()
    narrative: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.figures or self.narrative or self.exceptions)

    def needed(self) -> str:
        """A noun phrase for reminders ("Still needed: …"); empty when nothing is missing."""
        parts: list[str] = []
        if self.figures:
            parts.append(f"figure{'s' if len(self.figures) > 1 else ''} for {_and(self.figures)}")
        if self.narrative:
            if len(self.narrative) == len(SECTIONS):
                parts.append("the narrative (working well, challenges, actions)")
            else:
                parts.append(f"the narrative ({_and([SECTION_WORDS[s] for s in self.narrative])})")
        if self.exceptions:
            many = len(self.exceptions) > 1
            parts.append(
                f"{'exception reports' if many else 'an exception report'} for "
                f"{_and(self.exceptions)}"
            )
        return "; ".join(parts)

    def summary(self, figures_in: bool) -> str:
        """A short progress line: 'figures in, narrative missing'."""
        parts = [
            "figures missing"
            if self.figures
            else ("figures in" if figures_in else "no figures yet")
        ]
        if self.narrative:
            parts.append("narrative missing")
        if self.exceptions:
            parts.append("exception reports missing")
        if self.empty:
            parts.append("ready to submit")
        return ", ".join(parts)


def _and(items: Iterable[str]) -> str:
    words = list(items)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"


@dataclass(frozen=True)
class ReturnState:
    """What the machine needs to know about a return: its state, who submitted it, what it lacks."""

    state: State
    submitted_by: str | None = None
    missing: Missing = Missing()


@dataclass(frozen=True)
class Step:
    """One attempted event by ``actor`` acting as ``role``, with a reason where the event needs one."""

    event: Event
    role: Role
    actor: str
    note: str = ""


Check = Callable[[ReturnState, Step], str | None]


@dataclass(frozen=True)
class Transition:
    """One row of the table: from ``source`` on ``event`` to ``target``, for ``roles``."""

    source: State
    event: Event
    target: State
    roles: frozenset[Role]
    label: str
    needs_note: bool = False
    checks: tuple[Check, ...] = ()


def _complete(ret: ReturnState, _step: Step) -> str | None:
    return None if ret.missing.empty else INCOMPLETE.format(needed=ret.missing.needed())


def _not_own(ret: ReturnState, step: Step) -> str | None:
    if ret.submitted_by is not None and ret.submitted_by == step.actor:
        return OWN_RETURN.format(words=EVENT_WORDS[step.event])
    return None


BOTH: frozenset[Role] = frozenset({"commissioner", "provider"})
COMMISSIONER: frozenset[Role] = frozenset({"commissioner"})

TRANSITIONS: tuple[Transition, ...] = (
    Transition("draft", "edit", "draft", BOTH, "Edit"),
    Transition("draft", "submit", "submitted", BOTH, "Submit", checks=(_complete,)),
    Transition("submitted", "approve", "approved", COMMISSIONER, "Approve", checks=(_not_own,)),
    Transition(
        "submitted", "query", "queried", COMMISSIONER, "Query", needs_note=True, checks=(_not_own,)
    ),
    Transition(
        "submitted",
        "correct",
        "approved",
        COMMISSIONER,
        "Correct and approve",
        needs_note=True,
        checks=(_not_own,),
    ),
    Transition("approved", "correct", "approved", COMMISSIONER, "Correct", needs_note=True),
    Transition("approved", "reopen", "submitted", BOTH, "Reopen", needs_note=True),
    Transition("queried", "edit", "queried", BOTH, "Amend"),
    Transition("queried", "submit", "submitted", BOTH, "Resubmit", checks=(_complete,)),
)
TABLE: dict[tuple[State, Event], Transition] = {(t.source, t.event): t for t in TRANSITIONS}


class TransitionRefused(Exception):
    """A step the table does not allow; ``str(error)`` is one sentence a user can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def find(state: State, event: Event) -> Transition | None:
    """The table's row for ``event`` in ``state``, or None when the event is not allowed there."""
    return TABLE.get((state, event))


def refusal(ret: ReturnState, step: Step) -> str | None:
    """Why ``step`` cannot be taken on ``ret`` (one sentence), or None when it can.

    >>> refusal(ReturnState("submitted", "U1"), Step("approve", "provider", "U1"))
    'Only the commissioner can approve the return; you act for the provider.'
    """
    row = find(ret.state, step.event)
    if row is None:
        return NOT_HERE[step.event].format(words=STATE_WORDS[ret.state])
    if step.role not in row.roles:
        roles = " or the ".join(sorted(row.roles))
        return WRONG_ROLE.format(roles=roles, words=EVENT_WORDS[step.event], role=step.role)
    if row.needs_note and not step.note.strip():
        return NEEDS_REASON[step.event]
    problem = text_problem(step.note, QUERY_REASON)
    if problem is not None:
        return problem
    for check in row.checks:
        reason = check(ret, step)
        if reason is not None:
            return reason
    return None


def apply(ret: ReturnState, step: Step) -> ReturnState:
    """The return after ``step``; raises :class:`TransitionRefused` with the reason if refused."""
    reason = refusal(ret, step)
    row = find(ret.state, step.event)
    if reason is not None or row is None:
        raise TransitionRefused(reason or NOT_HERE[step.event].format(words=STATE_WORDS[ret.state]))
    submitted_by = step.actor if step.event in ("submit", "reopen") else ret.submitted_by
    return ReturnState(row.target, submitted_by, ret.missing)


def allowed(ret: ReturnState, role: Role, actor: str) -> list[Transition]:
    """The transitions ``role`` could take next (assuming a reason is given); for buttons."""
    probe_note = "(given)"
    return [
        row
        for row in TRANSITIONS
        if row.source == ret.state
        and refusal(ret, Step(row.event, role, actor, probe_note)) is None
    ]


# ------------------------------------------------------------------------- what is missing


def missing(
    expected: Iterable[str],
    present: Iterable[str],
    narrative: Mapping[str, str],
    narrative_required: bool,
    exception_required: Iterable[str],
    exceptions_filed: Iterable[str],
) -> Missing:
    """What a return lacks, from the KPIs expected and present, its narrative and its exceptions.

    >>> missing(["C1", "C2"], ["C1"], {}, True, ["C1"], []).needed()
    'figure for C2; the narrative (working well, challenges, actions); an exception report for C1'
    """
    have = set(present)
    filed = set(exceptions_filed)
    sections: tuple[str, ...] = ()
    if narrative_required:
        sections = tuple(s for s in SECTIONS if not (narrative.get(s) or "").strip())
    return Missing(
        figures=tuple(k for k in expected if k not in have),
        narrative=sections,
        exceptions=tuple(k for k in exception_required if k not in filed),
    )


def narrative_problem(
    sections: Mapping[str, str], required: bool, limit: int = DEFAULT_SECTION_LIMIT
) -> str | None:
    """Why a narrative cannot be stored (empty, or a section over ``limit``), or None.

    >>> narrative_problem({"working": "x" * 2010}, required=False)
    "The 'what is working well' section is limited to 2,000 characters; yours is 10 over."
    """
    if not any((sections.get(s) or "").strip() for s in SECTIONS):
        if required:
            return (
                "The narrative is empty, and this contract requires one each quarter: write what is "
                'working well, challenges and actions, e.g. `working: "…" challenges: "…" '
                'actions: "…"`.'
            )
        return 'The narrative is empty; write at least one section, e.g. `working: "…"`.'
    for s in SECTIONS:
        text = sections.get(s) or ""
        if (code := control_character(text)) is not None:
            return CONTROL.format(what=f"The '{SECTION_WORDS[s]}' section", code=code)
        if len(text) > limit:
            return (
                f"The '{SECTION_WORDS[s]}' section is limited to {limit:,} characters; "
                f"yours is {len(text) - limit:,} over."
            )
    return None


def exception_problem(text: str, limit: int = DEFAULT_SECTION_LIMIT) -> str | None:
    """Why an exception report cannot be stored (empty or too long), or None."""
    if not text.strip():
        return "An exception report needs text: explain each case below target."
    if (code := control_character(text)) is not None:
        return CONTROL.format(what="An exception report", code=code)
    if len(text) > limit:
        return (
            f"An exception report is limited to {limit:,} characters; "
            f"yours is {len(text) - limit:,} over."
        )
    return None


# Figure statuses that wait for the commissioner: payments do not count them yet.
UNDER_REVIEW = frozenset({"pending", "queried"})


def approved_only(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without figures under review (status pending or queried), for payments.

    Figures outside the return workflow (status 'submitted', e.g. history) are kept.
    """
    if frame.empty or "status" not in frame:
        return frame
    return frame[~frame["status"].isin(UNDER_REVIEW)]

"""Underperformance action plans in the store: open, act on, list, detect, remind.

The rules live in :mod:`kpibot.engine.actionplan` (a pure state machine); this module loads a plan,
asks the engine whether a step is allowed, and writes the change, its transition-log row and its
audit entry in one transaction. Refused steps write nothing but a 'refused' audit entry. Plans,
actions and the log are never deleted (migration 0004 enforces it in the database).

Detection opens one plan per contract and trigger: the trigger's key is unique per contract, and
KPIs already covered by an open plan are left to that plan, so running detection twice opens
nothing new. How many red periods in a row open a plan is a service setting (default 2; an
``action_plan_consecutive_red`` field on Settings is honoured when present): contract files have
no place for it, since the contract model forbids unknown keys.

>>> # plans = ActionPlanService(services)
>>> # opened = plans.detect_and_open(contract, "kpibot", now)      # idempotent
>>> # plans.add_action(opened[0].id, "Weekly audit", "Jane Smith", date(2020, 3, 31),
>>> #                  "provider", "U-TRUST", now)
>>> # plans.transition(opened[0].id, "agree", "commissioner", "U-COMMISSIONER", now).state
>>> # 'plan_agreed'
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kpibot.core.services import Services
from kpibot.engine.actionplan import (
    OPEN,
    STATE_WORDS,
    WORKING,
    ActionItem,
    Event,
    PlanState,
    Role,
    State,
    Step,
    Trigger,
    apply,
    detect,
    refusal,
)
from kpibot.engine.calendar import LONDON, add_working_days
from kpibot.engine.freetext import PLAN_AREAS, text_problem
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.reminders import Message, at
from kpibot.store.audit import add_event
from kpibot.store.schema import (
    ActionPlanActionRecord,
    ActionPlanRecord,
    ActionPlanTransitionRecord,
    as_utc,
)

DEFAULT_CONSECUTIVE_RED = 2
DETECTOR = "kpibot"
REMIND_DAYS = (7, 1)

# User-facing wording, kept together.
UNKNOWN_PLAN = "There is no action plan #{id}{on}; `actionplan {contract}` lists its plans."
NO_AREAS = 'Say which areas are underperforming, e.g. `actionplan {contract} new C7 "Adoption timeliness"`.'
UNKNOWN_KPIS = "{contract} has no KPI {codes}; `status {contract}` lists its KPIs."
ALREADY_COVERED = (
    "{codes} {verb} already covered by open action plan #{id}; add actions to that plan instead."
)
BUSY = "Someone changed action plan #{id} at the same moment; look at it again and retry."


# ---------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class PlanAction:
    """One stored action: what, who owns it, when it is due, and when (and by whom) it was done."""

    number: int
    description: str
    owner: str
    due: date
    stage: str
    added_at: datetime
    added_by: str
    done_at: datetime | None = None
    done_by: str | None = None
    done_note: str | None = None

    def item(self) -> ActionItem:
        return ActionItem(
            self.number,
            self.description,
            self.owner,
            self.due,
            "final" if self.stage == "final" else "plan",
            self.done_at,
        )


@dataclass(frozen=True)
class PlanEvent:
    """One row of a plan's transition log."""

    from_state: str | None
    to_state: str
    event: str
    actor: str
    role: str | None
    at: datetime
    note: str | None
    action_number: int | None


@dataclass(frozen=True)
class ActionPlan:
    """An action plan as stored, with its actions and its log (oldest first)."""

    id: int
    contract_id: str
    state: State
    state_since: datetime
    opened_at: datetime
    opened_by: str
    trigger_key: str | None
    trigger: str | None
    kpis: tuple[str, ...]
    areas: str
    actions: tuple[PlanAction, ...] = ()
    history: tuple[PlanEvent, ...] = ()

    @property
    def is_open(self) -> bool:
        return self.state in OPEN

    def snapshot(self) -> PlanState:
        """The plan as the state machine sees it."""
        return PlanState(self.state, tuple(a.item() for a in self.actions))

    def open_actions(self) -> list[PlanAction]:
        return [a for a in self.actions if a.done_at is None]

    def last(self, event: str) -> PlanEvent | None:
        """The latest log entry for ``event``, if any."""
        return next((e for e in reversed(self.history) if e.event == event), None)


class ActionPlanError(Exception):
    """Something refused; ``str(error)`` is one sentence a user can act on."""

    reason = "refused"


class UnknownPlan(ActionPlanError):
    reason = "unknown plan"

    def __init__(self, plan_id: int, contract_id: str | None = None) -> None:
        on = f" on {contract_id}" if contract_id else ""
        super().__init__(
            UNKNOWN_PLAN.format(id=plan_id, on=on, contract=contract_id or "<contract>")
        )


class StepRefused(ActionPlanError):
    """The state machine refused the step (wrong state, wrong role, a precondition unmet)."""

    reason = "transition refused"


class BadPlanInput(ActionPlanError):
    reason = "bad input"


# ---------------------------------------------------------------------------------- store


def _as_state(value: str) -> State:
    for state in STATE_WORDS:
        if state == value:
            return state
    raise ValueError(f"unknown action plan state {value!r}")


def _load(session: Session, records: Sequence[ActionPlanRecord]) -> list[ActionPlan]:
    ids = [r.id for r in records]
    if not ids:
        return []
    actions: dict[int, list[PlanAction]] = {}
    query = select(ActionPlanActionRecord).where(ActionPlanActionRecord.plan_id.in_(ids))
    for a in session.scalars(query.order_by(ActionPlanActionRecord.number)):
        actions.setdefault(a.plan_id, []).append(
            PlanAction(
                a.number,
                a.description,
                a.owner,
                a.due,
                a.stage,
                a.added_at,
                a.added_by,
                a.done_at,
                a.done_by,
                a.done_note,
            )
        )
    history: dict[int, list[PlanEvent]] = {}
    log = select(ActionPlanTransitionRecord).where(ActionPlanTransitionRecord.plan_id.in_(ids))
    for t in session.scalars(log.order_by(ActionPlanTransitionRecord.id)):
        history.setdefault(t.plan_id, []).append(
            PlanEvent(
                t.from_state, t.to_state, t.event, t.actor, t.role, t.at, t.note, t.action_number
            )
        )
    return [
        ActionPlan(
            r.id,
            r.contract_id,
            _as_state(r.state),
            r.state_since,
            r.opened_at,
            r.opened_by,
            r.trigger_key,
            r.trigger_text,
            tuple(r.kpis),
            r.areas,
            tuple(actions.get(r.id, [])),
            tuple(history.get(r.id, [])),
        )
        for r in records
    ]


def _audit(
    session: Session,
    action: str,
    at_: datetime,
    actor: str,
    contract_id: str,
    subject: str,
    detail: dict[str, Any],
) -> None:
    add_event(
        session,
        at=as_utc(at_),
        actor=actor,
        action=action,
        contract_id=contract_id,
        subject=subject[:300],
        outcome="ok",
        detail=detail,
    )


# ---------------------------------------------------------------------------------- service


class ActionPlanService:
    """Open and move action plans through the workflow; every change and refusal is audited.

    >>> # plans = ActionPlanService(services, consecutive_red=3)
    >>> # plans.transition(3, "escalate", "commissioner", "U-COMMISSIONER", now, note="…")
    """

    def __init__(self, services: Services, *, consecutive_red: int | None = None) -> None:
        self._services = services
        self._db = services.db
        setting = getattr(services.settings, "action_plan_consecutive_red", None)
        chosen = next(
            (v for v in (consecutive_red, setting) if v is not None), DEFAULT_CONSECUTIVE_RED
        )
        self.consecutive_red = int(chosen)

    # ---- reading
    def get(self, plan_id: int, contract_id: str | None = None) -> ActionPlan:
        """The plan, or :class:`UnknownPlan` (also when it belongs to another contract)."""
        with self._db.session(read_only=True) as session:
            record = session.get(ActionPlanRecord, plan_id)
            if record is None or (contract_id is not None and record.contract_id != contract_id):
                raise UnknownPlan(plan_id, contract_id)
            return _load(session, [record])[0]

    def list(
        self, contract_ids: Iterable[str] | None = None, *, open_only: bool = False
    ) -> builtins.list[ActionPlan]:
        """Plans oldest first, for ``contract_ids`` (all when None), optionally only open ones."""
        query = select(ActionPlanRecord).order_by(ActionPlanRecord.id)
        if contract_ids is not None:
            query = query.where(ActionPlanRecord.contract_id.in_(builtins.list(contract_ids)))
        if open_only:
            query = query.where(ActionPlanRecord.state.in_(sorted(OPEN)))
        with self._db.session(read_only=True) as session:
            return _load(session, session.scalars(query).all())

    # ---- opening
    def open(
        self,
        contract: Contract,
        kpis: Sequence[str],
        areas: str,
        actor: str,
        now: datetime,
        *,
        trigger: Trigger | None = None,
    ) -> ActionPlan:
        """Open a plan by hand on ``kpis`` (contract codes) with the areas of underperformance.

        Refuses empty areas, unknown KPI codes and KPIs already covered by an open plan.
        """
        codes = {k.code.lower(): k.code for k in contract.kpis}
        unknown = [k for k in kpis if k.lower() not in codes]
        problem: ActionPlanError | None = None
        if unknown:
            problem = BadPlanInput(
                UNKNOWN_KPIS.format(contract=contract.id, codes=", ".join(unknown))
            )
        elif not areas.strip():
            problem = BadPlanInput(NO_AREAS.format(contract=contract.id))
        elif (too := text_problem(areas.strip(), PLAN_AREAS)) is not None:
            problem = BadPlanInput(too)
        wanted = builtins.list(dict.fromkeys(codes[k.lower()] for k in kpis if k.lower() in codes))
        if problem is None:
            for plan in self.list([contract.id], open_only=True):
                taken = [k for k in wanted if k in plan.kpis]
                if taken:
                    problem = BadPlanInput(
                        ALREADY_COVERED.format(
                            codes=", ".join(taken),
                            verb="is" if len(taken) == 1 else "are",
                            id=plan.id,
                        )
                    )
                    break
        if problem is not None:
            self._refused(
                actor, "actionplan_open", contract.id, " ".join(kpis) or "-", problem, now
            )
            raise problem
        opened = self._insert(contract, wanted, areas.strip(), actor, now, trigger)
        assert opened is not None  # no trigger key, so no uniqueness to collide with
        return opened

    def triggers(self, contract: Contract, at_: Period | None = None) -> builtins.list[Trigger]:
        """What :func:`~kpibot.engine.actionplan.detect` finds in the contract's scorecard, as of
        ``at_`` (the latest period with figures when None)."""
        frame = self._services.scorecard(contract).frame
        if at_ is not None and not frame.empty:
            frame = frame[frame["period_start"] <= at_.start]
        return detect(contract, frame, self.consecutive_red)

    def detect_and_open(
        self, contract: Contract, actor: str, now: datetime, at_: Period | None = None
    ) -> builtins.list[ActionPlan]:
        """Open one plan per new trigger; returns the plans opened (none on a second run)."""
        opened: builtins.list[ActionPlan] = []
        for trigger in self.triggers(contract, at_):
            covered = {k for p in self.list([contract.id], open_only=True) for k in p.kpis}
            kpis = [k for k in trigger.kpis if k not in covered]
            if not kpis:
                continue
            names = {k.code: k.name for k in contract.kpis}
            areas = "; ".join(f"{k} {names.get(k, '')}".strip() for k in kpis)
            plan = self._insert(contract, kpis, areas, actor, now, trigger)
            if plan is not None:
                opened.append(plan)
        return opened

    def _insert(
        self,
        contract: Contract,
        kpis: Sequence[str],
        areas: str,
        actor: str,
        now: datetime,
        trigger: Trigger | None,
    ) -> ActionPlan | None:
        try:
            with self._db.session() as session:
                if trigger is not None:
                    seen = session.scalar(
                        select(ActionPlanRecord.id).where(
                            ActionPlanRecord.contract_id == contract.id,
                            ActionPlanRecord.trigger_key == trigger.key,
                        )
                    )
                    if seen is not None:
                        return None
                record = ActionPlanRecord(
                    contract_id=contract.id,
                    state="opened",
                    state_since=now,
                    opened_at=now,
                    opened_by=actor,
                    trigger_key=trigger.key if trigger else None,
                    trigger_text=trigger.text if trigger else None,
                    kpis=builtins.list(kpis),
                    areas=areas,
                )
                session.add(record)
                session.flush()
                note = trigger.text if trigger else areas
                session.add(
                    ActionPlanTransitionRecord(
                        plan_id=record.id,
                        from_state=None,
                        to_state="opened",
                        event="open",
                        actor=actor,
                        role=None,
                        at=now,
                        note=note,
                        action_number=None,
                    )
                )
                _audit(
                    session,
                    "actionplan_open",
                    now,
                    actor,
                    contract.id,
                    f"#{record.id} {', '.join(kpis)}".strip(),
                    {
                        "plan": record.id,
                        "kpis": builtins.list(kpis),
                        "trigger": trigger.key if trigger else None,
                    },
                )
                session.flush()
                return _load(session, [record])[0]
        except IntegrityError:
            if trigger is None:
                raise
            # Another detection run opened the same trigger between our check and our insert.
            return None

    # ---- acting
    def step(
        self, plan_id: int, step: Step, actor: str, now: datetime, *, contract_id: str | None = None
    ) -> ActionPlan:
        """Apply one event to a plan through the state machine, or raise why not."""
        step = Step(step.event, step.role, step.note.strip(), step.action, step.number, now)
        problem: ActionPlanError | None = None
        found_contract = contract_id
        with self._db.session() as session:
            record = session.get(ActionPlanRecord, plan_id, with_for_update=True)
            if record is None or (contract_id is not None and record.contract_id != contract_id):
                problem = UnknownPlan(plan_id, contract_id)
            else:
                found_contract = record.contract_id
                plan = _load(session, [record])[0]
                reason = refusal(plan.snapshot(), step)
                if reason is not None:
                    problem = StepRefused(reason)
                else:
                    self._write(session, record, plan, step, actor, now)
                    session.flush()
                    return _load(session, [record])[0]
        self._refused(
            actor, f"actionplan_{step.event}", found_contract, f"#{plan_id}", problem, now
        )
        raise problem

    def _write(
        self,
        session: Session,
        record: ActionPlanRecord,
        plan: ActionPlan,
        step: Step,
        actor: str,
        now: datetime,
    ) -> None:
        after = apply(plan.snapshot(), step)
        number = step.number
        if step.event == "add_action" and step.action is not None:
            added = after.actions[-1]
            number = added.number
            session.add(
                ActionPlanActionRecord(
                    plan_id=record.id,
                    number=added.number,
                    description=added.description.strip(),
                    owner=(added.owner or "").strip(),
                    due=added.due,
                    stage=added.stage,
                    added_at=now,
                    added_by=actor,
                )
            )
        elif step.event == "complete_action":
            session.execute(
                update(ActionPlanActionRecord)
                .where(
                    ActionPlanActionRecord.plan_id == record.id,
                    ActionPlanActionRecord.number == step.number,
                    ActionPlanActionRecord.done_at.is_(None),
                )
                .values(done_at=as_utc(now), done_by=actor, done_note=step.note or None)
                .execution_options(synchronize_session=False)
            )
        if after.state != plan.state:
            session.execute(
                update(ActionPlanRecord)
                .where(ActionPlanRecord.id == record.id, ActionPlanRecord.state == plan.state)
                .values(state=after.state, state_since=as_utc(now))
                .execution_options(synchronize_session=False)
            )
            session.refresh(record)
        session.add(
            ActionPlanTransitionRecord(
                plan_id=record.id,
                from_state=plan.state,
                to_state=after.state,
                event=step.event,
                actor=actor,
                role=step.role,
                at=now,
                note=step.note or None,
                action_number=number,
            )
        )
        _audit(
            session,
            f"actionplan_{step.event}",
            now,
            actor,
            record.contract_id,
            f"#{record.id} {plan.state} -> {after.state}",
            {
                "plan": record.id,
                "from": plan.state,
                "to": after.state,
                "role": step.role,
                "action": number,
                "note": step.note or None,
            },
        )

    def add_action(
        self,
        plan_id: int,
        description: str,
        owner: str | None,
        due: date | None,
        role: Role,
        actor: str,
        now: datetime,
        *,
        contract_id: str | None = None,
    ) -> ActionPlan:
        """Add an action (description, accountable owner, due date) to a plan being drafted."""
        item = ActionItem(0, description.strip(), (owner or "").strip() or None, due)
        return self.step(
            plan_id, Step("add_action", role, action=item), actor, now, contract_id=contract_id
        )

    def complete_action(
        self,
        plan_id: int,
        number: int,
        role: Role,
        actor: str,
        now: datetime,
        note: str = "",
        *,
        contract_id: str | None = None,
    ) -> ActionPlan:
        """Mark action ``number`` done now; its reminders stop."""
        return self.step(
            plan_id,
            Step("complete_action", role, note=note, number=number),
            actor,
            now,
            contract_id=contract_id,
        )

    def transition(
        self,
        plan_id: int,
        event: Event,
        role: Role,
        actor: str,
        now: datetime,
        note: str = "",
        *,
        contract_id: str | None = None,
    ) -> ActionPlan:
        """Agree, review, close, escalate, penalise, decommission or withdraw a plan."""
        return self.step(plan_id, Step(event, role, note=note), actor, now, contract_id=contract_id)

    def _refused(
        self,
        actor: str,
        action: str,
        contract_id: str | None,
        subject: str,
        problem: ActionPlanError | None,
        now: datetime,
    ) -> None:
        assert problem is not None
        self._services.audit.record(
            actor,
            action[:32],
            contract_id,
            subject[:300],
            "refused",
            {"reason": problem.reason, "message": str(problem), "at": as_utc(now).isoformat()},
        )


# ---------------------------------------------------------------------------------- reminders


def _day(moment: datetime) -> str:
    return f"{moment:%a %-d %b %Y}"


def action_messages(plan: ActionPlan, action: PlanAction, contract_name: str) -> list[Message]:
    """Every message one action's due date produces, before filtering by window or completion."""
    key = f"action-plan-{plan.id}"
    what = (
        f"action {action.number} of action plan #{plan.id} for {contract_name} "
        f"(“{action.description}”, owner {action.owner})"
    )
    done = f" Reply `/kpi actionplan {plan.contract_id} update {plan.id} done {action.number}` when it is done."
    out: list[Message] = []
    for days in REMIND_DAYS:
        out.append(
            Message(
                at(action.due - timedelta(days=days)),
                plan.contract_id,
                "reminder",
                "provider",
                key,
                f"action-{action.number}-d-{days}",
                f"Reminder: {what} is due in {days} day{'s' if days != 1 else ''} "
                f"({_day(at(action.due))}).{done}",
            )
        )
    out.append(
        Message(
            at(action.due),
            plan.contract_id,
            "due",
            "provider",
            key,
            f"action-{action.number}-due",
            f"Due today: {what}.{done}",
        )
    )
    out.append(
        Message(
            at(add_working_days(action.due, 1)),
            plan.contract_id,
            "escalation",
            "commissioner",
            key,
            f"action-{action.number}-overdue",
            f"Overdue: {what} was due on {_day(at(action.due))} and is not marked done.",
        )
    )
    return out


def plan_messages(
    plan: ActionPlan, contract_name: str, start: datetime, end: datetime
) -> list[Message]:
    """One plan's messages in ``(start, end]``: none before an action was added, none once it is
    done, none once the plan has left the working states; a catch-up keeps only the latest
    provider message per action."""
    out: list[Message] = []
    stopped = None if plan.state in WORKING else plan.state_since
    for action in plan.actions:
        found = [
            m
            for m in action_messages(plan, action, contract_name)
            if start < m.when <= end
            and m.when >= action.added_at
            and (action.done_at is None or m.when < action.done_at)
            and (stopped is None or m.when < stopped)
        ]
        provider = [m for m in found if m.audience == "provider"]
        out.extend(m for m in found if m.audience != "provider")
        if provider:
            out.append(provider[-1])
    return out


def action_plan_messages(services: Services, start: datetime, end: datetime) -> list[Message]:
    """Reminders for open actions' due dates in ``(start, end]``, in time order, with stable keys.

    The provider hears 7 days and 1 day before and on the day ("reminder", "due"); the day after
    (next working day) an unfinished action escalates to the commissioner. Keys are
    ``<contract>|action-plan-<id>|<kind>|<audience>|action-<n>-<step>``.

    >>> # ReminderTick(...) writes action_plan_messages(services, watermark, now) to the outbox
    """
    low = start.astimezone(LONDON).date() - timedelta(days=6)
    high = end.astimezone(LONDON).date() + timedelta(days=max(REMIND_DAYS) + 1)
    with services.db.session(read_only=True) as session:
        ids = select(ActionPlanActionRecord.plan_id).where(
            ActionPlanActionRecord.due.between(low, high),
            or_(
                ActionPlanActionRecord.done_at.is_(None),
                ActionPlanActionRecord.done_at > start.astimezone(UTC),
            ),
        )
        records = session.scalars(
            select(ActionPlanRecord)
            .where(
                ActionPlanRecord.id.in_(ids),
                or_(
                    ActionPlanRecord.state.in_(sorted(WORKING)),
                    ActionPlanRecord.state_since > start.astimezone(UTC),
                ),
            )
            .order_by(ActionPlanRecord.id)
        ).all()
        plans = _load(session, records)
    out: list[Message] = []
    for plan in plans:
        contract = services.contract(plan.contract_id)
        out.extend(plan_messages(plan, contract.name if contract else plan.contract_id, start, end))
    return sorted(out, key=lambda m: (m.when, m.contract, m.period, m.step))


# ---------------------------------------------------------------------------------- summaries

SHORT_STATE: dict[str, str] = {
    "opened": "action plan being drafted",
    "plan_agreed": "plan agreed",
    "under_review": "review meeting arranged",
    "final_plan": "FINAL plan being drawn up",
    "final_review": "review of the FINAL plan arranged",
    "penalty": "penalty clauses instigated",
}


def describe_progress(plan: ActionPlan, today: date) -> str:
    """'plan agreed; next action due Tue 31 Mar 2020, 1 overdue' for summaries."""
    words = SHORT_STATE.get(plan.state, plan.state)
    if plan.state in ("under_review", "final_review"):
        note = plan.last("review")
        if note is not None and note.note:
            words += f" ({note.note})"
    pending = plan.open_actions()
    if pending and plan.state in WORKING:
        overdue = [a for a in pending if a.due < today]
        upcoming = sorted(a.due for a in pending if a.due >= today)
        if upcoming:
            words += f"; next action due {upcoming[0]:%a %-d %b %Y}"
        if overdue:
            words += f"; {len(overdue)} action{'s' if len(overdue) != 1 else ''} overdue"
    elif not plan.actions and plan.state == "opened":
        words += "; no actions yet"
    return words


def open_plans_summary(services: Services, contract: Contract) -> list[str]:
    """One line for status and compliance views, or none when the contract has no open plan.

    >>> # open_plans_summary(services, contract)
    >>> # ['📋 1 open action plan: #3 C7, C9 — plan agreed; next action due Tue 31 Mar 2020']
    """
    # Most contracts have no open plan: one quick indexed read says so before loading any.
    states = ", ".join(f"'{state}'" for state in sorted(OPEN))
    if not services.db.read_scalar(
        f"SELECT 1 FROM {ActionPlanRecord.__tablename__} "  # noqa: S608
        f"WHERE contract_id = ? AND state IN ({states}) LIMIT 1",
        contract.id,
    ):
        return []
    plans = ActionPlanService(services).list([contract.id], open_only=True)
    return _plans_line(plans, services.now().astimezone(LONDON).date())


def _plans_line(plans: Sequence[ActionPlan], today: date) -> list[str]:
    if not plans:
        return []
    parts = [
        f"#{p.id} {', '.join(p.kpis) or 'no KPI named'} — {describe_progress(p, today)}"
        for p in plans
    ]
    n = len(plans)
    return [f"📋 {n} open action plan{'s' if n != 1 else ''}: " + "; ".join(parts)]


def status_lines_many(
    services: Services, pairs: Sequence[tuple[Contract, Period]]
) -> dict[str, list[str]]:
    """:func:`status_lines` for many contracts, reading every open plan in one query."""
    ids = [c.id for c, _ in pairs]
    by_contract: dict[str, list[ActionPlan]] = {}
    for start in range(0, len(ids), 1000):
        for plan in ActionPlanService(services).list(ids[start : start + 1000], open_only=True):
            by_contract.setdefault(plan.contract_id, []).append(plan)
    today = services.now().astimezone(LONDON).date()
    return {cid: _plans_line(plans, today) for cid, plans in by_contract.items()}


# Open plans change only through the plans' own audited steps (and the date).
STATUS_CHANGED_BY = ("actionplan",)


def status_lines(services: Services, contract: Contract, period: Period) -> list[str]:
    """The open-plans line for ``/kpi status`` and the quarterly summary (any period)."""
    return open_plans_summary(services, contract)

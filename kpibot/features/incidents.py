"""The incident register: log an incident, start its reporting clock, record the report.

A provider (or commissioner) opens an incident of a kind the contract defines (``sui``,
``near-miss``, ``interruption``, ``inspection`` or the contract's own); its deadline comes from the
contract's incident rules (``kpibot.engine.calendar.incident_rules``). Filing the report closes the
incident and stops its clock. Incidents are never deleted or rewritten (migration 0002 enforces it
in the database), and every open, report and refusal is written to the audit log.

The scheduler reads the clocks with :func:`open_incident_clocks` and reminds the provider at 50%
and 90% of the window, then escalates to the commissioner at the deadline unless reported. For an
``immediately`` kind the window is empty, so that escalation goes out as soon as the incident is
logged: logging it *is* the notification, and a report filed later is never counted late.

>>> # register = IncidentRegister(services)
>>> # incident = register.open(contract, "sui", "Child injured at a clinic", "U-TRUST", now)
>>> # register.report(incident.id, "What happened…", "Retrain staff", "U-TRUST", later).late
>>> # False
"""

from __future__ import annotations

import builtins
import difflib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from kpibot.core.services import Services
from kpibot.engine.calendar import DEFAULT_INCIDENT_RULES, LONDON, IncidentRule, incident_rules
from kpibot.engine.freetext import (
    INCIDENT_ACTION_PLAN,
    INCIDENT_DESCRIPTION,
    INCIDENT_REPORT,
    first_problem,
    text_problem,
)
from kpibot.engine.model import Contract
from kpibot.engine.reminders import IncidentClock
from kpibot.store.audit import add_event
from kpibot.store.database import Database
from kpibot.store.schema import IncidentRecord, as_utc

# Whether the actor may log or report incidents on a contract id.
Permission = Callable[[str], bool]
CLOCK_LOOKBACK = timedelta(days=30)
DEFAULT_LABELS = {
    "sui": "Serious untoward incident",
    "near-miss": "Near miss",
    "interruption": "Service interruption",
    "inspection": "Inspection report",
}

# User-facing wording, kept together so it reads the same everywhere.
UNKNOWN_KIND = "{contract} has no incident type '{kind}'{hint}; use one of: {allowed}."
EMPTY_DESCRIPTION = (
    "Say what happened: the description cannot be empty, "
    'e.g. `incident sui "Child injured at the Hillside centre"`.'
)
EMPTY_REPORT = (
    "Write the report itself, not just the number, e.g. "
    '`incident report {id} "What happened and why. Action plan: what changes"`.'
)
UNKNOWN_INCIDENT = "There is no incident #{id}; `incidents` lists the register with each number."
ALREADY_REPORTED = (
    "Incident #{id} was already reported on {when} by {who}, and a filed report cannot be changed."
)
NOT_YOURS = "Incident #{id} is on {contract}, whose incidents are not open to you to report."
NOT_YOURS_TO_LOG = "Logging incidents on {contract} is not open to you."


def when_text(moment: datetime, *, year: bool = False) -> str:
    """A moment as a Londoner reads it: 'Tue 25 Feb 14:05' (with the year if asked)."""
    return moment.astimezone(LONDON).strftime("%a %-d %b %Y %H:%M" if year else "%a %-d %b %H:%M")


def span_text(delta: timedelta) -> str:
    """A duration in rough words: '40 min', '5 h', '3 days'."""
    minutes = int(abs(delta).total_seconds() // 60)
    if minutes < 90:
        return f"{max(minutes, 1)} min"
    if minutes < 48 * 60:
        return f"{round(minutes / 60)} h"
    return f"{round(minutes / 1440)} days"


# ---------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class IncidentKind:
    """One incident type a contract allows: its key, label and reporting rule."""

    kind: str
    label: str
    rule: IncidentRule


@dataclass(frozen=True)
class Incident:
    """One incident in the register, with its clock and, once filed, its report."""

    id: int
    contract_id: str
    kind: str
    label: str
    description: str
    opened_by: str
    opened_at: datetime
    deadline: datetime
    status: str
    reported_at: datetime | None = None
    reported_by: str | None = None
    report: str | None = None
    action_plan: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def immediate(self) -> bool:
        """An 'immediately' kind: logging it is the notification, so it has no window."""
        return self.deadline <= self.opened_at

    @property
    def late(self) -> bool:
        """Reported after its deadline (never for an 'immediately' kind)."""
        return (
            self.reported_at is not None and not self.immediate and self.reported_at > self.deadline
        )

    def overdue(self, now: datetime) -> bool:
        return self.is_open and now > self.deadline

    def rag(self, now: datetime) -> str:
        """red: open past its deadline; amber: open, clock running; green: reported on time;
        grey: reported late (closed, but the deadline was missed)."""
        if self.is_open:
            return "red" if self.overdue(now) else "amber"
        return "grey" if self.late else "green"

    def clock(self) -> IncidentClock:
        return IncidentClock(
            self.id,
            self.contract_id,
            self.kind,
            self.label,
            self.opened_at,
            self.deadline,
            self.reported_at,
        )


class IncidentError(Exception):
    """Something the register refused; ``str(error)`` is one sentence a user can act on."""

    reason = "refused"


class UnknownIncidentKind(IncidentError):
    reason = "unknown kind"

    def __init__(self, contract_id: str, kind: str, allowed: list[str]) -> None:
        self.kind, self.allowed = kind, allowed
        self.closest = closest_kind(kind, allowed)
        hint = f" (did you mean '{self.closest}'?)" if self.closest else ""
        super().__init__(
            UNKNOWN_KIND.format(
                contract=contract_id, kind=kind, hint=hint, allowed=", ".join(allowed)
            )
        )


class EmptyDescription(IncidentError):
    reason = "empty description"

    def __init__(self) -> None:
        super().__init__(EMPTY_DESCRIPTION)


class EmptyReport(IncidentError):
    reason = "empty report"

    def __init__(self, incident_id: int) -> None:
        super().__init__(EMPTY_REPORT.format(id=incident_id))


class TextRefused(IncidentError):
    """A description, report or action plan too long, or with a control character in it."""

    reason = "text refused"


class UnknownIncident(IncidentError):
    reason = "unknown incident"

    def __init__(self, incident_id: int) -> None:
        super().__init__(UNKNOWN_INCIDENT.format(id=incident_id))


class AlreadyReported(IncidentError):
    reason = "already reported"

    def __init__(self, incident: Incident) -> None:
        self.incident = incident
        assert incident.reported_at is not None
        super().__init__(
            ALREADY_REPORTED.format(
                id=incident.id,
                who=incident.reported_by,
                when=when_text(incident.reported_at, year=True),
            )
        )


class IncidentNotAllowed(IncidentError):
    reason = "not allowed"

    def __init__(self, contract_id: str, incident_id: int | None = None) -> None:
        self.contract_id = contract_id
        text = NOT_YOURS_TO_LOG if incident_id is None else NOT_YOURS
        super().__init__(text.format(id=incident_id, contract=contract_id))


# ---------------------------------------------------------------------------------- kinds


def _norm(text: str) -> str:
    return "-".join(text.strip().lower().replace("_", " ").replace("-", " ").split())


def incident_kinds(contract: Contract) -> dict[str, IncidentKind]:
    """The incident types ``contract`` allows: its own ``incidents:`` if any, else the defaults.

    >>> # list(incident_kinds(contract))  ->  ['sui', 'near-miss'] for healthy-child-0-19
    """
    own = contract.incidents
    rules = incident_rules(own)
    kinds = list(own) if own else list(DEFAULT_INCIDENT_RULES)
    out: dict[str, IncidentKind] = {}
    for kind in kinds:
        spec = own.get(kind)
        label = spec.get("label") if isinstance(spec, dict) else None
        if not isinstance(label, str) or not label.strip():
            label = DEFAULT_LABELS.get(kind, kind.replace("_", " ").replace("-", " ").capitalize())
        out[kind] = IncidentKind(kind, label, rules[kind])
    return out


def match_kind(kinds: Iterable[str], text: str) -> str | None:
    """The kind ``text`` names, ignoring case, spaces, hyphens and underscores ('Near miss')."""
    wanted = _norm(text)
    return next((k for k in kinds if _norm(k) == wanted), None)


def closest_kind(text: str, kinds: Iterable[str]) -> str | None:
    by_norm = {_norm(k): k for k in kinds}
    close = difflib.get_close_matches(_norm(text), list(by_norm), n=1, cutoff=0.5)
    return by_norm[close[0]] if close else None


# ---------------------------------------------------------------------------------- store


def _incident(r: IncidentRecord) -> Incident:
    return Incident(
        r.id,
        r.contract_id,
        r.kind,
        r.label,
        r.description,
        r.opened_by,
        r.opened_at,
        r.deadline,
        r.status,
        r.reported_at,
        r.reported_by,
        r.report,
        r.action_plan,
    )


class IncidentRepository:
    """Rows of the ``incidents`` table as :class:`Incident` values; audit entries in the same
    transaction as the change they describe."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, record: IncidentRecord, actor: str, detail: dict[str, Any]) -> Incident:
        """Insert a new incident and its 'incident_open' audit entry in one transaction."""
        with self._db.session() as session:
            session.add(record)
            session.flush()
            self._audit(session, "incident_open", record.opened_at, actor, record, detail)
            return _incident(record)

    def mark_reported(
        self,
        incident_id: int,
        at: datetime,
        by: str,
        report: str,
        action_plan: str | None,
        detail: dict[str, Any],
    ) -> Incident | None:
        """File the report if the incident is still open; None when it is not (or is unknown)."""
        with self._db.session() as session:
            # The status condition settles a race between two reports: only one row update wins.
            done = session.execute(
                update(IncidentRecord)
                .where(IncidentRecord.id == incident_id, IncidentRecord.status == "open")
                .values(
                    status="reported",
                    reported_at=as_utc(at),
                    reported_by=by,
                    report=report,
                    action_plan=action_plan,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(done, "rowcount", 0) != 1:
                return None
            record = session.get(IncidentRecord, incident_id, populate_existing=True)
            assert record is not None
            self._audit(session, "incident_report", at, by, record, detail)
            return _incident(record)

    def get(self, incident_id: int) -> Incident | None:
        with self._db.session(read_only=True) as session:
            record = session.get(IncidentRecord, incident_id)
            return None if record is None else _incident(record)

    def find(
        self,
        contract_ids: Iterable[str] | None = None,
        *,
        open_only: bool = False,
        deadline_from: datetime | None = None,
    ) -> list[Incident]:
        """Incidents oldest first, filtered by contract, status and deadline."""
        query = select(IncidentRecord).order_by(IncidentRecord.id)
        if contract_ids is not None:
            query = query.where(IncidentRecord.contract_id.in_(list(contract_ids)))
        if open_only:
            query = query.where(IncidentRecord.status == "open")
        if deadline_from is not None:
            query = query.where(IncidentRecord.deadline >= deadline_from)
        with self._db.session(read_only=True) as session:
            return [_incident(r) for r in session.scalars(query)]

    @staticmethod
    def _audit(
        session: Session,
        action: str,
        at: datetime,
        actor: str,
        record: IncidentRecord,
        detail: dict[str, Any],
    ) -> None:
        add_event(
            session,
            at=as_utc(at),
            actor=actor,
            action=action,
            contract_id=record.contract_id,
            subject=f"#{record.id} {record.kind}",
            outcome="ok",
            detail={"incident": record.id, **detail},
        )


# ---------------------------------------------------------------------------------- service


class IncidentRegister:
    """Open and report incidents with the contract's rules; every attempt is audited.

    >>> # register = IncidentRegister(services)
    >>> # register.open(contract, "near-miss", "Wrong leaflet given", "U-HEALTH", now).deadline
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._repo = IncidentRepository(services.db)

    def open(
        self,
        contract: Contract,
        kind: str,
        description: str,
        actor: str,
        now: datetime,
        *,
        may: Permission | None = None,
    ) -> Incident:
        """Log an incident now and start its clock; refuses an unknown kind or empty description."""
        kinds = incident_kinds(contract)
        found = match_kind(kinds, kind)
        text = description.strip()
        problem: IncidentError | None = None
        if may is not None and not may(contract.id):
            problem = IncidentNotAllowed(contract.id)
        elif found is None:
            problem = UnknownIncidentKind(contract.id, kind, builtins.list(kinds))
        elif not text:
            problem = EmptyDescription()
        elif (too := text_problem(text, INCIDENT_DESCRIPTION)) is not None:
            problem = TextRefused(too)
        if problem is not None:
            self._refused(actor, "incident_open", contract.id, kind, problem, now)
            raise problem
        assert found is not None  # an unknown kind was refused above
        spec = kinds[found]
        deadline = spec.rule.deadline(now)
        record = IncidentRecord(
            contract_id=contract.id,
            kind=found,
            label=spec.label,
            description=text,
            opened_by=actor,
            opened_at=now,
            deadline=deadline,
            status="open",
        )
        detail = {"deadline": as_utc(deadline).isoformat(), "rule": spec.rule.describe()}
        return self._repo.add(record, actor, detail)

    def report(
        self,
        incident_id: int,
        report: str,
        action_plan: str | None,
        actor: str,
        now: datetime,
        *,
        may: Permission | None = None,
    ) -> Incident:
        """File the report (and action plan) and stop the clock; refuses a closed or unknown
        incident, an empty report, and an incident on a contract ``may`` does not allow."""
        text, plan = report.strip(), (action_plan or "").strip() or None
        incident = self._repo.get(incident_id)
        problem: IncidentError | None = None
        if incident is None:
            problem = UnknownIncident(incident_id)
        elif may is not None and not may(incident.contract_id):
            problem = IncidentNotAllowed(incident.contract_id, incident_id)
        elif not incident.is_open:
            problem = AlreadyReported(incident)
        elif not text:
            problem = EmptyReport(incident_id)
        elif (
            too := first_problem((text, INCIDENT_REPORT), (plan, INCIDENT_ACTION_PLAN))
        ) is not None:
            problem = TextRefused(too)
        contract_id = incident.contract_id if incident else None
        if problem is None:
            late = incident is not None and not incident.immediate and now > incident.deadline
            detail = {"late": late, "action_plan": plan is not None}
            done = self._repo.mark_reported(incident_id, now, actor, text, plan, detail)
            if done is not None:
                return done
            # Someone else filed it between our read and our update.
            again = self._repo.get(incident_id)
            assert again is not None
            problem = AlreadyReported(again)
        self._refused(actor, "incident_report", contract_id, f"#{incident_id}", problem, now)
        raise problem

    def list(
        self, contract_ids: Iterable[str] | None = None, include_closed: bool = True
    ) -> builtins.list[Incident]:
        """The register for ``contract_ids`` (all when None), oldest first."""
        return self._repo.find(contract_ids, open_only=not include_closed)

    def get(self, incident_id: int) -> Incident | None:
        return self._repo.get(incident_id)

    def _refused(
        self,
        actor: str,
        action: str,
        contract_id: str | None,
        subject: str,
        problem: IncidentError,
        now: datetime,
    ) -> None:
        self._services.audit.record(
            actor,
            action,
            contract_id,
            subject[:300],
            "refused",
            {"reason": problem.reason, "message": str(problem), "at": as_utc(now).isoformat()},
        )


def open_incident_clocks(
    services: Services, contract_ids: Iterable[str] | None = None, now: datetime | None = None
) -> dict[str, builtins.list[IncidentClock]]:
    """The scheduler's view: clocks of incidents whose deadline is after ``now`` minus 30 days,
    open or reported (a reported clock carries ``reported_at``, so the planner stops it).

    >>> # ContractInputs(contract, calendar, incidents=open_incident_clocks(services)[contract.id])
    """
    since = (now or services.now()).astimezone(UTC) - CLOCK_LOOKBACK
    out: dict[str, builtins.list[IncidentClock]] = {}
    for incident in IncidentRepository(services.db).find(contract_ids, deadline_from=since):
        out.setdefault(incident.contract_id, []).append(incident.clock())
    return out

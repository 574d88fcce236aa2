"""Quarterly returns in the store: build over several messages, submit, approve, query, correct.

Figures reach a return through the normal ``submit`` and ``import`` paths: a return for a contract
and period is simply every current figure of that period, plus the narrative and exception reports
kept here. Each transition runs in one transaction with its event-log row, its audit entry, the
figure statuses that go with the new state (pending on submit, approved on approve, queried on
query) and, for a query, exactly one provider notification in the outbox.

Whether a contract requires a narrative each quarter is ``NARRATIVE_REQUIRED`` (by contract id),
or a contract description that asks for a "narrative report".

>>> # view = submit_return(services, contract, period, actor="U-TRUST", role="provider")
>>> # approve(services, contract, period, actor="U-COMMISSIONER", role="commissioner").state
>>> # 'approved'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from kpibot.core.audience import audience_targets
from kpibot.core.services import Services
from kpibot.engine import returns as machine
from kpibot.engine.compliance import ReturnReceipt
from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.engine.reminders import Message
from kpibot.engine.returns import (
    Missing,
    ReturnState,
    Role,
    State,
    Step,
    TransitionRefused,
)
from kpibot.engine.scorecard import reporting_kind
from kpibot.store.audit import add_event
from kpibot.store.figures import IS_CURRENT
from kpibot.store.outbox import OutboxRepository, outbox_entries
from kpibot.store.rows import NewFigure
from kpibot.store.schema import FigureRecord, ReturnEventRecord, ReturnExceptionRecord, ReturnRecord

__all__ = ["TransitionRefused"]

NARRATIVE_REQUIRED: set[str] = {"one-psychology"}
SECTION_LIMIT = machine.DEFAULT_SECTION_LIMIT
# Figure statuses of a return under review: summaries show them as pending, payments leave them out.


def narrative_required(contract: Contract) -> bool:
    """True when the contract asks for a narrative report each period."""
    return (
        contract.id in NARRATIVE_REQUIRED
        or "narrative report" in (contract.description or "").lower()
    )


@dataclass(frozen=True)
class ReturnView:
    """A return as the commands show it: state, narrative, exception reports and what is missing."""

    contract_id: str
    period: str
    state: State
    rounds: int = 0
    submitted_by: str | None = None
    narrative: dict[str, str] = field(default_factory=dict)
    exceptions: dict[str, str] = field(default_factory=dict)
    figures_in: tuple[str, ...] = ()
    missing: Missing = Missing()
    last_query: str | None = None

    @property
    def machine_state(self) -> ReturnState:
        return ReturnState(self.state, self.submitted_by, self.missing)


# ----------------------------------------------------------------------------- reading


def _expected(contract: Contract, period: Period) -> list[str]:
    return [
        k.code for k in contract.kpis if reporting_kind(k, contract.reporting.period) == period.kind
    ]


def _figures(services: Services, contract: Contract, period: Period) -> tuple[list[str], list[str]]:
    """KPI codes with a current figure for ``period``, and those owing an exception report."""
    frame = services.figures_frame([contract.id])
    here = frame[(frame["period"] == period.label) & frame["value"].notna()]
    present = sorted(set(here["kpi"]))
    card = services.scorecard(contract).frame
    owed: list[str] = []
    if not card.empty and "exception_required" in card:
        rows = card[(card["period"] == period.label) & card["exception_required"].astype(bool)]
        owed = sorted(set(rows["kpi"]))
    return present, owed


def _record(
    session: Session, contract_id: str, label: str, lock: bool = False
) -> ReturnRecord | None:
    query = select(ReturnRecord).where(
        ReturnRecord.contract_id == contract_id, ReturnRecord.period_label == label
    )
    if lock:
        query = query.with_for_update()
    return session.scalars(query).one_or_none()


def _exceptions(session: Session, return_id: int) -> dict[str, str]:
    rows = session.scalars(
        select(ReturnExceptionRecord)
        .where(ReturnExceptionRecord.return_id == return_id)
        .order_by(ReturnExceptionRecord.id)
    )
    return {r.kpi_code: r.report for r in rows}


def _last_query(session: Session, return_id: int) -> str | None:
    return session.scalars(
        select(ReturnEventRecord.note)
        .where(ReturnEventRecord.return_id == return_id, ReturnEventRecord.event == "query")
        .order_by(ReturnEventRecord.id.desc())
        .limit(1)
    ).first()


def _view(
    services: Services,
    contract: Contract,
    period: Period,
    record: ReturnRecord | None,
    exceptions: dict[str, str],
    last_query: str | None,
) -> ReturnView:
    present, owed = _figures(services, contract, period)
    narrative = (
        {}
        if record is None
        else {s: cast(str, getattr(record, s)) for s in machine.SECTIONS if getattr(record, s)}
    )
    lack = machine.missing(
        _expected(contract, period),
        present,
        narrative,
        narrative_required(contract),
        owed,
        exceptions,
    )
    if record is None:
        return ReturnView(
            contract.id, period.label, "draft", figures_in=tuple(present), missing=lack
        )
    return ReturnView(
        contract.id,
        period.label,
        cast(State, record.state),
        record.rounds,
        record.submitted_by,
        narrative,
        exceptions,
        tuple(present),
        lack,
        last_query,
    )


def load(services: Services, contract: Contract, period: Period) -> ReturnView:
    """The return for ``contract`` and ``period`` (a draft view when nothing is stored yet)."""
    with services.db.session(read_only=True) as session:
        record = _record(session, contract.id, period.label)
        exceptions = {} if record is None else _exceptions(session, record.id)
        last = None if record is None else _last_query(session, record.id)
        return _view(services, contract, period, record, exceptions, last)


def filed_texts(
    services: Services, contract: Contract, period: Period
) -> tuple[dict[str, str], dict[str, str]]:
    """The return's narrative (by section) and exception reports (by KPI), as filed so far.

    Unlike ``load`` it evaluates nothing, for callers that hold the scorecard already.
    """
    with services.db.session(read_only=True) as session:
        record = _record(session, contract.id, period.label)
        if record is None:
            return {}, {}
        narrative = {
            s: cast(str, getattr(record, s)) for s in machine.SECTIONS if getattr(record, s)
        }
        return narrative, _exceptions(session, record.id)


def missing_for(services: Services, contract: Contract, period: Period) -> str:
    """What the return still lacks, for reminders ("Still needed: …"); '' once submitted."""
    view = load(services, contract, period)
    return view.missing.needed() if view.state in ("draft", "queried") else ""


def missing_notes(
    services: Services, contract: Contract, periods: Sequence[Period]
) -> dict[str, str]:
    """``ContractInputs.missing_note`` for ``periods``: period label → what is still needed."""
    notes = {p.label: missing_for(services, contract, p) for p in periods}
    return {label: note for label, note in notes.items() if note}


def pending_periods(services: Services, contract_id: str) -> set[str]:
    """Periods whose return is submitted and awaiting approval (or queried): show as pending."""
    sql = (
        f"SELECT period_label FROM {ReturnRecord.__tablename__} "  # noqa: S608
        "WHERE contract_id = ? AND state IN ('submitted', 'queried')"
    )
    return {str(label) for (label,) in services.db.read_rows(sql, contract_id)}


def pending_many(services: Services, contract_ids: Sequence[str]) -> dict[str, set[str]]:
    """:func:`pending_periods` for many contracts in one query (contracts with none left out)."""
    out: dict[str, set[str]] = {}
    ids = list(contract_ids)
    with services.db.session(read_only=True) as session:
        for start in range(0, len(ids), 1000):
            rows = session.execute(
                select(ReturnRecord.contract_id, ReturnRecord.period_label).where(
                    ReturnRecord.contract_id.in_(ids[start : start + 1000]),
                    ReturnRecord.state.in_(("submitted", "queried")),
                )
            )
            for contract_id, label in rows:
                out.setdefault(str(contract_id), set()).add(str(label))
    return out


def late_or_missing(
    services: Services, contract: Contract, missing: Sequence[str], period: Period
) -> str:
    """The late-or-missing line ``/kpi status`` and the quarterly report show, or '' when none.

    ``missing`` are the KPI codes without a figure for ``period``; they count once the return's
    due date has passed (at once for a contract without a calendar).

    >>> # late_or_missing(services, contract, ["S11"], period)
    >>> # '1 KPI(s) have no figure: S11'
    """
    if not missing:
        return ""
    due = services.due_date(contract, period)
    if due is not None and services.now().date() <= due:
        return ""
    codes = list(missing)
    shown = ", ".join(codes[:10]) + (f" …and {len(codes) - 10} more" if len(codes) > 10 else "")
    when = f" (due {due:%-d %b %Y})" if due else ""
    return f"{len(codes)} KPI(s) have no figure{when}: {shown}"


def review_findings(services: Services, contract_id: str) -> dict[str, int]:
    """Per period, how many queries and corrected figures the commissioner's review found."""
    query = (
        select(ReturnRecord.period_label, ReturnEventRecord.event, ReturnEventRecord.detail)
        .join(ReturnEventRecord, ReturnEventRecord.return_id == ReturnRecord.id)
        .where(
            ReturnRecord.contract_id == contract_id,
            ReturnEventRecord.event.in_(("query", "correct")),
        )
    )
    out: dict[str, int] = {}
    with services.db.session(read_only=True) as session:
        for label, event, detail in session.execute(query):
            n = 1 if event == "query" else max(1, int((detail or {}).get("figures", 1)))
            out[label] = out.get(label, 0) + n
    return out


def with_review_findings(
    receipts: Mapping[str, ReturnReceipt], findings: Mapping[str, int]
) -> dict[str, ReturnReceipt]:
    """Receipts whose ``amended`` count also includes review findings (capped at the figures)."""
    return {
        label: replace(r, amended=min(r.figures, r.amended + findings.get(label, 0)))
        for label, r in receipts.items()
    }


# ----------------------------------------------------------------------------- writing


def _open(
    session: Session, contract_id: str, label: str, actor: str, services: Services
) -> ReturnRecord:
    record = _record(session, contract_id, label, lock=True)
    if record is not None:
        return record
    now = services.now()
    record = ReturnRecord(
        contract_id=contract_id,
        period_label=label,
        state="draft",
        state_since=now,
        opened_at=now,
        opened_by=actor,
        rounds=0,
    )
    session.add(record)
    session.flush()
    return record


def _set_figure_status(session: Session, contract_id: str, label: str, status: str) -> int:
    ids = list(
        session.scalars(
            select(FigureRecord.id).where(
                FigureRecord.contract_id == contract_id,
                FigureRecord.period_label == label,
                IS_CURRENT,
                FigureRecord.status != status,
            )
        )
    )
    if ids:
        session.execute(update(FigureRecord).where(FigureRecord.id.in_(ids)).values(status=status))
    return len(ids)


def _log(
    session: Session,
    services: Services,
    record: ReturnRecord,
    event: str,
    before: str,
    actor: str,
    role: Role,
    note: str | None,
    detail: dict[str, Any],
) -> None:
    now = services.now()
    session.add(
        ReturnEventRecord(
            return_id=record.id,
            event=event,
            from_state=before,
            to_state=record.state,
            actor=actor,
            role=role,
            at=now,
            note=note,
            detail=detail,
        )
    )
    add_event(
        session,
        at=now,
        actor=actor,
        action=f"return:{event}",
        contract_id=record.contract_id,
        subject=f"return {record.period_label}",
        outcome="ok",
        detail={"from": before, "to": record.state, "note": note, **detail},
    )


def _transition(
    services: Services,
    contract: Contract,
    period: Period,
    step: Step,
    detail: dict[str, Any] | None = None,
    edit: Mapping[str, str] | None = None,
    exception: tuple[str, str] | None = None,
) -> ReturnView:
    with services.db.session() as session:
        record = _open(session, contract.id, period.label, step.actor, services)
        view = _view(services, contract, period, record, _exceptions(session, record.id), None)
        before = view.state
        after = machine.apply(view.machine_state, step)
        extra = dict(detail or {})
        event: str = step.event
        if edit is not None:
            for s in machine.SECTIONS:
                if s in edit:
                    setattr(record, s, edit[s].strip() or None)
            event, extra["sections"] = "narrative", sorted(edit)
        if exception is not None:
            session.add(
                ReturnExceptionRecord(
                    return_id=record.id,
                    kpi_code=exception[0],
                    report=exception[1].strip(),
                    filed_by=step.actor,
                    filed_at=services.now(),
                )
            )
            event, extra["kpi"] = "exception", exception[0]
        if after.state != before:
            record.state, record.state_since = after.state, services.now()
        record.submitted_by = after.submitted_by
        if step.event == "submit":
            record.rounds += 1
        extra["figures_status"] = _set_figure_status(
            session, contract.id, period.label, machine.FIGURE_STATUS[after.state]
        )
        _log(
            session,
            services,
            record,
            event,
            before,
            step.actor,
            step.role,
            step.note.strip() or None,
            extra,
        )
        if step.event == "query":
            _notify_query(session, services, contract, period, record, step.note.strip())
        session.flush()
        exceptions = _exceptions(session, record.id)
        last = _last_query(session, record.id)
    # Read after commit, so the view shows the figures' new statuses.
    with services.db.session(read_only=True) as session:
        fresh = _record(session, contract.id, period.label)
        return _view(services, contract, period, fresh, exceptions, last)


def _notify_query(
    session: Session,
    services: Services,
    contract: Contract,
    period: Period,
    record: ReturnRecord,
    reason: str,
) -> None:
    # The n-th query of this return has a stable key, so a retried transaction stores it once.
    n = session.scalar(
        select(func.count(ReturnEventRecord.id)).where(
            ReturnEventRecord.return_id == record.id, ReturnEventRecord.event == "query"
        )
    )
    text = (
        f"The commissioner has queried the {period.label} return for {contract.name}: {reason} "
        f"Please amend it and submit again with `return {contract.id} {period.label} submit`."
    )
    message = Message(
        services.now(), contract.id, "return_query", "provider", period.label, f"query-{n}", text
    )
    entries = outbox_entries(message, audience_targets(contract, "provider", None))
    OutboxRepository(services.db).enqueue_in(session, entries, services.now())


def set_narrative(
    services: Services,
    contract: Contract,
    period: Period,
    sections: Mapping[str, str],
    actor: str,
    role: Role,
    limit: int = SECTION_LIMIT,
) -> ReturnView:
    """Store the narrative sections given (working, challenges, actions); others are kept."""
    unknown = set(sections) - set(machine.SECTIONS)
    if unknown:
        raise ValueError(f"unknown narrative sections: {', '.join(sorted(unknown))}")
    problem = machine.narrative_problem(sections, narrative_required(contract), limit)
    if problem is not None:
        raise TransitionRefused(problem)
    return _transition(services, contract, period, Step("edit", role, actor), edit=sections)


def file_exception(
    services: Services,
    contract: Contract,
    period: Period,
    kpi: str,
    report: str,
    actor: str,
    role: Role,
    limit: int = SECTION_LIMIT,
) -> ReturnView:
    """File (or replace) the exception report for one KPI of the return."""
    problem = machine.exception_problem(report, limit)
    if problem is not None:
        raise TransitionRefused(problem)
    return _transition(
        services, contract, period, Step("edit", role, actor), exception=(kpi, report)
    )


def submit_return(
    services: Services, contract: Contract, period: Period, actor: str, role: Role
) -> ReturnView:
    """Submit the return (refused, saying what is missing, until it is complete)."""
    return _transition(services, contract, period, Step("submit", role, actor))


def approve(
    services: Services, contract: Contract, period: Period, actor: str, role: Role
) -> ReturnView:
    """Approve a submitted return: its figures count for summaries and payments."""
    return _transition(services, contract, period, Step("approve", role, actor))


def query(
    services: Services, contract: Contract, period: Period, reason: str, actor: str, role: Role
) -> ReturnView:
    """Query a submitted return with a reason; the provider is notified once."""
    return _transition(services, contract, period, Step("query", role, actor, reason))


def correct(
    services: Services,
    contract: Contract,
    period: Period,
    figures: Sequence[NewFigure],
    reason: str,
    actor: str,
    role: Role,
) -> ReturnView:
    """A commissioner's spot-check correction: store the corrected figures and approve.

    The refusal is checked before the figures are written, so a refused correction stores nothing.
    """
    if not figures:
        raise TransitionRefused("A correction needs at least one corrected figure.")
    step = Step("correct", role, actor, reason)
    problem = machine.refusal(load(services, contract, period).machine_state, step)
    if problem is not None:
        raise TransitionRefused(problem)
    rows = [replace(f, reason=f.reason or reason) for f in figures]
    services.figures.submit(
        contract.id, rows, actor=actor, source="chat", note=f"Spot-check correction: {reason}"
    )
    return _transition(
        services,
        contract,
        period,
        step,
        detail={"figures": len(rows), "kpis": sorted(f.kpi for f in rows)},
    )


def figures_arrived(
    services: Services, contract: Contract, period: Period, actor: str
) -> ReturnView:
    """Call after figures for ``period`` are stored: they join the return's current status.

    New figures for an approved return reopen it for approval; for a submitted one they are pending.
    """
    view = load(services, contract, period)
    if view.state == "approved":
        with services.db.session(read_only=True) as session:
            changed = session.scalar(
                select(func.count(FigureRecord.id)).where(
                    FigureRecord.contract_id == contract.id,
                    FigureRecord.period_label == period.label,
                    IS_CURRENT,
                    FigureRecord.status != "approved",
                )
            )
        if changed:
            step = Step("reopen", "provider", actor, "figures changed after approval")
            return _transition(services, contract, period, step, detail={"figures": changed})
        return view
    if view.state == "submitted":
        with services.db.session() as session:
            _set_figure_status(session, contract.id, period.label, "pending")
    return view

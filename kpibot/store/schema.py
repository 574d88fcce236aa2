"""The store's tables as SQLAlchemy 2 declarative models, portable across SQLite and PostgreSQL.

Figures are append-only: an amendment is a new row whose ``supersedes_id`` points at the row it
replaces, and a figure is *current* when no other row supersedes it. Two unique indexes keep each
(contract, KPI, period) chain linear, so there is never more than one current figure, even when
two people amend at once. The initial migration also installs triggers that refuse UPDATE and
DELETE on ``audit_events`` and on the facts of a figure (only ``figures.status`` may change).

Every datetime column is :class:`UTCDateTime`: it refuses naive datetimes and always hands back
aware UTC, on SQLite too.

>>> from sqlalchemy import create_engine
>>> engine = create_engine("sqlite://")
>>> Base.metadata.create_all(engine)
>>> sorted(Base.metadata.tables)[:3]
['audit_events', 'contracts', 'figures']
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import event as sa_event
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import DeclarativeBase, Mapped, Mapper, mapped_column

SOURCES = ("chat", "import", "cli", "history", "api")
FIGURE_STATUSES = ("submitted", "pending", "approved", "queried")
PERIOD_KINDS = ("quarter", "year", "month")
OUTCOMES = ("ok", "refused", "error")
OUTBOX_STATUSES = ("pending", "claimed", "sent", "failed")

# Named constraints let later migrations (and SQLite batch mode) find and alter them.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; a naive datetime is refused rather than guessed at.

    >>> as_utc(datetime(2020, 1, 1, 12, tzinfo=UTC)).isoformat()
    '2020-01-01T12:00:00+00:00'
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given; pass an aware UTC time")
    return value.astimezone(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime stored as UTC; SQLite gets it back aware, like PostgreSQL.

    Naive datetimes are refused: a time without a zone is a bug waiting to happen.

    >>> UTCDateTime().process_result_value(datetime(2024, 1, 1), None).tzinfo  # type: ignore[arg-type, union-attr]
    datetime.timezone.utc
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        utc = as_utc(value)
        # SQLite has no zone type: store UTC wall time so text ordering is time ordering.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def json_document() -> JSON:
    """JSON everywhere, stored as JSONB on PostgreSQL so it can be indexed and compared."""
    return JSON().with_variant(JSONB(), "postgresql")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    """Declarative base for every kpibot table; ``Base.metadata`` is what migrations describe."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: json_document()}


def _utc_on_set(_target: object, value: datetime | None, _old: object, _initiator: object) -> Any:
    return None if value is None else as_utc(value)


@sa_event.listens_for(Base, "mapper_configured", propagate=True)
def _normalise_on_assignment(mapper: Mapper[Any], _class: type) -> None:
    # Every model, wherever it is declared: an object reads the same before and after saving.
    for attribute in mapper.column_attrs:
        if isinstance(attribute.columns[0].type, UTCDateTime):
            sa_event.listen(attribute.class_attribute, "set", _utc_on_set, retval=True)


class ContractRecord(Base):
    """A loaded contract: its full definition as JSON, plus a few columns for listing."""

    __tablename__ = "contracts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    provider_name: Mapped[str] = mapped_column(String(300))
    commissioner_name: Mapped[str] = mapped_column(String(300))
    definition: Mapped[dict[str, Any]]
    content_hash: Mapped[str] = mapped_column(String(64))
    loaded_at: Mapped[datetime]
    loaded_by: Mapped[str] = mapped_column(String(200))
    # The phrase readings compiling it used, and the grammar that made them (kpibot.store.readings).
    readings: Mapped[str | None] = mapped_column(Text)
    readings_key: Mapped[str | None] = mapped_column(String(64))


class KPIRecord(Base):
    """One KPI of a contract, denormalised from the definition so queries can join on it."""

    __tablename__ = "kpis"

    contract_id: Mapped[str] = mapped_column(
        ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True
    )
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(Text)
    unit: Mapped[str | None] = mapped_column(String(16))
    polarity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))


class TargetRecord(Base):
    """A KPI's target, tolerance and critical-failure text for one contract year."""

    __tablename__ = "targets"
    __table_args__ = (
        ForeignKeyConstraint(
            ["contract_id", "kpi_code"], ["kpis.contract_id", "kpis.code"], ondelete="CASCADE"
        ),
    )

    contract_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kpi_code: Mapped[str] = mapped_column(String(64), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    target_text: Mapped[str | None] = mapped_column(Text)
    tolerance_text: Mapped[str | None] = mapped_column(Text)
    critical_text: Mapped[str | None] = mapped_column(Text)


class SubmissionRecord(Base):
    """One submission event: a chat command, an uploaded return, an import or an API call."""

    __tablename__ = "submissions"
    __table_args__ = (CheckConstraint(_in("source", SOURCES), name="source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    submitted_by: Mapped[str] = mapped_column(String(200))
    # Indexed for the alert sweep, which looks back over the last days' submissions (0008).
    submitted_at: Mapped[datetime] = mapped_column(index=True)
    source: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str | None] = mapped_column(String(500))
    row_count: Mapped[int] = mapped_column(Integer)
    idempotency_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    note: Mapped[str | None] = mapped_column(Text)


class FigureRecord(Base):
    """One version of one figure. Rows are only ever added; amendments point at what they replace."""

    __tablename__ = "figures"
    __table_args__ = (
        Index("ix_figures_contract_kpi_period", "contract_id", "kpi_code", "period_label"),
        Index("ix_figures_contract_id", "contract_id", "id"),  # what a contract got since a refresh
        # At most one first version per (contract, KPI, period) ...
        Index(
            "uq_figures_first_version",
            "contract_id",
            "kpi_code",
            "period_label",
            unique=True,
            sqlite_where=text("supersedes_id IS NULL"),
            postgresql_where=text("supersedes_id IS NULL"),
        ),
        CheckConstraint(_in("period_kind", PERIOD_KINDS), name="period_kind"),
        CheckConstraint("period_end >= period_start", name="period_dates"),
        CheckConstraint(_in("status", FIGURE_STATUSES), name="status"),
        CheckConstraint("numerator IS NULL OR numerator >= 0", name="numerator"),
        CheckConstraint("denominator IS NULL OR denominator >= 0", name="denominator"),
        CheckConstraint(
            "supersedes_id IS NULL OR amendment_reason IS NOT NULL", name="amendment_reason"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    kpi_code: Mapped[str] = mapped_column(String(64))
    period_label: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    period_kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[float | None] = mapped_column(Float)
    numerator: Mapped[float | None] = mapped_column(Float)
    denominator: Mapped[float | None] = mapped_column(Float)
    benchmark: Mapped[float | None] = mapped_column(Float)
    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), index=True)
    submitted_by: Mapped[str] = mapped_column(String(200))
    submitted_at: Mapped[datetime]
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    note: Mapped[str | None] = mapped_column(Text)
    # ... and each version is superseded at most once, so every chain is a line with one head.
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("figures.id"), unique=True)
    amendment_reason: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="submitted", server_default="submitted")


class AuditEventRecord(Base):
    """Who did what, when, and how it ended. Rows are never updated or deleted."""

    __tablename__ = "audit_events"
    __table_args__ = (
        CheckConstraint(_in("outcome", OUTCOMES), name="outcome"),
        Index("ix_audit_events_contract_at", "contract_id", "at"),
        Index("ix_audit_events_contract_id", "contract_id", "id"),  # a contract's version
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(32))
    # No foreign key: a refused action may name a contract that does not exist.
    contract_id: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]]


def _next_attempt_default(context: DefaultExecutionContext) -> Any:
    # The typed stubs miss this method; it is public API (context-sensitive defaults).
    return context.get_current_parameters()["due_at"]  # type: ignore[no-untyped-call]


class OutboxRecord(Base):
    """A message to deliver, written once under a unique idempotency key and claimed by a dispatcher.

    ``next_attempt_at`` defaults to ``due_at``; a dispatcher claims rows with
    ``status = 'pending' AND next_attempt_at <= now`` (``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(_in("status", OUTBOX_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    contract_id: Mapped[str | None] = mapped_column(ForeignKey("contracts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    audience: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(200))
    period: Mapped[str | None] = mapped_column(String(32))
    step: Mapped[str | None] = mapped_column(String(32))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), default="pending", server_default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=_next_attempt_default)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class SchedulerStateRecord(Base):
    """A named watermark: the tick has derived every message due up to ``watermark``."""

    __tablename__ = "scheduler_state"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    watermark: Mapped[datetime]


INCIDENT_STATUSES = ("open", "reported")


class IncidentRecord(Base):
    """One incident in a contract's register: opened with a deadline, later reported. Never deleted.

    Migration 0002 adds triggers that refuse DELETE, any change to what was logged, and any change
    once the incident is reported; the only update allowed is the one that records the report.
    """

    __tablename__ = "incidents"
    __table_args__ = (
        CheckConstraint(_in("status", INCIDENT_STATUSES), name="status"),
        CheckConstraint("length(trim(description)) > 0", name="description"),
        CheckConstraint("deadline >= opened_at", name="deadline"),
        CheckConstraint(
            "(status = 'open' AND reported_at IS NULL AND reported_by IS NULL AND report IS NULL)"
            " OR (status = 'reported' AND reported_at IS NOT NULL AND reported_by IS NOT NULL"
            " AND report IS NOT NULL AND length(trim(report)) > 0)",
            name="report",
        ),
        Index("ix_incidents_contract_opened_at", "contract_id", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    kind: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    opened_by: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime]
    deadline: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    reported_at: Mapped[datetime | None]
    reported_by: Mapped[str | None] = mapped_column(String(200))
    report: Mapped[str | None] = mapped_column(Text)
    action_plan: Mapped[str | None] = mapped_column(Text)


# ---------------------------------------------------------------- action plans and finance (0004)

ACTION_PLAN_STATES = (
    "opened",
    "plan_agreed",
    "under_review",
    "final_plan",
    "final_review",
    "closed",
    "penalty",
    "decommissioned",
)
ACTION_STAGES = ("plan", "final")


class ActionPlanRecord(Base):
    """An underperformance action plan (seed 003 Schedule 3, seed 001 2.7). Never deleted.

    Only ``state`` and ``state_since`` change; every change is a row in ``action_plan_transitions``.
    ``trigger_key`` is set when detection opened the plan, and is unique per contract, so running
    detection twice opens one plan.
    """

    __tablename__ = "action_plans"
    __table_args__ = (
        CheckConstraint(_in("state", ACTION_PLAN_STATES), name="state"),
        CheckConstraint("length(trim(areas)) > 0", name="areas"),
        UniqueConstraint("contract_id", "trigger_key"),
        Index("ix_action_plans_contract_state", "contract_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[datetime]
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(200))
    trigger_key: Mapped[str | None] = mapped_column(String(100))
    trigger_text: Mapped[str | None] = mapped_column(Text)
    kpis: Mapped[list[str]] = mapped_column(json_document())
    areas: Mapped[str] = mapped_column(Text)


class ActionPlanActionRecord(Base):
    """One action of a plan: what, who owns it, by when; later, when it was done. Never deleted."""

    __tablename__ = "action_plan_actions"
    __table_args__ = (
        UniqueConstraint("plan_id", "number"),
        CheckConstraint("number >= 1", name="number"),
        CheckConstraint(_in("stage", ACTION_STAGES), name="stage"),
        CheckConstraint("length(trim(description)) > 0", name="description"),
        CheckConstraint("length(trim(owner)) > 0", name="owner"),
        CheckConstraint(
            "(done_at IS NULL AND done_by IS NULL) OR (done_at IS NOT NULL AND done_by IS NOT NULL)",
            name="done",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("action_plans.id"))
    number: Mapped[int] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    due: Mapped[date] = mapped_column(Date)
    stage: Mapped[str] = mapped_column(String(8))
    added_at: Mapped[datetime]
    added_by: Mapped[str] = mapped_column(String(200))
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(200))
    done_note: Mapped[str | None] = mapped_column(Text)


class ActionPlanTransitionRecord(Base):
    """The log of a plan: every event, from which state to which, by whom, when, with the note."""

    __tablename__ = "action_plan_transitions"
    __table_args__ = (
        CheckConstraint(_in("to_state", ACTION_PLAN_STATES), name="to_state"),
        Index("ix_action_plan_transitions_plan_at", "plan_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("action_plans.id"))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    action_number: Mapped[int | None] = mapped_column(Integer)


class ExpenditureStatementRecord(Base):
    """A quarter's statement of actual expenditure and the projection for the following quarter.

    Amounts are whole pence. Like figures, statements are append-only: a correction is a new row
    whose ``supersedes_id`` points at the one it replaces, and it must say why.
    """

    __tablename__ = "expenditure_statements"
    __table_args__ = (
        Index(
            "uq_expenditure_statements_first_version",
            "contract_id",
            "period_label",
            unique=True,
            sqlite_where=text("supersedes_id IS NULL"),
            postgresql_where=text("supersedes_id IS NULL"),
        ),
        CheckConstraint("actual_pence >= 0", name="actual"),
        CheckConstraint("projected_pence >= 0", name="projected"),
        CheckConstraint("period_end >= period_start", name="period_dates"),
        CheckConstraint("supersedes_id IS NULL OR correction IS NOT NULL", name="correction"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    period_label: Mapped[str] = mapped_column(String(32))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    actual_pence: Mapped[int] = mapped_column(BigInteger)
    projected_pence: Mapped[int] = mapped_column(BigInteger)
    submitted_at: Mapped[datetime]
    submitted_by: Mapped[str] = mapped_column(String(200))
    supersedes_id: Mapped[int | None] = mapped_column(
        ForeignKey("expenditure_statements.id"), unique=True
    )
    correction: Mapped[str | None] = mapped_column(Text)


class ExpenditureExceptionRecord(Base):
    """An exception report for a quarter whose spend varied from its projection by more than the
    threshold (seed 003, 5d): reasons, corrective measures and the re-profiled annual budget."""

    __tablename__ = "expenditure_exceptions"
    __table_args__ = (
        CheckConstraint("length(trim(reasons)) > 0", name="reasons"),
        CheckConstraint("length(trim(measures)) > 0", name="measures"),
        CheckConstraint("budget_pence >= 0", name="budget"),
        Index("ix_expenditure_exceptions_contract_period", "contract_id", "period_label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    period_label: Mapped[str] = mapped_column(String(32))
    statement_id: Mapped[int] = mapped_column(ForeignKey("expenditure_statements.id"))
    reasons: Mapped[str] = mapped_column(Text)
    measures: Mapped[str] = mapped_column(Text)
    budget_pence: Mapped[int] = mapped_column(BigInteger)
    filed_at: Mapped[datetime]
    filed_by: Mapped[str] = mapped_column(String(200))


# ---------------------------------------------------------------- chat conversations and bindings (0005)


class ConversationRecord(Base):
    """Where a bot can post unprompted: a Teams conversation's reference, kept from its first event.

    Proactive messages need the ``serviceUrl`` the conversation was last seen on; ``reference``
    keeps the whole Bot Framework conversation reference as it arrived.
    """

    __tablename__ = "conversations"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(String(400), primary_key=True)
    service_url: Mapped[str] = mapped_column(String(500))
    tenant_id: Mapped[str | None] = mapped_column(String(100))
    conversation_type: Mapped[str | None] = mapped_column(String(32))
    bot_id: Mapped[str] = mapped_column(String(200))
    reference: Mapped[dict[str, Any]]
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]


class BindingRecord(Base):
    """A channel or conversation bound to a contract with ``kpi bind``, so commands may omit it."""

    __tablename__ = "bindings"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(400), primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), index=True)
    bound_by: Mapped[str] = mapped_column(String(200))
    bound_at: Mapped[datetime]


# ---------------------------------------------------------------- quarterly returns (0006)

RETURN_STATES = ("draft", "submitted", "approved", "queried")
RETURN_EVENTS = (
    "edit",
    "submit",
    "approve",
    "query",
    "correct",
    "reopen",
    "narrative",
    "exception",
)


class ReturnRecord(Base):
    """One return: a contract's submission event for a period, and where it stands. Never deleted.

    ``state``, ``state_since``, ``submitted_by``, ``rounds`` and the narrative sections change;
    every change is a row in ``return_events``, which is append-only.
    """

    __tablename__ = "returns"
    __table_args__ = (
        CheckConstraint(_in("state", RETURN_STATES), name="state"),
        CheckConstraint("rounds >= 0", name="rounds"),
        UniqueConstraint("contract_id", "period_label"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    period_label: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    state_since: Mapped[datetime]
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(200))
    submitted_by: Mapped[str | None] = mapped_column(String(200))
    rounds: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    working: Mapped[str | None] = mapped_column(Text)
    challenges: Mapped[str | None] = mapped_column(Text)
    actions: Mapped[str | None] = mapped_column(Text)


class ReturnEventRecord(Base):
    """The log of a return: every event, from which state to which, by whom, when, and why."""

    __tablename__ = "return_events"
    __table_args__ = (
        CheckConstraint(_in("event", RETURN_EVENTS), name="event"),
        CheckConstraint(_in("to_state", RETURN_STATES), name="to_state"),
        Index("ix_return_events_return_at", "return_id", "at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id"))
    event: Mapped[str] = mapped_column(String(16))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(200))
    role: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime]
    note: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]]


class ReturnExceptionRecord(Base):
    """An exception report for one KPI of a return; a later one for the same KPI replaces it."""

    __tablename__ = "return_exceptions"
    __table_args__ = (
        CheckConstraint("length(trim(report)) > 0", name="report"),
        Index("ix_return_exceptions_return_kpi", "return_id", "kpi_code"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    return_id: Mapped[int] = mapped_column(ForeignKey("returns.id"))
    kpi_code: Mapped[str] = mapped_column(String(64))
    report: Mapped[str] = mapped_column(Text)
    filed_by: Mapped[str] = mapped_column(String(200))
    filed_at: Mapped[datetime]


# ---------------------------------------------------------------- alerts and subscriptions (0008)

SUBSCRIPTION_KINDS = ("watch", "digest")


class SubscriptionRecord(Base):
    """A watch (alerts about a contract, or one KPI of it) or a digest, for a person or a channel.

    ``platform`` and ``channel`` are where it is delivered: a person's direct messages (Slack:
    their user id; Teams: their 1:1 conversation; ``direct`` is then true and quiet hours apply)
    or a channel. ``owner`` made it; whether they may still see a contract is checked every time
    a message is built. ``key`` keeps one subscription per target and subject.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(_in("kind", SUBSCRIPTION_KINDS), name="kind"),
        CheckConstraint(
            "(kind = 'watch' AND contract_id IS NOT NULL AND what IS NOT NULL)"
            " OR (kind = 'digest' AND frequency IS NOT NULL)",
            name="shape",
        ),
        Index("ix_subscriptions_contract_id", "contract_id"),
        Index("ix_subscriptions_kind", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(200))
    owner_email: Mapped[str | None] = mapped_column(String(300))
    platform: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(400))
    direct: Mapped[bool] = mapped_column(Boolean)
    contract_id: Mapped[str | None] = mapped_column(ForeignKey("contracts.id"))
    kpi_code: Mapped[str | None] = mapped_column(String(64))
    what: Mapped[str | None] = mapped_column(String(16))
    frequency: Mapped[str | None] = mapped_column(String(16))
    contracts: Mapped[list[str]] = mapped_column(json_document())
    created_at: Mapped[datetime]
    last_digest_at: Mapped[datetime | None]
    previous_digest_at: Mapped[datetime | None]


class MuteRecord(Base):
    """A person or channel muted a contract's alerts until ``until``."""

    __tablename__ = "mutes"

    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(400), primary_key=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"), primary_key=True)
    until: Mapped[datetime]
    muted_by: Mapped[str] = mapped_column(String(200))
    muted_at: Mapped[datetime]


class AlertRecord(Base):
    """The ledger that makes each alert fire once: one row per (contract, kind, subject, period).

    ``subject`` is a KPI code (or a payment line); ``generation`` counts how often the alert was
    raised after being cleared (an amendment undid the red, a later one brought it back).
    ``messages`` maps each target (``platform:channel``) to the outbox key that carried the
    alert, so a follow-up can be threaded under it.
    """

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("contract_id", "kind", "subject", "period"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    kind: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(32))
    generation: Mapped[int] = mapped_column(Integer)
    raised_at: Mapped[datetime]
    submission_id: Mapped[int | None] = mapped_column(Integer)
    cleared_at: Mapped[datetime | None]
    messages: Mapped[dict[str, Any]]


class AlertRunRecord(Base):
    """A submission whose alerts were worked out: written with its outbox rows, in one transaction."""

    __tablename__ = "alert_runs"

    submission_id: Mapped[int] = mapped_column(ForeignKey("submissions.id"), primary_key=True)
    processed_at: Mapped[datetime]
    rows: Mapped[int] = mapped_column(Integer)


# ---------------------------------------------------------------- sanctions: events and waivers (0009)

EVENT_SOURCES = ("chat", "import", "cli")


class SanctionEventRecord(Base):
    """One event in a contract's log (a missed collection, a patient over 52 weeks), for sums per
    event and penalty points. Never deleted; what happened never changes. The one update allowed
    records its rectification, once (migration 0009 enforces both).
    """

    __tablename__ = "sanction_events"
    __table_args__ = (
        UniqueConstraint("contract_id", "kind", "reference", "occurred_at"),
        CheckConstraint(_in("source", EVENT_SOURCES), name="source"),
        CheckConstraint("affected >= 1", name="affected"),
        CheckConstraint("length(trim(reference)) > 0", name="reference"),
        CheckConstraint(
            "(rectified_at IS NULL AND rectified_by IS NULL AND rectification_recorded_at IS NULL)"
            " OR (rectified_at IS NOT NULL AND rectified_by IS NOT NULL"
            " AND rectification_recorded_at IS NOT NULL)",
            name="rectified",
        ),
        Index("ix_sanction_events_contract_occurred_at", "contract_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    kind: Mapped[str] = mapped_column(String(64))
    reference: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    value: Mapped[float | None] = mapped_column(Float)
    affected: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(16))
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(index=True)
    rectified_at: Mapped[datetime | None]
    rectified_by: Mapped[str | None] = mapped_column(String(200))
    rectification_recorded_at: Mapped[datetime | None]
    # The end of the last rectification period that could charge it again, under the terms in
    # force when it was recorded (None: its kind has none), so the scheduler finds it cheaply.
    rectify_until: Mapped[datetime | None] = mapped_column(index=True)


class SanctionWaiverRecord(Base):
    """A commissioner's waiver of a ledger item (an event reference, or ``<rule>:<month>``), with
    who and why. Append-only: never updated or deleted; an item is waived at most once."""

    __tablename__ = "sanction_waivers"
    __table_args__ = (
        UniqueConstraint("contract_id", "item"),
        CheckConstraint("length(trim(reason)) > 0", name="reason"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    contract_id: Mapped[str] = mapped_column(ForeignKey("contracts.id"))
    item: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    waived_by: Mapped[str] = mapped_column(String(200))
    waived_at: Mapped[datetime]


# ---------------------------------------------------------------- shared between replicas (0012)


class SharedValueRecord(Base):
    """A value every replica must see: a Slack button's long value, the generated signing key.

    ``expires_at`` is when the value may be forgotten (None: kept). See ``kpibot.store.shared``.
    """

    __tablename__ = "shared_values"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)

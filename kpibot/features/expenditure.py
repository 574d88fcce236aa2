"""Quarterly expenditure statements and the variance exception report (seed 003, 5d).

Each quarter the provider states its actual expenditure and its projection for the following
quarter. The actual is compared with the projection the previous quarter's statement made for it;
a variation of more than the threshold (the contract's ``payments.finance_exception`` percentage,
else 15%; exactly the threshold is within) requires an exception report covering the reasons, the
corrective measures taken and the re-profiled annual budget. The bot asks for it when the
statement is recorded and reminds the provider until it is in; after three weeks the commissioner
hears of it.

Amounts are kept as whole pence and compared exactly (no floating point), so the boundary is exact.
Statements are append-only: a correction is a new version that says why.

>>> variance_pct(Decimal("115010"), Decimal("100000"))
Decimal('15.01')
>>> exceeds(Decimal("115000"), Decimal("100000"), Decimal("15"))
False
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from kpibot.core.services import Services
from kpibot.engine.calendar import LONDON
from kpibot.engine.freetext import (
    CORRECTION,
    EXPENDITURE_MEASURES,
    EXPENDITURE_REASONS,
    first_problem,
    text_problem,
)
from kpibot.engine.model import Contract
from kpibot.engine.numbers import UK, AmbiguousNumber, NumberError, NumberStyle, parse_decimal
from kpibot.engine.periods import Period, PeriodError
from kpibot.engine.reminders import Message, at
from kpibot.store.audit import add_event
from kpibot.store.schema import ExpenditureExceptionRecord, ExpenditureStatementRecord, as_utc

DEFAULT_VARIANCE_PCT = Decimal("15")
REMIND_AFTER_DAYS = (3, 7, 14)
ESCALATE_AFTER_DAYS = 21
_HUNDRED = Decimal(100)
_SCALES = {"k": Decimal(1000), "m": Decimal(1_000_000)}

# User-facing wording, kept together.
NOT_A_QUARTER = (
    "Expenditure statements are quarterly: give a quarter such as '2019/20 Q3', not '{label}'."
)
OUTSIDE = "{label} is outside the contract, which runs from {start:%-d %b %Y} to {end:%-d %b %Y}."
NOT_ENDED = "{label} has not ended yet (it ends {end:%-d %b %Y}); state its actual expenditure after it ends."
BAD_AMOUNT = "'{text}' is not an amount I can read; write it like £120,000 or 120000.50."
ALREADY_STATED = (
    "{label} already has a statement (actual {actual}, projected {projected}, by {who} on "
    '{when:%-d %b %Y}); to change it, add correction:"why it changed".'
)
NO_STATEMENT = "There is no expenditure statement for {label} yet; record it first with actual:£… projected:£…."
NOT_NEEDED = (
    "{label}'s spend is within {threshold}% of its projection, so no exception report is needed."
)
REPORT_NEEDS = (
    "The exception report for {label} needs {missing}; add "
    'reasons:"…" measures:"…" budget:£… (the re-profiled annual budget).'
)
REPORT_PARTS = {
    "reasons": "the reasons for the variance",
    "measures": "the corrective measures taken",
    "budget": "the re-profiled annual budget",
}


def money(value: Decimal) -> str:
    """£1,234.56 (whole pounds without pence)."""
    return f"£{value:,.0f}" if value == value.to_integral_value() else f"£{value:,.2f}"


def read_money(text: str, style: NumberStyle = UK) -> Decimal:
    """An amount in pounds from '£120,000', '120000.50', '£1.2m' or '480k', read by ``style``.

    The separators follow the same rule as every figure (:mod:`kpibot.engine.numbers`): under
    the UK style '£12,34' could be £12.34 or £1,234, so it is refused showing both readings.
    Raises NumberError with one sentence.

    >>> read_money("£1.234.567,50", NumberStyle.named("european"))
    Decimal('1234567.50')
    """
    body = text.strip()
    scale = _SCALES.get(body[-1:].lower()) if body[:-1].rstrip()[-1:].isdigit() else None
    if scale is not None:
        body = body[:-1].rstrip()
    try:
        amount = parse_decimal(body, style)
    except AmbiguousNumber:
        raise
    except NumberError:
        raise NumberError(BAD_AMOUNT.format(text=text.strip()[:40])) from None
    places = -amount.as_tuple().exponent  # type: ignore[operator]
    if body.endswith("%") or amount < 0 or (scale is None and places > 2):
        raise NumberError(BAD_AMOUNT.format(text=text.strip()[:40]))
    return amount * scale if scale is not None else amount


def parse_money(text: str, style: NumberStyle = UK) -> Decimal | None:
    """:func:`read_money`, or None when ``text`` is not an amount.

    >>> parse_money("£120,000"), parse_money("1.5m"), parse_money("£-5"), parse_money("£12,34")
    (Decimal('120000'), Decimal('1500000.0'), None, None)
    """
    try:
        return read_money(text, style)
    except NumberError:
        return None


def pct_text(value: Decimal) -> str:
    """'15', '12.5': a percentage without trailing zeros or exponent."""
    return format(value.normalize(), "f")


def _pence(amount: Decimal) -> int:
    return int((amount * 100).to_integral_value())


def _pounds(pence: int) -> Decimal:
    return Decimal(pence) / 100


def variance_pct(actual: Decimal, expected: Decimal) -> Decimal | None:
    """Signed variance of ``actual`` from ``expected`` in percent (None when nothing was expected)."""
    if expected == 0:
        return None if actual != 0 else Decimal(0)
    return ((actual - expected) * _HUNDRED / expected).normalize()


def exceeds(actual: Decimal, expected: Decimal, threshold_pct: Decimal) -> bool:
    """Whether the variation is *more than* ``threshold_pct`` percent; exact, no division."""
    if expected == 0:
        return actual != 0
    return abs(actual - expected) * _HUNDRED > threshold_pct * expected


# ---------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Statement:
    """One version of a quarter's statement: actual spend and the next quarter's projection."""

    id: int
    contract_id: str
    period: str
    period_start: date
    actual: Decimal
    projected: Decimal
    submitted_at: datetime
    submitted_by: str
    supersedes_id: int | None = None
    correction: str | None = None


@dataclass(frozen=True)
class ExceptionReport:
    """The provider's exception report for a quarter's variance."""

    id: int
    contract_id: str
    period: str
    statement_id: int
    reasons: str
    measures: str
    budget: Decimal
    filed_at: datetime
    filed_by: str


@dataclass(frozen=True)
class Variance:
    """A quarter's statement against the projection made for it, and whether a report is owed."""

    statement: Statement
    previous: Statement | None
    threshold: Decimal
    report: ExceptionReport | None = None

    @property
    def expected(self) -> Decimal | None:
        return self.previous.projected if self.previous is not None else None

    @property
    def pct(self) -> Decimal | None:
        expected = self.expected
        return None if expected is None else variance_pct(self.statement.actual, expected)

    @property
    def required(self) -> bool:
        expected = self.expected
        return expected is not None and exceeds(self.statement.actual, expected, self.threshold)

    @property
    def outstanding(self) -> bool:
        return self.required and self.report is None

    @property
    def since(self) -> datetime:
        """When the report became owed: when the later of the two statements compared arrived."""
        times = [self.statement.submitted_at]
        if self.previous is not None:
            times.append(self.previous.submitted_at)
        return max(times)

    def describe(self) -> str:
        """'actual £115,010 against £100,000 projected: 15.01% over' (or why nothing compares)."""
        s = self.statement
        expected = self.expected
        if expected is None:
            return (
                f"actual {money(s.actual)}; no projection to compare with "
                "(no statement for the quarter before)"
            )
        pct = self.pct
        if pct is None:
            return f"actual {money(s.actual)} against nothing projected"
        side = "over" if pct > 0 else "under" if pct < 0 else "exactly on"
        amount = f"{abs(pct):.2f}% {side}" if pct != 0 else "exactly on"
        return f"actual {money(s.actual)} against {money(expected)} projected: {amount}"


class FinanceError(Exception):
    """Something refused; ``str(error)`` is one sentence a user can act on."""

    reason = "refused"


class BadPeriod(FinanceError):
    reason = "bad period"


class BadAmount(FinanceError):
    reason = "bad amount"

    def __init__(self, text: str) -> None:
        super().__init__(BAD_AMOUNT.format(text=text))


class AlreadyStated(FinanceError):
    reason = "already stated"


class ReportRefused(FinanceError):
    reason = "report refused"


# ---------------------------------------------------------------------------------- ledger


def _statement(r: ExpenditureStatementRecord) -> Statement:
    return Statement(
        r.id,
        r.contract_id,
        r.period_label,
        r.period_start,
        _pounds(r.actual_pence),
        _pounds(r.projected_pence),
        r.submitted_at,
        r.submitted_by,
        r.supersedes_id,
        r.correction,
    )


def _report(r: ExpenditureExceptionRecord) -> ExceptionReport:
    return ExceptionReport(
        r.id,
        r.contract_id,
        r.period_label,
        r.statement_id,
        r.reasons,
        r.measures,
        _pounds(r.budget_pence),
        r.filed_at,
        r.filed_by,
    )


def check_quarter(contract: Contract, text: str, today: date) -> Period:
    """The quarter ``text`` names for ``contract``, ended by ``today``; else :class:`BadPeriod`."""
    try:
        period = contract.parse_period(text)
    except PeriodError as exc:
        raise BadPeriod(str(exc)) from None
    if period.kind != "quarter":
        raise BadPeriod(NOT_A_QUARTER.format(label=period.label))
    if contract.year_for(period) is None:
        raise BadPeriod(OUTSIDE.format(label=period.label, start=contract.start, end=contract.end))
    if period.end >= today:
        raise BadPeriod(NOT_ENDED.format(label=period.label, end=period.end))
    return period


class ExpenditureLedger:
    """Record statements and exception reports; work out variances. Every write is audited.

    >>> # ledger = ExpenditureLedger(services)                  # 15% unless told otherwise
    >>> # ledger.record(contract, q3, Decimal("115010"), Decimal("90000"), "U-TRUST", now).required
    """

    def __init__(self, services: Services, *, threshold_pct: Decimal | None = None) -> None:
        self._services = services
        self._db = services.db
        self._override = threshold_pct

    def threshold_for(self, contract: Contract) -> Decimal:
        """The variance that needs a report: the one given to the ledger, else the contract's
        ``payments.finance_exception.variance_percent``, else a ``expenditure_variance_pct``
        setting, else 15%."""
        if self._override is not None:
            return self._override
        terms = getattr(contract.payments, "finance_exception", None)
        for value in (
            getattr(terms, "variance_percent", None),
            getattr(self._services.settings, "expenditure_variance_pct", None),
        ):
            if value is not None:
                return Decimal(str(value)).normalize()
        return DEFAULT_VARIANCE_PCT

    # ---- reading
    def statements(self, contract_id: str) -> builtins.list[Statement]:
        """The current version of each quarter's statement, oldest quarter first."""
        with self._db.session(read_only=True) as session:
            rows = session.scalars(
                select(ExpenditureStatementRecord).where(
                    ExpenditureStatementRecord.contract_id == contract_id
                )
            ).all()
        replaced = {r.supersedes_id for r in rows if r.supersedes_id is not None}
        current = [_statement(r) for r in rows if r.id not in replaced]
        return sorted(current, key=lambda s: s.period_start)

    def reports(self, contract_id: str) -> dict[str, ExceptionReport]:
        """The latest exception report per quarter label."""
        with self._db.session(read_only=True) as session:
            rows = session.scalars(
                select(ExpenditureExceptionRecord)
                .where(ExpenditureExceptionRecord.contract_id == contract_id)
                .order_by(ExpenditureExceptionRecord.id)
            ).all()
        return {r.period_label: _report(r) for r in rows}

    def variances(self, contract: Contract) -> builtins.list[Variance]:
        """Every stated quarter against the projection for it, oldest first."""
        statements = self.statements(contract.id)
        reports = self.reports(contract.id)
        by_label = {s.period: s for s in statements}
        threshold = self.threshold_for(contract)
        out = []
        for s in statements:
            prev_label = contract.parse_period(s.period).previous().label
            out.append(Variance(s, by_label.get(prev_label), threshold, reports.get(s.period)))
        return out

    def variance(self, contract: Contract, period: Period) -> Variance | None:
        return next(
            (v for v in self.variances(contract) if v.statement.period == period.label), None
        )

    def outstanding(self, contract: Contract) -> builtins.list[Variance]:
        """Quarters whose exception report is owed and not yet in."""
        return [v for v in self.variances(contract) if v.outstanding]

    # ---- writing
    def record(
        self,
        contract: Contract,
        period: Period,
        actual: Decimal,
        projected: Decimal,
        actor: str,
        now: datetime,
        *,
        correction: str | None = None,
    ) -> Variance:
        """Store a quarter's statement (a correction when one exists and ``correction`` says why)."""
        problem: FinanceError | None = None
        for amount in (actual, projected):
            if amount < 0:
                problem = BadAmount(f"{amount}")
        existing = next((s for s in self.statements(contract.id) if s.period == period.label), None)
        why = (correction or "").strip() or None
        if problem is None and (too := text_problem(why, CORRECTION)) is not None:
            problem = ReportRefused(too)
        if problem is None and existing is not None and why is None:
            problem = AlreadyStated(
                ALREADY_STATED.format(
                    label=period.label,
                    actual=money(existing.actual),
                    projected=money(existing.projected),
                    who=existing.submitted_by,
                    when=existing.submitted_at.astimezone(LONDON),
                )
            )
        if problem is not None:
            self._refused(actor, "expenditure", contract.id, period.label, problem, now)
            raise problem
        with self._db.session() as session:
            record = ExpenditureStatementRecord(
                contract_id=contract.id,
                period_label=period.label,
                period_start=period.start,
                period_end=period.end,
                actual_pence=_pence(actual),
                projected_pence=_pence(projected),
                submitted_at=now,
                submitted_by=actor,
                supersedes_id=existing.id if existing is not None else None,
                correction=why if existing is not None else None,
            )
            session.add(record)
            session.flush()
            self._audit(
                session,
                "expenditure",
                now,
                actor,
                contract.id,
                period.label,
                {
                    "statement": record.id,
                    "actual": str(actual),
                    "projected": str(projected),
                    "corrects": existing.id if existing else None,
                },
            )
        found = self.variance(contract, period)
        assert found is not None
        return found

    def file_exception(
        self,
        contract: Contract,
        period: Period,
        reasons: str,
        measures: str,
        budget: Decimal | None,
        actor: str,
        now: datetime,
    ) -> Variance:
        """File the exception report for a quarter whose variance requires one."""
        found = self.variance(contract, period)
        problem: FinanceError | None = None
        missing = [
            name
            for name, given in (
                ("reasons", reasons.strip()),
                ("measures", measures.strip()),
                ("budget", budget is not None),
            )
            if not given
        ]
        if found is None:
            problem = ReportRefused(NO_STATEMENT.format(label=period.label))
        elif not found.required:
            problem = ReportRefused(
                NOT_NEEDED.format(label=period.label, threshold=pct_text(found.threshold))
            )
        elif missing:
            problem = ReportRefused(
                REPORT_NEEDS.format(
                    label=period.label, missing=" and ".join(REPORT_PARTS[m] for m in missing)
                )
            )
        elif budget is not None and budget < 0:
            problem = BadAmount(f"{budget}")
        elif (
            too := first_problem(
                (reasons.strip(), EXPENDITURE_REASONS), (measures.strip(), EXPENDITURE_MEASURES)
            )
        ) is not None:
            problem = ReportRefused(too)
        if problem is not None or found is None or budget is None:
            assert problem is not None
            self._refused(actor, "expenditure_exception", contract.id, period.label, problem, now)
            raise problem
        with self._db.session() as session:
            record = ExpenditureExceptionRecord(
                contract_id=contract.id,
                period_label=period.label,
                statement_id=found.statement.id,
                reasons=reasons.strip(),
                measures=measures.strip(),
                budget_pence=_pence(budget),
                filed_at=now,
                filed_by=actor,
            )
            session.add(record)
            session.flush()
            self._audit(
                session,
                "expenditure_exception",
                now,
                actor,
                contract.id,
                period.label,
                {
                    "report": record.id,
                    "statement": found.statement.id,
                    "variance_pct": str(found.pct),
                    "budget": str(budget),
                },
            )
        again = self.variance(contract, period)
        assert again is not None
        return again

    @staticmethod
    def _audit(
        session: Any,
        action: str,
        now: datetime,
        actor: str,
        contract_id: str,
        subject: str,
        detail: dict[str, Any],
    ) -> None:
        add_event(
            session,
            at=as_utc(now),
            actor=actor,
            action=action,
            contract_id=contract_id,
            subject=subject,
            outcome="ok",
            detail=detail,
        )

    def _refused(
        self,
        actor: str,
        action: str,
        contract_id: str,
        subject: str,
        problem: FinanceError,
        now: datetime,
    ) -> None:
        self._services.audit.record(
            actor,
            action,
            contract_id,
            subject,
            "refused",
            {"reason": problem.reason, "message": str(problem), "at": as_utc(now).isoformat()},
        )


# ---------------------------------------------------------------------------------- reminders


def exception_messages(contract: Contract, v: Variance) -> list[Message]:
    """Every message an owed exception report produces, before filtering by window or filing."""
    label = v.statement.period
    key = f"expenditure-{label}"
    day = v.since.astimezone(LONDON).date()
    ask = (
        f"the expenditure exception report for {contract.name}, {label} ({v.describe()}; more "
        f"than {pct_text(v.threshold)}% needs one). Reply `/kpi expenditure {contract.id} {label} "
        'reasons:"…" measures:"…" budget:£…` with the reasons, corrective measures and '
        "re-profiled annual budget."
    )
    out = [
        Message(
            at(day + timedelta(days=d)),
            contract.id,
            "reminder",
            "provider",
            key,
            f"exception-d+{d}",
            f"Reminder: please send {ask}",
        )
        for d in REMIND_AFTER_DAYS
    ]
    out.append(
        Message(
            at(day + timedelta(days=ESCALATE_AFTER_DAYS)),
            contract.id,
            "escalation",
            "commissioner",
            key,
            "exception-escalation",
            f"Escalation: {contract.provider.name} has not sent the expenditure exception "
            f"report for {contract.name}, {label} ({v.describe()}), owed since "
            f"{v.since.astimezone(LONDON):%a %-d %b %Y}.",
        )
    )
    return out


def finance_messages(services: Services, start: datetime, end: datetime) -> list[Message]:
    """Reminders for owed exception reports in ``(start, end]``, in time order, stable keys.

    The provider is reminded 3, 7 and 14 days after the report became owed, then the commissioner
    is told at 21 days; filing the report stops them. Keys are
    ``<contract>|expenditure-<quarter>|<kind>|<audience>|exception-<step>``.
    """
    since = start.astimezone(UTC) - timedelta(days=ESCALATE_AFTER_DAYS + 1)
    with services.db.session(read_only=True) as session:
        ids = sorted(
            set(
                session.scalars(
                    select(ExpenditureStatementRecord.contract_id).where(
                        ExpenditureStatementRecord.submitted_at > since
                    )
                )
            )
        )
    ledger = ExpenditureLedger(services)
    out: list[Message] = []
    for contract_id in ids:
        contract = services.contract(contract_id)
        if contract is None:
            continue
        for v in ledger.variances(contract):
            if not v.required:
                continue
            found = [
                m
                for m in exception_messages(contract, v)
                if start < m.when <= end
                and m.when > v.since
                and (v.report is None or m.when < v.report.filed_at)
            ]
            provider = [m for m in found if m.audience == "provider"]
            out.extend(m for m in found if m.audience != "provider")
            out.extend(provider[-1:])
    return sorted(out, key=lambda m: (m.when, m.contract, m.period, m.step))


def finance_summary(services: Services, contract: Contract) -> list[str]:
    """Lines for status and compliance views: each quarter whose exception report is owed."""
    return [
        f"💷 Expenditure exception report owed for {v.statement.period}: {v.describe()} "
        f"(asked {v.since.astimezone(LONDON):%a %-d %b %Y})."
        for v in ExpenditureLedger(services).outstanding(contract)
    ]


def status_lines(services: Services, contract: Contract, period: Period) -> list[str]:
    """The owed exception reports, for ``/kpi status`` and the quarterly summary (any period)."""
    # Only a contract with a statement can owe a report: one quick indexed read says which.
    if not services.db.read_scalar(
        f"SELECT 1 FROM {ExpenditureStatementRecord.__tablename__} "  # noqa: S608
        "WHERE contract_id = ? LIMIT 1",
        contract.id,
    ):
        return []
    return finance_summary(services, contract)


def status_lines_many(
    services: Services, pairs: Sequence[tuple[Contract, Period]]
) -> dict[str, list[str]]:
    """:func:`status_lines` for many contracts: only those with a statement can owe a report,
    and one query finds them."""
    ids = [c.id for c, _ in pairs]
    stated: set[str] = set()
    with services.db.session(read_only=True) as session:
        for start in range(0, len(ids), 1000):
            stated.update(
                session.scalars(
                    select(ExpenditureStatementRecord.contract_id)
                    .where(ExpenditureStatementRecord.contract_id.in_(ids[start : start + 1000]))
                    .distinct()
                )
            )
    return {c.id: finance_summary(services, c) for c, _ in pairs if c.id in stated}


# Owed reports change only with statements and reports, each audited under these actions.
STATUS_CHANGED_BY = ("expenditure",)

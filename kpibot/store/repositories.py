"""Repositories: the only way the rest of kpibot reads and writes the store.

Each write runs in one transaction, so it happens completely or not at all. Figures are never
overwritten: a figure for a (contract, KPI, period) that already has one is an amendment, stored as
a new row that supersedes the old one and says why.

>>> db = Database("sqlite://")
>>> db.upgrade()
>>> contracts, figures = ContractRepository(db), FigureRepository(db)
>>> _ = contracts.upsert(demo_contract, actor="loader")  # doctest: +SKIP
>>> figures.submit("demo", [NewFigure("1", demo.parse_period("2019/20 Q3"), value=96.0)],
...                actor="U123", source="chat").duplicate  # doctest: +SKIP
False
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pandas as pd
from pydantic import ValidationError
from sqlalchemy import Select, delete, exists, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from kpibot.engine.model import Contract
from kpibot.engine.periods import Period
from kpibot.store.database import Database
from kpibot.store.errors import (
    CONSTRAINT_RULES,
    AmendmentNeedsReason,
    ConcurrentChange,
    DuplicateFigureInBatch,
    FigureRejected,
    IdempotencyKeyConflict,
    StoredContractInvalid,
    StoreError,
    UnknownContract,
    UnknownKPI,
)
from kpibot.store.rows import (
    AuditEntry,
    Clock,
    ContractLoad,
    FigureRow,
    NewFigure,
    Outcome,
    Source,
    SubmissionResult,
    utc_now,
)
from kpibot.store.schema import (
    OUTCOMES,
    SOURCES,
    AuditEventRecord,
    ContractRecord,
    FigureRecord,
    KPIRecord,
    SubmissionRecord,
    TargetRecord,
)

FRAME_COLUMNS = [
    "contract",
    "kpi",
    "period",
    "period_start",
    "value",
    "numerator",
    "denominator",
    "benchmark",
    "submitted_at",
    "late",
    "status",
]
_FRAME_DTYPES = {
    "contract": "str",
    "kpi": "str",
    "period": "str",
    "value": "float64",
    "numerator": "float64",
    "denominator": "float64",
    "benchmark": "float64",
    "late": "bool",
    "status": "str",
}
# Unique indexes that only a concurrent writer can trip: someone amended the same figure first.
_RACE_CONSTRAINTS = {"uq_figures_supersedes_id", "uq_figures_first_version"}
_SQLITE_UNIQUE = {
    "figures.supersedes_id": "uq_figures_supersedes_id",
    "figures.contract_id, figures.kpi_code, figures.period_label": "uq_figures_first_version",
    "submissions.idempotency_key": "uq_submissions_idempotency_key",
}
_OFFENDS: dict[str, Callable[[FigureRecord], bool]] = {
    "ck_figures_numerator": lambda f: f.numerator is not None and f.numerator < 0,
    "ck_figures_denominator": lambda f: f.denominator is not None and f.denominator < 0,
    "ck_figures_period_dates": lambda f: f.period_end < f.period_start,
}

_newer = aliased(FigureRecord)
IS_CURRENT = ~exists().where(_newer.supersedes_id == FigureRecord.id)
"""True for figures that no other figure supersedes: the current version of each figure."""


def content_hash(contract: Contract) -> str:
    """A stable SHA-256 of a contract's definition, to tell whether a reload changed anything."""
    canonical = json.dumps(
        contract.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _jsonable(detail: dict[str, Any] | None) -> dict[str, Any]:
    # Dates and Decimals in audit detail become strings rather than failing the whole write.
    return dict(json.loads(json.dumps(detail or {}, default=str)))


def _constraint_name(error: IntegrityError) -> str | None:
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if isinstance(name, str):
        return name
    message = str(error.orig)
    if match := re.search(r"CHECK constraint failed: (\w+)", message):
        return match[1]
    if match := re.search(r"UNIQUE constraint failed: (.+)$", message):
        return _SQLITE_UNIQUE.get(match[1].strip())
    return None


def _audit(
    session: Session,
    *,
    at: Any,
    actor: str,
    action: str,
    contract_id: str | None,
    subject: str | None,
    outcome: str,
    detail: dict[str, Any] | None,
) -> AuditEventRecord:
    if outcome not in OUTCOMES:
        raise ValueError(f"audit outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    record = AuditEventRecord(
        at=at,
        actor=actor,
        action=action,
        contract_id=contract_id,
        subject=subject,
        outcome=outcome,
        detail=_jsonable(detail),
    )
    session.add(record)
    return record


def _entry(record: AuditEventRecord) -> AuditEntry:
    return AuditEntry(
        id=record.id,
        at=record.at,
        actor=record.actor,
        action=record.action,
        contract_id=record.contract_id,
        subject=record.subject,
        outcome=record.outcome,
        detail=dict(record.detail),
    )


class AuditLog:
    """Who did what, when, and how it ended. Entries are only ever added.

    >>> audit = AuditLog(db)  # doctest: +SKIP
    >>> audit.record("U123", "refuse", "demo", "submit 1a", outcome="refused",
    ...              detail={"why": "not a provider"})  # doctest: +SKIP
    >>> [e.action for e in audit.recent(5, contract_id="demo")]  # doctest: +SKIP
    ['refuse', 'submit', 'load_contract']
    """

    def __init__(self, db: Database, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def record(
        self,
        actor: str,
        action: str,
        contract_id: str | None = None,
        subject: str | None = None,
        outcome: Outcome = "ok",
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry in its own transaction and return it."""
        with self._db.session() as session:
            record = _audit(
                session,
                at=self._clock(),
                actor=actor,
                action=action,
                contract_id=contract_id,
                subject=subject,
                outcome=outcome,
                detail=detail,
            )
            session.flush()
            return _entry(record)

    def recent(self, limit: int = 50, contract_id: str | None = None) -> list[AuditEntry]:
        """The latest ``limit`` entries, newest first, optionally for one contract."""
        query = select(AuditEventRecord).order_by(
            AuditEventRecord.at.desc(), AuditEventRecord.id.desc()
        )
        if contract_id is not None:
            query = query.where(AuditEventRecord.contract_id == contract_id)
        with self._db.session(read_only=True) as session:
            return [_entry(r) for r in session.scalars(query.limit(limit))]


class ContractRepository:
    """Contracts as loaded from ``config/contracts``, with their KPIs and targets denormalised.

    >>> contracts = ContractRepository(db)  # doctest: +SKIP
    >>> contracts.upsert(contract, actor="loader").changed  # doctest: +SKIP
    True
    >>> contracts.get("one-you-lifestyle") == contract  # doctest: +SKIP
    True
    """

    def __init__(self, db: Database, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def upsert(self, contract: Contract, actor: str) -> ContractLoad:
        """Store ``contract`` (definition, KPIs, targets for every contract year) and audit it."""
        definition = contract.model_dump(mode="json")
        digest = content_hash(contract)
        now = self._clock()
        values = {
            "id": contract.id,
            "name": contract.name,
            "provider_name": contract.provider.name,
            "commissioner_name": contract.commissioner.name,
            "definition": definition,
            "content_hash": digest,
            "loaded_at": now,
            "loaded_by": actor,
        }
        with self._db.session() as session:
            previous = session.scalar(
                select(ContractRecord.content_hash)
                .where(ContractRecord.id == contract.id)
                .with_for_update()
            )
            insert_ = postgresql.insert if self._db.dialect == "postgresql" else sqlite.insert
            upsert = insert_(ContractRecord).values(values)
            session.execute(
                upsert.on_conflict_do_update(
                    index_elements=[ContractRecord.id],
                    set_={k: upsert.excluded[k] for k in values if k != "id"},
                )
            )
            changed = previous != digest
            if changed:
                self._replace_kpis(session, contract)
            _audit(
                session,
                at=now,
                actor=actor,
                action="load_contract",
                contract_id=contract.id,
                subject=contract.name,
                outcome="ok",
                detail={
                    "content_hash": digest,
                    "created": previous is None,
                    "changed": changed,
                    "kpis": len(contract.kpis),
                },
            )
        return ContractLoad(contract.id, digest, created=previous is None, changed=changed)

    @staticmethod
    def _replace_kpis(session: Session, contract: Contract) -> None:
        session.execute(delete(TargetRecord).where(TargetRecord.contract_id == contract.id))
        session.execute(delete(KPIRecord).where(KPIRecord.contract_id == contract.id))
        kpis = [
            {
                "contract_id": contract.id,
                "code": kpi.code,
                "position": position,
                "name": kpi.name,
                "unit": kpi.unit,
                "polarity": kpi.polarity,
                "category": kpi.category,
            }
            for position, kpi in enumerate(contract.kpis)
        ]
        targets = [
            {
                "contract_id": contract.id,
                "kpi_code": kpi.code,
                "year": year.year,
                "target_text": kpi.target_text(year.year),
                "tolerance_text": kpi.tolerance_text(year.year),
                "critical_text": kpi.critical_text(year.year),
            }
            for kpi in contract.kpis
            for year in contract.contract_years
        ]
        session.execute(insert(KPIRecord), kpis)
        session.execute(insert(TargetRecord), targets)

    def get(self, contract_id: str) -> Contract | None:
        """The contract as last loaded, or None when no contract has this id."""
        with self._db.session(read_only=True) as session:
            definition = session.scalar(
                select(ContractRecord.definition).where(ContractRecord.id == contract_id)
            )
        return None if definition is None else _rebuild(contract_id, definition)

    def all(self) -> list[Contract]:
        """Every loaded contract, ordered by id."""
        with self._db.session(read_only=True) as session:
            rows = session.execute(
                select(ContractRecord.id, ContractRecord.definition).order_by(ContractRecord.id)
            ).all()
        return [_rebuild(contract_id, definition) for contract_id, definition in rows]

    def ids(self) -> list[str]:
        """The ids of every loaded contract, in order."""
        with self._db.session(read_only=True) as session:
            return list(session.scalars(select(ContractRecord.id).order_by(ContractRecord.id)))


def _rebuild(contract_id: str, definition: dict[str, Any]) -> Contract:
    try:
        return Contract.model_validate(definition)
    except ValidationError as error:
        raise StoredContractInvalid(contract_id, str(error)) from error


class _KeyTaken(Exception):
    """Another transaction committed the same idempotency key while ours was running."""


def _row(record: FigureRecord) -> FigureRow:
    return FigureRow(
        id=record.id,
        contract_id=record.contract_id,
        kpi=record.kpi_code,
        period=record.period_label,
        period_start=record.period_start,
        period_end=record.period_end,
        period_kind=record.period_kind,
        value=record.value,
        numerator=record.numerator,
        denominator=record.denominator,
        benchmark=record.benchmark,
        submission_id=record.submission_id,
        submitted_by=record.submitted_by,
        submitted_at=record.submitted_at,
        late=record.late,
        note=record.note,
        supersedes_id=record.supersedes_id,
        reason=record.amendment_reason,
        status=record.status,
    )


def _numbers(record: FigureRecord) -> dict[str, float | None]:
    return {
        "value": record.value,
        "numerator": record.numerator,
        "denominator": record.denominator,
        "benchmark": record.benchmark,
    }


def _canonical_kpi(session: Session, contract_id: str, kpi: str) -> str:
    codes = session.scalars(select(KPIRecord.code).where(KPIRecord.contract_id == contract_id))
    by_lower = {code.lower(): code for code in codes}
    return by_lower.get(kpi.strip().lower(), kpi.strip())


class FigureRepository:
    """Submitted figures: append-only, with amendments that say who changed what, when and why.

    >>> figures = FigureRepository(db)  # doctest: +SKIP
    >>> q3 = contract.parse_period("2019/20 Q3")  # doctest: +SKIP
    >>> figures.submit("demo", [NewFigure("1a", q3, numerator=45, denominator=50)],
    ...                actor="U123", source="chat", idempotency_key="slack:1700000000.1234")
    ... # doctest: +SKIP
    >>> figures.submit("demo", [NewFigure("1a", q3, numerator=46, denominator=50,
    ...                reason="one case recoded")], actor="U123", source="chat")  # doctest: +SKIP
    >>> [f.value for f in figures.history("demo", "1a", q3)]  # doctest: +SKIP
    """

    def __init__(self, db: Database, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def submit(
        self,
        contract_id: str,
        rows: Sequence[NewFigure],
        actor: str,
        source: Source,
        idempotency_key: str | None = None,
        filename: str | None = None,
        note: str | None = None,
    ) -> SubmissionResult:
        """Store one submission and its figures together, or nothing at all.

        Raises the errors in :mod:`kpibot.store.errors`; a replayed ``idempotency_key`` returns
        the earlier submission with ``duplicate=True`` and writes nothing.
        """
        if source not in SOURCES:
            raise ValueError(f"source must be one of {', '.join(SOURCES)}, not {source!r}")
        try:
            with self._db.session() as session:
                if idempotency_key is not None:
                    earlier = _submission_by_key(session, idempotency_key)
                    if earlier is not None:
                        return _replay(session, earlier, contract_id)
                return self._write(
                    session, contract_id, list(rows), actor, source, idempotency_key, filename, note
                )
        except _KeyTaken:
            with self._db.session(read_only=True) as session:
                earlier = _submission_by_key(session, idempotency_key or "")
                if earlier is None:
                    raise ConcurrentChange(contract_id) from None
                return _replay(session, earlier, contract_id)

    def _write(
        self,
        session: Session,
        contract_id: str,
        rows: list[NewFigure],
        actor: str,
        source: str,
        idempotency_key: str | None,
        filename: str | None,
        note: str | None,
    ) -> SubmissionResult:
        codes = {
            code.lower(): code
            for code in session.scalars(
                select(KPIRecord.code).where(KPIRecord.contract_id == contract_id)
            )
        }
        if not codes:
            raise UnknownContract(contract_id)
        keyed: dict[tuple[str, str], NewFigure] = {}
        for row in rows:
            code = codes.get(row.kpi.strip().lower())
            if code is None:
                raise UnknownKPI(contract_id, row.kpi)
            for name in ("value", "numerator", "denominator", "benchmark"):
                number = getattr(row, name)
                if number is not None and not math.isfinite(number):
                    raise FigureRejected(contract_id, f"the {name} must be a number", code)
            if (code, row.period.label) in keyed:
                raise DuplicateFigureInBatch(contract_id, code, row.period.label)
            keyed[(code, row.period.label)] = row

        current = {
            (record.kpi_code, record.period_label): record
            for record in session.scalars(
                select(FigureRecord).where(
                    FigureRecord.contract_id == contract_id,
                    FigureRecord.kpi_code.in_({code for code, _ in keyed}),
                    IS_CURRENT,
                )
            )
            if (record.kpi_code, record.period_label) in keyed
        }
        unexplained = [
            key for key, row in keyed.items() if key in current and not (row.reason or "").strip()
        ]
        if unexplained:
            raise AmendmentNeedsReason(contract_id, unexplained)

        now = self._clock()
        submission = SubmissionRecord(
            contract_id=contract_id,
            submitted_by=actor,
            submitted_at=now,
            source=source,
            filename=filename,
            row_count=len(keyed),
            idempotency_key=idempotency_key,
            note=note,
        )
        session.add(submission)
        try:
            session.flush()
        except IntegrityError as error:
            if idempotency_key is not None:
                raise _KeyTaken from error
            raise

        records = [
            FigureRecord(
                contract_id=contract_id,
                kpi_code=code,
                period_label=label,
                period_start=row.period.start,
                period_end=row.period.end,
                period_kind=row.period.kind,
                value=row.value,
                numerator=row.numerator,
                denominator=row.denominator,
                benchmark=row.benchmark,
                submission_id=submission.id,
                submitted_by=actor,
                submitted_at=now,
                late=row.late,
                note=row.note,
                supersedes_id=current[(code, label)].id if (code, label) in current else None,
                amendment_reason=(row.reason or "").strip() or None,
            )
            for (code, label), row in keyed.items()
        ]
        session.add_all(records)
        try:
            session.flush()
        except IntegrityError as error:
            rejection = _rejection(contract_id, error, records)
            if rejection is None:
                raise
            raise rejection from error

        _audit(
            session,
            at=now,
            actor=actor,
            action="submit",
            contract_id=contract_id,
            subject=filename,
            outcome="ok",
            detail={
                "submission_id": submission.id,
                "source": source,
                "rows": len(records),
                "amendments": sum(r.supersedes_id is not None for r in records),
                "idempotency_key": idempotency_key,
            },
        )
        for record in records:
            if record.supersedes_id is not None:
                old = current[(record.kpi_code, record.period_label)]
                _audit(
                    session,
                    at=now,
                    actor=actor,
                    action="amend",
                    contract_id=contract_id,
                    subject=f"{record.kpi_code} {record.period_label}",
                    outcome="ok",
                    detail={
                        "figure_id": record.id,
                        "supersedes_id": old.id,
                        "reason": record.amendment_reason,
                        "before": _numbers(old),
                        "after": _numbers(record),
                    },
                )
        return _result(submission, records, duplicate=False)

    def current(self, contract_id: str, kpi: str | None = None) -> list[FigureRow]:
        """The current version of each figure for a contract (one KPI if given), by KPI and date."""
        with self._db.session(read_only=True) as session:
            query = select(FigureRecord).where(FigureRecord.contract_id == contract_id, IS_CURRENT)
            if kpi is not None:
                code = _canonical_kpi(session, contract_id, kpi)
                query = query.where(FigureRecord.kpi_code == code)
            query = query.order_by(FigureRecord.kpi_code, FigureRecord.period_start)
            return [_row(r) for r in session.scalars(query)]

    def history(self, contract_id: str, kpi: str, period: Period | str) -> list[FigureRow]:
        """Every version of one figure, oldest first, each with who, when and why."""
        label = period.label if isinstance(period, Period) else " ".join(period.split())
        with self._db.session(read_only=True) as session:
            code = _canonical_kpi(session, contract_id, kpi)
            query = (
                select(FigureRecord)
                .where(
                    FigureRecord.contract_id == contract_id,
                    FigureRecord.kpi_code == code,
                    FigureRecord.period_label == label,
                )
                .order_by(FigureRecord.id)
            )
            return [_row(r) for r in session.scalars(query)]

    def current_frame(self, contract_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Current figures for many contracts as one DataFrame, read in a single query.

        Columns: ``contract, kpi, period, period_start, value, numerator, denominator,
        benchmark, submitted_at, late, status``; ``period_start`` is a datetime64 and
        ``submitted_at`` a UTC datetime64.

        >>> frame = FigureRepository(db).current_frame(["one-you-lifestyle"])  # doctest: +SKIP
        >>> frame.groupby("kpi")["value"].last()  # doctest: +SKIP
        """
        query: Select[Any] = select(
            FigureRecord.contract_id,
            FigureRecord.kpi_code,
            FigureRecord.period_label,
            FigureRecord.period_start,
            FigureRecord.value,
            FigureRecord.numerator,
            FigureRecord.denominator,
            FigureRecord.benchmark,
            FigureRecord.submitted_at,
            FigureRecord.late,
            FigureRecord.status,
        ).where(IS_CURRENT)
        if contract_ids is not None:
            query = query.where(FigureRecord.contract_id.in_(list(contract_ids)))
        query = query.order_by(
            FigureRecord.contract_id, FigureRecord.kpi_code, FigureRecord.period_start
        )
        with self._db.session(read_only=True) as session:
            rows = session.execute(query).all()
        frame = pd.DataFrame.from_records(rows, columns=FRAME_COLUMNS).astype(_FRAME_DTYPES)
        frame["period_start"] = pd.to_datetime(frame["period_start"])
        frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True)
        return frame


def _submission_by_key(session: Session, key: str) -> SubmissionRecord | None:
    return session.scalar(select(SubmissionRecord).where(SubmissionRecord.idempotency_key == key))


def _replay(session: Session, earlier: SubmissionRecord, contract_id: str) -> SubmissionResult:
    if earlier.contract_id != contract_id:
        raise IdempotencyKeyConflict(earlier.idempotency_key or "", contract_id, earlier.contract_id)
    records = session.scalars(
        select(FigureRecord)
        .where(FigureRecord.submission_id == earlier.id)
        .order_by(FigureRecord.id)
    ).all()
    return _result(earlier, records, duplicate=True)


def _result(
    submission: SubmissionRecord, records: Sequence[FigureRecord], *, duplicate: bool
) -> SubmissionResult:
    return SubmissionResult(
        submission_id=submission.id,
        contract_id=submission.contract_id,
        submitted_by=submission.submitted_by,
        submitted_at=submission.submitted_at,
        source=submission.source,
        filename=submission.filename,
        row_count=submission.row_count,
        idempotency_key=submission.idempotency_key,
        note=submission.note,
        duplicate=duplicate,
        figures=tuple(_row(r) for r in records),
    )


def _rejection(
    contract_id: str, error: IntegrityError, records: Sequence[FigureRecord]
) -> StoreError | None:
    name = _constraint_name(error)
    if name in _RACE_CONSTRAINTS:
        return ConcurrentChange(contract_id)
    if name in CONSTRAINT_RULES:
        offends = _OFFENDS.get(name)
        kpi = next((r.kpi_code for r in records if offends and offends(r)), None)
        return FigureRejected(contract_id, CONSTRAINT_RULES[name], kpi)
    return None

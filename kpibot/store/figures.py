"""The figure repository: append-only figures, amendments that say why, and fast current views.

A figure for a (contract, KPI, period) that already has one is an amendment: a new row that
supersedes the old one and carries a reason. Nothing a user submits is ever overwritten or lost.

>>> db = Database("sqlite://")
>>> db.upgrade()
>>> FigureRepository(db).current_frame().columns.tolist()[:3]
['contract', 'kpi', 'period']
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import String, cast, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from kpibot.engine.periods import Period
from kpibot.store.audit import add_event
from kpibot.store.database import Database
from kpibot.store.errors import (
    AmendmentNeedsReason,
    ConcurrentChange,
    DuplicateFigureInBatch,
    FigureRejected,
    IdempotencyKeyConflict,
    StoreError,
    UnknownContract,
    UnknownKPI,
    rejection_for,
)
from kpibot.store.rows import Clock, FigureRow, NewFigure, Source, SubmissionResult, utc_now
from kpibot.store.schema import (
    SOURCES,
    ContractRecord,
    FigureRecord,
    KPIRecord,
    SubmissionRecord,
    as_utc,
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
_newer = aliased(FigureRecord)
IS_CURRENT = ~exists().where(_newer.supersedes_id == FigureRecord.id)
"""True for figures that no other figure supersedes: the current version of each figure."""


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
    wanted = kpi.strip()
    codes = list(
        session.scalars(select(KPIRecord.code).where(KPIRecord.contract_id == contract_id))
    )
    if wanted in codes:
        return wanted
    return {code.lower(): code for code in codes}.get(wanted.lower(), wanted)


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
        except StoreError:
            # A concurrent twin with the same key may have committed between our key check and our
            # write (so our rows look like amendments): the key decides, not the error.
            if idempotency_key is None:
                raise
            with self._db.session(read_only=True) as session:
                earlier = _submission_by_key(session, idempotency_key)
                if earlier is None:
                    raise
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
            rejection = rejection_for(contract_id, error, records)
            if rejection is None:
                raise
            raise rejection from error

        add_event(
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
                add_event(
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
        # Dates come back as ISO text for pandas to parse a whole column at once: building a
        # Python date or datetime per row, and inferring their type, costs more than the query.
        query = select(
            FigureRecord.contract_id,
            FigureRecord.kpi_code,
            FigureRecord.period_label,
            cast(FigureRecord.period_start, String),
            FigureRecord.value,
            FigureRecord.numerator,
            FigureRecord.denominator,
            FigureRecord.benchmark,
            cast(FigureRecord.submitted_at, String),
            FigureRecord.late,
            FigureRecord.status,
        ).where(IS_CURRENT)
        if contract_ids is not None:
            query = query.where(FigureRecord.contract_id.in_(list(contract_ids)))
        with self._db.session(read_only=True) as session:
            # Every column needs no conversion, so read the driver's tuples straight from its
            # cursor: no ORM objects, and no SQLAlchemy Row per figure either.
            result = session.connection().execute(query)
            rows = result.cursor.fetchall()
            result.close()
        frame = pd.DataFrame.from_records(rows, columns=FRAME_COLUMNS).astype(_FRAME_DTYPES)
        frame["period_start"] = pd.to_datetime(frame["period_start"], format="ISO8601")
        frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True, format="ISO8601")
        return frame.sort_values(["contract", "kpi", "period_start"], ignore_index=True)

    def current_values(
        self, contract_ids: Sequence[str] | None = None, kpis: Sequence[str] | None = None
    ) -> pd.DataFrame:
        """The current figures' values, lean: ``contract, kpi, period, value, benchmark``.

        What evaluating status needs and no more, read as fast as the backend allows: on
        PostgreSQL a many-contract read is one ``COPY`` parsed by pandas in C, with the text
        columns as categories (a few hundred distinct strings for millions of rows). ``kpis``
        narrows the read to those KPIs (a refresh after a submission).
        """
        table = FigureRecord.__tablename__
        where: list[str] = []
        params: list[object] = []
        if contract_ids is not None:
            ids = list(contract_ids)
            if not ids:
                return _no_values()
            marks = ", ".join("?" * len(ids))
            where.append(f"f.contract_id IN ({marks})")
            # Superseded figures are few: find them among these contracts' own figures (an
            # index read), not by joining every figure in the table against every other.
            where.append(
                f"f.id NOT IN (SELECT n.supersedes_id FROM {table} n "  # noqa: S608
                f"WHERE n.contract_id IN ({marks}) AND n.supersedes_id IS NOT NULL)"
            )
            params.extend(ids)
            params.extend(ids)
        else:
            where.append(
                f"f.id NOT IN (SELECT n.supersedes_id FROM {table} n "  # noqa: S608
                "WHERE n.supersedes_id IS NOT NULL)"
            )
        if kpis is not None:
            codes = list(kpis)
            where.append(f"f.kpi_code IN ({', '.join('?' * max(len(codes), 1))})")
            params.extend(codes or [""])
        sql = (
            "SELECT f.contract_id, f.kpi_code, f.period_label, f.value, f.benchmark "  # noqa: S608
            f"FROM {table} f WHERE {' AND '.join(where)}"
        )
        bulk = contract_ids is None or len(params) > 128
        if self._db.dialect == "postgresql" and bulk and kpis is None:
            # The server writes the rows as one CSV text: one value for the driver to hand over
            # instead of a tuple per figure, and pandas parses it in C. Contract ids are slugs
            # and period labels normalised, so only KPI codes can need quoting.
            csv_sql = (
                "SELECT string_agg(concat_ws(',', f.contract_id, "  # noqa: S608
                "'\"' || replace(f.kpi_code, '\"', '\"\"') || '\"', f.period_label, "
                # concat_ws leaves NULLs out, so each number is written, or empty, explicitly.
                "coalesce(f.value::text, ''), coalesce(f.benchmark::text, '')), E'\\n') "
                f"FROM {table} f WHERE {' AND '.join(where)}"
            )
            text = self._db.read_scalar(csv_sql, *params)
            if not text:
                return _no_values()
            return pd.read_csv(
                io.StringIO(text),
                header=None,
                names=list(_VALUE_DTYPES),
                dtype=_VALUE_DTYPES,
                keep_default_na=False,
                na_values={"value": [""], "benchmark": [""]},
            )
        rows = self._db.read_rows(sql, *params)
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(_VALUE_DTYPES)
        return pd.DataFrame(
            {
                name: np.asarray(col, dtype=object if dtype == "category" else float)
                for (name, dtype), col in zip(_VALUE_DTYPES.items(), columns, strict=True)
            }
        )

    def latest_ids(self, contract_ids: Sequence[str] | None = None) -> dict[str, int]:
        """Each contract's latest figure id (figures are append-only, so it versions them)."""
        table = FigureRecord.__tablename__
        # One step down the (contract_id, id) index per contract, not a pass over its figures.
        sql = (
            f"SELECT c.id, (SELECT max(f.id) FROM {table} f WHERE f.contract_id = c.id) "  # noqa: S608
            f"FROM {ContractRecord.__tablename__} c"
        )
        params: list[object] = []
        if contract_ids is not None:
            ids = list(contract_ids)
            if not ids:
                return {}
            sql += f" WHERE c.id IN ({', '.join('?' * len(ids))})"
            params.extend(ids)
        return {str(c): int(i) for c, i in self._db.read_rows(sql, *params) if i is not None}

    def changed_since(
        self, contract_id: str, figure_id: int
    ) -> list[tuple[int, str, str, float | None, float | None]]:
        """The current figures of every KPI of a contract that got a figure after ``figure_id``:
        (id, KPI, period, value, benchmark), in one query. A status refresh re-evaluates exactly
        these KPIs; the newest figure is always current, so the largest id is the contract's."""
        rows = self._db.read_rows(CHANGED_SINCE_SQL, contract_id, contract_id, figure_id)
        return changed_rows(rows)

    def added_since(self, contract_id: str, figure_id: int) -> list[tuple[int, str, str, bool]]:
        """Figures stored for a contract after ``figure_id``: (id, KPI, period, has a value)."""
        sql = (
            f"SELECT id, kpi_code, period_label, value FROM {FigureRecord.__tablename__} "  # noqa: S608
            "WHERE contract_id = ? AND id > ? ORDER BY id"
        )
        return [
            (int(i), str(k), str(p), v is not None and not math.isnan(v))
            for i, k, p, v in self._db.read_rows(sql, contract_id, figure_id)
        ]


# FigureRepository.changed_since's query; its parameters are the contract id twice, then the
# figure id. Current as IS_CURRENT reads it: one probe of the supersedes_id index per figure of
# those KPIs, never a pass over every amendment in the table.
CHANGED_SINCE_SQL = (
    "SELECT f.id, f.kpi_code, f.period_label, f.value, f.benchmark "  # noqa: S608
    f"FROM {FigureRecord.__tablename__} f "
    "WHERE f.contract_id = ? AND f.kpi_code IN "
    f"(SELECT a.kpi_code FROM {FigureRecord.__tablename__} a "
    "WHERE a.contract_id = ? AND a.id > ?) "
    f"AND NOT EXISTS (SELECT 1 FROM {FigureRecord.__tablename__} n WHERE n.supersedes_id = f.id)"
)


def changed_rows(
    rows: Iterable[Sequence[Any]],
) -> list[tuple[int, str, str, float | None, float | None]]:
    """:data:`CHANGED_SINCE_SQL`'s rows as :meth:`FigureRepository.changed_since` gives them."""
    return [(int(i), str(k), str(p), v, b) for i, k, p, v, b in rows]


def _no_values() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _VALUE_DTYPES.items()})


_VALUE_DTYPES = {
    "contract": "category",
    "kpi": "category",
    "period": "category",
    "value": "float64",
    "benchmark": "float64",
}


VERSION_COLUMNS = [
    "id",
    "contract",
    "kpi",
    "period",
    "value",
    "benchmark",
    "submission",
    "supersedes",
    "status",
    "submitted_at",
]


def versions_frame(db: Database, contract_ids: Iterable[str]) -> pd.DataFrame:
    """Every version of every figure of these contracts, amendments and superseded ones too.

    Columns ``VERSION_COLUMNS`` (``submitted_at`` as UTC datetime64); ``current_as_of`` picks
    the figures current at a submission or a moment, so the alerts of a submission and a
    digest's window can be worked out afterwards.
    """
    query = select(
        FigureRecord.id,
        FigureRecord.contract_id,
        FigureRecord.kpi_code,
        FigureRecord.period_label,
        FigureRecord.value,
        FigureRecord.benchmark,
        FigureRecord.submission_id,
        FigureRecord.supersedes_id,
        FigureRecord.status,
        cast(FigureRecord.submitted_at, String),
    ).where(FigureRecord.contract_id.in_(sorted(set(contract_ids))))
    with db.session(read_only=True) as session:
        # The driver's tuples, as current_frame reads them: no Row or datetime per figure.
        result = session.connection().execute(query)
        rows = result.cursor.fetchall()
        result.close()
    frame = pd.DataFrame.from_records(rows, columns=VERSION_COLUMNS)
    frame = frame.astype({"value": "float64", "benchmark": "float64"})
    frame["submitted_at"] = pd.to_datetime(frame["submitted_at"], utc=True, format="ISO8601")
    return frame


def current_as_of(
    versions: pd.DataFrame,
    *,
    submission: int | None = None,
    inclusive: bool = True,
    moment: datetime | None = None,
) -> pd.DataFrame:
    """The figures current just after (``inclusive``) or just before ``submission``, or at
    ``moment``: a version is current when nothing stored by then supersedes it.

    >>> # before = current_as_of(versions, submission=12, inclusive=False)
    """
    if submission is not None:
        seen = (
            versions["submission"] <= submission
            if inclusive
            else versions["submission"] < submission
        )
    elif moment is not None:
        seen = versions["submitted_at"] <= pd.Timestamp(as_utc(moment))
    else:
        seen = pd.Series(True, index=versions.index)
    kept = versions[seen]
    replaced = set(kept["supersedes"].dropna().astype(int))
    return kept[~kept["id"].isin(replaced)]


def _submission_by_key(session: Session, key: str) -> SubmissionRecord | None:
    return session.scalar(select(SubmissionRecord).where(SubmissionRecord.idempotency_key == key))


def _replay(session: Session, earlier: SubmissionRecord, contract_id: str) -> SubmissionResult:
    if earlier.contract_id != contract_id:
        raise IdempotencyKeyConflict(
            earlier.idempotency_key or "", contract_id, earlier.contract_id
        )
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

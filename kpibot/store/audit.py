"""The audit log: who did what, when, and how it ended. Entries are only ever added.

Repositories write their audit entries with :func:`add_event` in the same transaction as the change
they describe, so the log can never disagree with the data.

>>> db = Database("sqlite://")
>>> db.upgrade()
>>> AuditLog(db).record("U123", "refuse", "demo", "submit 1a", outcome="refused").outcome
'refused'
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from kpibot.store.database import Database
from kpibot.store.rows import AuditEntry, Clock, Outcome, utc_now
from kpibot.store.schema import OUTCOMES, AuditEventRecord


def _jsonable(detail: dict[str, Any] | None) -> dict[str, Any]:
    # Dates and Decimals in audit detail become strings rather than failing the whole write.
    return dict(json.loads(json.dumps(detail or {}, default=str)))


def add_event(
    session: Session,
    *,
    at: datetime,
    actor: str,
    action: str,
    contract_id: str | None,
    subject: str | None,
    outcome: str,
    detail: dict[str, Any] | None,
) -> AuditEventRecord:
    """Add one audit entry to ``session``; it commits or rolls back with the rest."""
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
            record = add_event(
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

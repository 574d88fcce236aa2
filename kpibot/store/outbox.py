"""The outbox: every message the scheduler will send, written once and claimed by dispatchers.

The tick writes rows under a unique idempotency key, so writing the same window twice (a retry,
or two leaders during a hand-over) stores each message once. Dispatchers claim due rows
atomically (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; one ``UPDATE … RETURNING`` under SQLite's
``BEGIN IMMEDIATE``), so several replicas can dispatch side by side without sending twice.

A claim is a lease: a claimed row's ``next_attempt_at`` is the lease's end, and a dispatcher that
dies mid-delivery leaves its rows to be claimed again once the lease ends. Every claim carries a
fresh token in ``claimed_by``; the calls that finish a row (``mark_sent``, ``retry``, ``fail``)
only touch a row still held under that token, so a dispatcher whose lease ran out cannot
overwrite what the next owner did.

Delivery guarantees, honestly:

* A deliverer that writes into this database (``TransactionalDeliverer``) records the delivery
  and the ``sent`` mark in one transaction: exactly once, whatever crashes.
* A platform such as Slack is outside the transaction. A crash after Slack accepted a message
  and before ``mark_sent`` committed leaves the row claimed; after the lease it is claimed again.
  Before sending a row that was attempted before, the dispatcher asks the deliverer whether the
  message already went out (Slack: a search of the channel's recent history for the outbox id
  carried in the message metadata) and only marks it sent if so. When that lookup is not
  possible (no ``channels:history`` scope) delivery is at-least-once: the window is the few
  milliseconds between Slack's answer and our commit.

>>> outbox = OutboxRepository(db)  # doctest: +SKIP
>>> outbox.enqueue([entry], now)  # doctest: +SKIP
1
>>> [m.key for m in outbox.claim("replica-1", now)]  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Row, Table, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from kpibot.engine.reminders import Message
from kpibot.store.database import Database
from kpibot.store.schema import OutboxRecord, as_utc

OUTBOX = cast(Table, OutboxRecord.__table__)
DEFAULT_LEASE = timedelta(minutes=2)
KEY_LIMIT = 300
_uncounted = case((OUTBOX.c.attempts > 0, OUTBOX.c.attempts - 1), else_=0)


@dataclass(frozen=True)
class OutboxEntry:
    """A message to write: one per (message, target). ``key`` is its idempotency key."""

    key: str
    contract_id: str | None
    kind: str
    audience: str
    platform: str
    channel: str
    period: str | None
    step: str | None
    due_at: datetime
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class OutboxMessage:
    """A claimed row, as the dispatcher and deliverers see it; ``claim`` is the lease token."""

    id: int
    key: str
    contract_id: str | None
    kind: str
    audience: str
    platform: str
    channel: str
    period: str | None
    step: str | None
    due_at: datetime
    payload: dict[str, Any]
    attempts: int
    claim: str
    claimed_at: datetime

    @property
    def text(self) -> str:
        return str(self.payload.get("text", ""))

    @property
    def progress(self) -> dict[str, Any]:
        """What an earlier, partly failed attempt already did (e.g. the Slack ``ts`` posted)."""
        return dict(self.payload.get("progress") or {})


def _message(row: Row[Any]) -> OutboxMessage:
    return OutboxMessage(
        id=row.id,
        key=row.idempotency_key,
        contract_id=row.contract_id,
        kind=row.kind,
        audience=row.audience,
        platform=row.platform,
        channel=row.channel,
        period=row.period,
        step=row.step,
        due_at=row.due_at,
        payload=dict(row.payload or {}),
        attempts=row.attempts,
        claim=row.claimed_by,
        claimed_at=row.claimed_at,
    )


def _values(entry: OutboxEntry, now: datetime) -> dict[str, Any]:
    if len(entry.key) > KEY_LIMIT:
        raise ValueError(f"outbox key longer than {KEY_LIMIT} characters: {entry.key[:80]}…")
    due = as_utc(entry.due_at)
    return {
        "idempotency_key": entry.key,
        "contract_id": entry.contract_id,
        "kind": entry.kind,
        "audience": entry.audience,
        "platform": entry.platform,
        "channel": entry.channel,
        "period": entry.period,
        "step": entry.step,
        "due_at": due,
        "payload": entry.payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": due,
        "created_at": as_utc(now),
    }


class OutboxRepository:
    """Writes, claims and settles outbox rows; every method is one short transaction.

    ``lease`` is how long a claim lasts before another dispatcher may take the row over.

    >>> outbox = OutboxRepository(db, lease=timedelta(minutes=2))  # doctest: +SKIP
    >>> for message in outbox.claim("replica-1", now, limit=10):  # doctest: +SKIP
    ...     outbox.mark_sent(message, now)
    """

    def __init__(self, db: Database, *, lease: timedelta = DEFAULT_LEASE) -> None:
        self.db = db
        self.lease = lease

    # ------------------------------------------------------------------ writing
    def enqueue(self, entries: Iterable[OutboxEntry], now: datetime) -> int:
        """Insert ``entries``, skipping keys already present; returns how many were new."""
        with self.db.session() as session:
            return self.enqueue_in(session, entries, now)

    def enqueue_in(self, session: Session, entries: Iterable[OutboxEntry], now: datetime) -> int:
        """``enqueue`` inside the caller's transaction (the tick commits it with its watermark)."""
        rows = [_values(e, now) for e in entries]
        if not rows:
            return 0
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        # One cached statement run over all rows ("insertmanyvalues" batches them); RETURNING
        # lists only the rows inserted, which counts them on both dialects.
        statement = (
            insert(OUTBOX)
            .on_conflict_do_nothing(index_elements=[OUTBOX.c.idempotency_key])
            .returning(OUTBOX.c.id)
        )
        return len(session.execute(statement, rows).all())

    # ------------------------------------------------------------------ claiming
    def claim(
        self,
        worker: str,
        now: datetime,
        limit: int = 50,
        platforms: Sequence[str] | None = None,
    ) -> list[OutboxMessage]:
        """Claim up to ``limit`` due rows for ``worker``, oldest first, under a fresh lease.

        Due means pending with ``next_attempt_at <= now``, or claimed by a dispatcher whose lease
        has ended (it died mid-delivery). ``platforms`` restricts the claim to the platforms this
        dispatcher can deliver to, so a replica without Teams leaves Teams rows to one that has it.
        """
        now = as_utc(now)
        token = f"{worker}/{secrets.token_hex(4)}"
        due = (OUTBOX.c.status.in_(("pending", "claimed"))) & (OUTBOX.c.next_attempt_at <= now)
        candidates = select(OUTBOX.c.id).where(due)
        if platforms is not None:
            candidates = candidates.where(OUTBOX.c.platform.in_(list(platforms)))
        candidates = (
            candidates.order_by(OUTBOX.c.next_attempt_at, OUTBOX.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)  # rendered only on PostgreSQL
        )
        chosen: Any = candidates.scalar_subquery()
        if self.db.dialect == "postgresql":
            # A LIMIT … FOR UPDATE SKIP LOCKED subquery under IN may be run again for each row
            # PostgreSQL checks, claiming more than ``limit``; a materialised CTE runs once.
            picked = candidates.cte("claimable").prefix_with("MATERIALIZED")
            chosen = select(picked.c.id).scalar_subquery()
        statement = (
            update(OUTBOX)
            .where(OUTBOX.c.id.in_(chosen), due)
            .values(
                status="claimed",
                claimed_by=token,
                claimed_at=now,
                attempts=OUTBOX.c.attempts + 1,
                next_attempt_at=now + self.lease,
            )
            .returning(*OUTBOX.c)
        )
        with self.db.session() as session:
            rows = session.execute(statement).all()
        return sorted((_message(r) for r in rows), key=lambda m: (m.due_at, m.id))

    # ------------------------------------------------------------------ settling
    def mark_sent(self, message: OutboxMessage, now: datetime, ref: str | None = None) -> bool:
        """Mark a delivered row sent, recording the platform's message id; False if the claim
        was lost (the lease ended and another dispatcher owns the row now)."""
        with self.db.session() as session:
            return self.mark_sent_in(session, message, now, ref)

    def mark_sent_in(
        self, session: Session, message: OutboxMessage, now: datetime, ref: str | None = None
    ) -> bool:
        """``mark_sent`` inside the caller's transaction, for transactional deliverers."""
        payload = {**message.payload, "progress": None}
        if ref is not None:
            payload["delivered"] = {"ref": ref}
        return self._settle(
            session,
            message,
            status="sent",
            sent_at=as_utc(now),
            payload=payload,
            last_error=None,
        )

    def retry(
        self,
        message: OutboxMessage,
        now: datetime,
        delay: timedelta,
        error: str,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Put a failed row back to be tried again after ``delay`` (the attempt counts)."""
        return self._back(message, as_utc(now) + delay, error, progress, count=True)

    def reschedule(
        self,
        message: OutboxMessage,
        at: datetime,
        reason: str,
        progress: dict[str, Any] | None = None,
    ) -> bool:
        """Put a row back for ``at`` without counting an attempt: rate limits and pacing."""
        return self._back(message, as_utc(at), reason, progress, count=False)

    def fail(
        self, message: OutboxMessage, error: str, progress: dict[str, Any] | None = None
    ) -> bool:
        """Give up on a row: status ``failed`` with the last error, kept for an operator."""
        with self.db.session() as session:
            return self._settle(
                session,
                message,
                status="failed",
                last_error=error[:2000],
                payload=self._with_progress(message, progress),
            )

    def _back(
        self,
        message: OutboxMessage,
        at: datetime,
        error: str,
        progress: dict[str, Any] | None,
        *,
        count: bool,
    ) -> bool:
        with self.db.session() as session:
            return self._settle(
                session,
                message,
                status="pending",
                next_attempt_at=at,
                # A claim counts an attempt; a rate limit or pacing pause gives it back.
                attempts=OUTBOX.c.attempts if count else _uncounted,
                last_error=error[:2000],
                payload=self._with_progress(message, progress),
            )

    @staticmethod
    def _with_progress(message: OutboxMessage, progress: dict[str, Any] | None) -> dict[str, Any]:
        if progress is None:
            return message.payload
        return {**message.payload, "progress": {**message.progress, **progress}}

    @staticmethod
    def _settle(session: Session, message: OutboxMessage, **values: Any) -> bool:
        statement = (
            update(OUTBOX)
            .where(
                OUTBOX.c.id == message.id,
                OUTBOX.c.status == "claimed",
                OUTBOX.c.claimed_by == message.claim,
            )
            .values(**values)
        )
        return session.execute(statement).rowcount == 1  # type: ignore[attr-defined, no-any-return]

    def release(self, worker: str, now: datetime) -> int:
        """Hand back every row still claimed by ``worker`` (this process, at shutdown).

        The rows are due again at once, for any dispatcher, instead of after the lease. Their
        attempt still counts, so the next dispatcher first asks the platform whether a message
        in flight when we stopped went out after all (see the module's delivery guarantees).
        """
        statement = (
            update(OUTBOX)
            .where(
                OUTBOX.c.status == "claimed",
                OUTBOX.c.claimed_by.startswith(f"{worker}/", autoescape=True),
            )
            .values(status="pending", next_attempt_at=as_utc(now), last_error="handed back")
        )
        with self.db.session() as session:
            return int(session.execute(statement).rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ reading
    def backlog(self) -> tuple[dict[str, int], datetime | None]:
        """Rows waiting (pending or claimed) by status, and the earliest ``due_at`` among them."""
        with self.db.session(read_only=True) as session:
            rows = session.execute(
                select(OUTBOX.c.status, func.count(), func.min(OUTBOX.c.due_at))
                .where(OUTBOX.c.status.in_(("pending", "claimed")))
                .group_by(OUTBOX.c.status)
            ).all()
        counts = {"pending": 0, "claimed": 0}
        oldest: datetime | None = None
        for status, n, due in rows:
            counts[status] = n
            if due is not None:
                due = as_utc(due if due.tzinfo else due.replace(tzinfo=UTC))
                oldest = due if oldest is None else min(oldest, due)
        return counts, oldest

    def counts(self) -> dict[str, int]:
        """How many rows are in each status."""
        with self.db.session(read_only=True) as session:
            rows = session.execute(
                select(OUTBOX.c.status, func.count()).group_by(OUTBOX.c.status)
            ).all()
        return {status: n for status, n in rows}


# ---------------------------------------------------------------------------- entries


def outbox_entries(message: Message, targets: Iterable[tuple[str, str]]) -> list[OutboxEntry]:
    """One outbox entry per target; the key is the message key plus ``|platform:channel``."""
    payload = {"text": message.text, "when": message.when.isoformat(), "message": message.key}
    return [
        OutboxEntry(
            key=_fit(f"{message.key}|{platform}:{channel}"),
            contract_id=message.contract,
            kind=message.kind,
            audience=message.audience,
            platform=platform,
            channel=channel,
            period=message.period,
            step=message.step,
            due_at=message.when,
            payload=payload,
        )
        for platform, channel in targets
    ]


def _fit(key: str) -> str:
    # A very long channel id (some Teams ids are) must not make the key overflow its column.
    if len(key) <= KEY_LIMIT:
        return key
    return f"{key[: KEY_LIMIT - 41]}#{hashlib.sha1(key.encode()).hexdigest()}"

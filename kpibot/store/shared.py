"""Values every replica must see alike, kept in the database instead of one process's memory.

Two things used to live in a process and so broke behind a load balancer: a Slack button's value
too long for the button (a Confirm button's signed token grows with the note and reason), which
the button now carries as a reference to a row here; and, without ``KPIBOT_SECRET_KEY``, the key
that signs confirmations, which is now generated once per database (``secret``), not per process.

>>> shared = SharedValues(db)  # doctest: +SKIP
>>> shared.put("button:ab12", "long value", timedelta(days=1))  # doctest: +SKIP
>>> shared.get("button:ab12")  # doctest: +SKIP
'long value'
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import Table, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from kpibot.store.database import Database
from kpibot.store.schema import SharedValueRecord, as_utc

SHARED = cast(Table, SharedValueRecord.__table__)
# Expired rows are swept by every this many writes in a process.
SWEEP_EVERY = 100


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SharedValues:
    """Named values with an optional expiry, on the database every replica uses."""

    def __init__(self, db: Database, clock: Callable[[], datetime] = _utc_now) -> None:
        self.db = db
        self.clock = clock
        self._writes = 0

    def put(self, name: str, value: str, ttl: timedelta | None = None) -> None:
        """Store ``value`` under ``name`` (replacing any), forgotten after ``ttl`` if given."""
        now = as_utc(self.clock())
        row = {"name": name, "value": value, "expires_at": None if ttl is None else now + ttl}
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        statement = insert(SHARED).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[SHARED.c.name],
            set_={"value": statement.excluded.value, "expires_at": statement.excluded.expires_at},
        )
        with self.db.session() as session:
            session.execute(statement)
            self._writes += 1
            if self._writes % SWEEP_EVERY == 0:
                session.execute(delete(SHARED).where(SHARED.c.expires_at < now))

    def get(self, name: str) -> str | None:
        """The value under ``name``, or None when there is none or it has expired."""
        with self.db.session(read_only=True) as session:
            row = session.execute(
                select(SHARED.c.value, SHARED.c.expires_at).where(SHARED.c.name == name)
            ).first()
        if row is None:
            return None
        expires = row.expires_at
        if expires is not None:
            expires = expires if expires.tzinfo else expires.replace(tzinfo=UTC)
            if expires <= as_utc(self.clock()):
                return None
        return str(row.value)

    def first(self, name: str, make: Callable[[], str]) -> str:
        """The value under ``name``; the first caller on the database stores ``make()``.

        Replicas starting together race to insert; the database keeps one, and all read it.
        """
        found = self.get(name)
        if found is not None:
            return found
        insert = postgresql.insert if self.db.dialect == "postgresql" else sqlite.insert
        statement = (
            insert(SHARED)
            .values(name=name, value=make(), expires_at=None)
            .on_conflict_do_nothing(index_elements=[SHARED.c.name])
        )
        with self.db.session() as session:
            session.execute(statement)
        stored = self.get(name)
        if stored is None:  # pragma: no cover - the row was just written
            raise RuntimeError(f"shared value {name!r} vanished after it was written")
        return stored


def secret(db: Database, name: str = "confirmation-signing-key") -> bytes:
    """A random signing key generated once per database and shared by every replica on it."""
    return SharedValues(db).first(f"secret:{name}", lambda: secrets.token_hex(32)).encode()

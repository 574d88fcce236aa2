"""Leader election for the tick: only one replica plans and writes the outbox at a time.

PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) taken on a dedicated
connection that stays open while this replica leads. If the process dies, its session ends, the
lock frees, and another replica takes over on its next attempt. The key is derived from the lock's
name and the schema, so deployments (or test runs) sharing one database in separate schemas do not
block each other.

SQLite is single-host: an exclusive ``flock`` on a file beside the database plays the same part
(the kernel releases it when the process dies); an in-memory database has one process by
definition and uses a process-local lock.

Losing the lock mid-tick (the server restarted) is safe: outbox keys and the watermark's
compare-and-set make a second tick of the same window a no-op.

>>> leader = LeaderLock(db)  # doctest: +SKIP
>>> if leader.acquire():  # doctest: +SKIP
...     tick.tick(now)
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from kpibot.store.database import Database

log = logging.getLogger(__name__)

DEFAULT_LOCK = "kpibot.scheduler.tick"
_LOCAL: dict[str, threading.Lock] = {}
_LOCAL_GUARD = threading.Lock()


def advisory_key(name: str, schema: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` within ``schema``.

    >>> advisory_key("kpibot.scheduler.tick", "public") == advisory_key("kpibot.scheduler.tick", "public")
    True
    """
    digest = hashlib.blake2b(f"{name}@{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LeaderLock:
    """Try-and-hold leadership; call ``acquire()`` before each tick, ``release()`` at shutdown.

    ``acquire`` never blocks. While held it re-checks that the lock still exists (on
    PostgreSQL, that the session is alive) and reports False once it is gone.
    """

    def __init__(self, db: Database, name: str = DEFAULT_LOCK) -> None:
        self.db = db
        self.name = name
        self._connection: Connection | None = None
        self._key: int | None = None
        self._file: IO[bytes] | None = None
        self._local: threading.Lock | None = None

    @property
    def held(self) -> bool:
        return self._connection is not None or self._file is not None or self._local is not None

    def acquire(self) -> bool:
        """True if this process leads now (taking the lock if it is free)."""
        if self.db.dialect == "postgresql":
            return self._acquire_postgres()
        return self._acquire_sqlite()

    def release(self) -> None:
        """Give up leadership (also done by the OS or server if the process dies)."""
        if self._connection is not None:
            try:
                self._connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": self._key}
                )
            except DBAPIError:
                pass  # the session is gone, and the lock with it
            finally:
                self._connection.close()
                self._connection = None
        if self._file is not None:
            import fcntl  # here, not at the top: POSIX only (an optional platform)

            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._local is not None:
            self._local.release()
            self._local = None

    # ------------------------------------------------------------------ PostgreSQL
    def _acquire_postgres(self) -> bool:
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                return True
            except DBAPIError:
                log.warning("leader lock %s: database session lost; leadership lost", self.name)
                self._drop()
        connection = self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            key = advisory_key(self.name, str(schema))
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
            ).scalar_one()
        except BaseException:
            connection.close()
            raise
        if not taken:
            connection.close()
            return False
        self._connection, self._key = connection, key
        log.info("leader lock %s: this replica leads", self.name)
        return True

    def _drop(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except DBAPIError:
                pass
        self._connection = None

    # ------------------------------------------------------------------ SQLite
    def _acquire_sqlite(self) -> bool:
        if self._file is not None or self._local is not None:
            return True
        database = self.db.url.database
        if database in (None, "", ":memory:"):
            return self._acquire_local()
        import fcntl  # here, not at the top: POSIX only (an optional platform)

        path = Path(f"{database}.{self.name}.lock")
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        log.info("leader lock %s: this process leads (%s)", self.name, path)
        return True

    def _acquire_local(self) -> bool:
        with _LOCAL_GUARD:
            lock = _LOCAL.setdefault(f"{id(self.db)}:{self.name}", threading.Lock())
        if not lock.acquire(blocking=False):
            return False
        self._local = lock
        return True

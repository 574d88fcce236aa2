"""The database handle: one engine, Alembic migrations run from the package, and transactions.

SQLite (the embedded default) runs in WAL mode with foreign keys on, and every transaction starts
with ``BEGIN IMMEDIATE``: writers queue on the busy timeout instead of failing half-way, which is
what makes read-check-write code (idempotency keys, amendments) safe across threads. PostgreSQL
runs at READ COMMITTED; the repositories rely on unique constraints to settle races there.

Nothing waits forever (``Timeouts``): connecting (psycopg's ``connect_timeout``), a statement
(PostgreSQL's ``statement_timeout``; SQLite's busy ``timeout`` for the write lock), a free pooled
connection (``pool_timeout``), and the check that a pooled connection still answers. A server that
accepts connections and then never answers cannot be stopped by its own ``statement_timeout``, so
a watchdog thread cuts the socket of any PostgreSQL statement that outlives its deadline by a
second: the caller gets an error it can explain (``unavailable``) instead of a frozen thread, and
the pool replaces the connection, so recovery needs no restart. ``ping`` is the readiness check,
on its own one-connection pool so that it never waits behind, or holds up, command handling.

>>> db = Database("sqlite://")
>>> db.upgrade()
>>> with db.session() as session:
...     session.scalar(text("SELECT count(*) FROM figures"))
0
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///kpibot.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_SECONDS = 30.0
# How long past its deadline the watchdog lets a PostgreSQL statement run before cutting it.
WATCHDOG_GRACE_SECONDS = 1.0
# An execution option: the deadline (seconds) of statements on this connection; None for none.
_DEADLINE = "kpibot_deadline"
# An arbitrary constant: replicas that start together take turns to migrate.
_MIGRATION_LOCK_KEY = 0x6B7069626F74
_READ_ONLY = "kpibot_read_only"


def normalise_url(url: str | URL) -> URL:
    """Pick the drivers kpibot ships with: psycopg 3 for any PostgreSQL URL.

    >>> normalise_url("postgres://u@h/db").render_as_string()
    'postgresql+psycopg://u@h/db'
    """
    parsed = make_url(
        url.replace("postgres://", "postgresql://", 1) if isinstance(url, str) else url
    )
    if parsed.get_backend_name() == "postgresql" and parsed.drivername != "postgresql+psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


@dataclass(frozen=True)
class Timeouts:
    """How long the store waits, in seconds, before it gives up and says so.

    ``connect``: opening a PostgreSQL connection (libpq rounds anything under 2 up to 2).
    ``statement``: one statement on PostgreSQL; on SQLite, the wait for the write lock.
    ``pool``: a free connection from the pool. ``ping``: the check, on checkout, that a pooled
    PostgreSQL connection still answers (a hung one is dropped and a new one opened).

    >>> Timeouts().statement
    30.0
    """

    connect: float = 2.0
    statement: float = SQLITE_BUSY_SECONDS
    pool: float = 2.0
    ping: float = 1.0


def unavailable(error: BaseException) -> bool:
    """Whether ``error`` means the database cannot be reached, did not answer in time, or
    cannot take a write just now.

    Connection failures, timeouts (connect, statement, pool), a connection cut by the
    watchdog, SQLite's "database is locked", a read-only database file and a full disk are; a
    constraint or a programming error is not.

    >>> unavailable(exc.TimeoutError("QueuePool limit reached"))
    True
    >>> unavailable(ValueError("no"))
    False
    """
    if isinstance(error, exc.TimeoutError | exc.DisconnectionError):
        return True
    if not isinstance(error, exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    if not isinstance(error, exc.OperationalError):
        return False
    if type(error.orig).__module__.startswith("sqlite3"):
        reason = str(error.orig).lower()
        return any(word in reason for word in _SQLITE_UNAVAILABLE)
    return True


# sqlite3's OperationalError texts for a database that cannot serve or take a write just now.
_SQLITE_UNAVAILABLE = ("locked", "unable to open", "disk i/o", "readonly", "disk is full")


class _Watchdog:
    """Cuts the socket of a PostgreSQL connection whose statement outlived its deadline.

    A server that accepts a connection and never answers leaves psycopg waiting on the socket
    forever: no server-side timeout can fire. Shutting the socket down wakes that wait with an
    error, which SQLAlchemy reads as a disconnect and the pool replaces the connection.
    """

    def __init__(self) -> None:
        self._deadlines: dict[int, tuple[float, int]] = {}
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._next_wake = math.inf  # when the thread wakes next; a later deadline needs no wake-up
        self.cut = 0  # connections cut so far (for metrics)

    def watch(self, dbapi_connection: Any, seconds: float | None) -> None:
        if seconds is None:
            return
        try:
            fd = int(dbapi_connection.pgconn.socket)
        except Exception:
            return  # closed already: nothing to wait on
        deadline = time.monotonic() + seconds
        with self._wake:
            self._deadlines[id(dbapi_connection)] = (deadline, fd)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="kpibot-db-watchdog", daemon=True
                )
                self._thread.start()
            elif deadline < self._next_wake:
                self._wake.notify()

    def done(self, dbapi_connection: Any) -> None:
        with self._wake:
            self._deadlines.pop(id(dbapi_connection), None)

    def _run(self) -> None:
        while True:
            with self._wake:
                now = time.monotonic()
                for key, (deadline, fd) in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[key]
                        self._cut(fd)
                upcoming = min((d for d, _ in self._deadlines.values()), default=math.inf)
                self._next_wake = upcoming
                self._wake.wait(None if upcoming == math.inf else max(upcoming - now, 0.01))

    def _cut(self, fd: int) -> None:
        try:
            duplicate = socket.socket(fileno=os.dup(fd))
        except OSError:
            return
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
            self.cut += 1
            log.warning("database: a statement outlived its deadline; its connection was cut")
        except OSError:
            pass
        finally:
            duplicate.close()


# A session left idle inside a transaction (its client cut off by a network partition) is ended
# by the server after this, releasing its locks; kpibot never waits that long between statements.
IDLE_IN_TRANSACTION_SECONDS = 300


def _postgres_connect_args(url: URL, timeouts: Timeouts, statement: float) -> dict[str, Any]:
    """psycopg's ``connect_timeout`` and the server's ``statement_timeout`` and
    ``idle_in_transaction_session_timeout`` (kept beside any ``options`` the URL already
    carries, such as a ``search_path``)."""
    options = str(url.query.get("options", "") or "")
    options = (
        f"{options} -c statement_timeout={int(statement * 1000)}"
        f" -c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_SECONDS * 1000}"
    ).strip()
    args: dict[str, Any] = {"options": options}
    if "connect_timeout" not in url.query:
        args["connect_timeout"] = max(2, math.ceil(timeouts.connect))
    return args


def _configure_postgres(engine: Engine, watchdog: _Watchdog, timeouts: Timeouts) -> None:
    deadline = timeouts.statement + WATCHDOG_GRACE_SECONDS

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        record.info["kpibot_fresh"] = True

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        # Pessimistic disconnect handling with a deadline: a pooled connection that does not
        # answer within the ping timeout is dropped, and the pool opens a new one.
        if record.info.pop("kpibot_fresh", False):
            return
        watchdog.watch(dbapi_connection, timeouts.ping)
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()  # the ping's implicit transaction, before the caller's
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection did not answer: {error}") from error
        finally:
            watchdog.done(dbapi_connection)

    @event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, _record: Any) -> None:
        if dbapi_connection is not None:
            watchdog.done(dbapi_connection)

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Connection, *_args: Any) -> None:
        seconds = conn.get_execution_options().get(_DEADLINE, deadline)
        watchdog.watch(conn.connection.dbapi_connection, seconds)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Connection, *_args: Any) -> None:
        watchdog.done(conn.connection.dbapi_connection)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        connection = context.connection
        if connection is not None and not connection.invalidated:
            with suppress(Exception):
                watchdog.done(connection.connection.dbapi_connection)


def _configure_sqlite(engine: Engine, busy_seconds: float = SQLITE_BUSY_SECONDS) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take BEGIN away from the sqlite3 module so that we can issue BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(_READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _no_jit(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # The quick reads are index lookups and the warm-up's bulk reads: compiling them with
        # JIT costs a hundred milliseconds and more and saves nothing.
        cursor = dbapi_connection.cursor()
        cursor.execute("SET jit = off")
        cursor.close()


class Database:
    """The store's database: build it from a URL, migrate it, and open transactions on it.

    >>> db = Database("sqlite:///kpibot.db")  # doctest: +SKIP
    >>> db.upgrade()  # doctest: +SKIP
    >>> with db.session() as session:  # doctest: +SKIP
    ...     session.add(record)  # committed when the block ends, rolled back if it raises
    """

    def __init__(
        self, url: str | URL = DEFAULT_URL, *, echo: bool = False, timeouts: Timeouts | None = None
    ) -> None:
        self.url = normalise_url(url)
        self.timeouts = timeouts or Timeouts()
        self._watchdog = _Watchdog()
        self._probe: Engine | None = None
        self._probe_lock = threading.Lock()
        if self.url.get_backend_name() == "sqlite":
            memory = self.url.database in (None, "", ":memory:")
            self.engine = create_engine(
                self.url,
                echo=echo,
                connect_args={"check_same_thread": False, "timeout": self.timeouts.statement},
                # An in-memory database lives in one connection, so share that one.
                **({"poolclass": StaticPool} if memory else {"pool_timeout": self.timeouts.pool}),
            )
            _configure_sqlite(self.engine, self.timeouts.statement)
        else:
            self.engine = create_engine(
                self.url,
                echo=echo,
                pool_timeout=self.timeouts.pool,
                connect_args=_postgres_connect_args(
                    self.url, self.timeouts, self.timeouts.statement
                ),
            )
            _configure_postgres(self.engine, self._watchdog, self.timeouts)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        readers = self.engine.execution_options(**{_READ_ONLY: True})
        if self.url.get_backend_name() == "postgresql":
            readers = readers.execution_options(postgresql_readonly=True)
        self._reader_engine = readers
        self._readers = sessionmaker(readers, expire_on_commit=False)
        # The quick reads (read_scalar, read_rows) run on their own small pool of autocommit
        # connections with no ping on checkout: each is one round trip to PostgreSQL instead of
        # four (ping, BEGIN, the query, ROLLBACK). A connection found dead is retried once.
        self._quick = (
            create_engine(
                self.url,
                echo=echo,
                isolation_level="AUTOCOMMIT",
                pool_size=5,
                pool_timeout=self.timeouts.pool,
                connect_args=_postgres_connect_args(
                    self.url, self.timeouts, self.timeouts.statement
                ),
            )
            if self.dialect == "postgresql"
            else readers
        )
        if self._quick is not readers:
            _no_jit(self._quick)

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        """The backend's name: ``'sqlite'`` or ``'postgresql'``."""
        return self.engine.dialect.name

    def alembic_config(self) -> Config:
        """An Alembic config pointing at the migrations inside this package; no alembic.ini needed."""
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.set_main_option("path_separator", "os")
        config.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        return config

    def upgrade(self, revision: str = "head") -> None:
        """Run ``alembic upgrade`` to ``revision`` (the latest by default) in one transaction.

        Migrations may wait for another replica's and may rebuild big tables, so they run
        without the statement timeout.
        """
        config = self.alembic_config()
        with self.engine.connect() as plain, plain.begin():
            connection = plain.execution_options(**{_DEADLINE: None})
            if self.dialect == "postgresql":
                connection.execute(text("SET LOCAL statement_timeout = 0"))
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK_KEY}
                )
            config.attributes["connection"] = connection
            command.upgrade(config, revision)

    def revision(self) -> str | None:
        """The schema revision the database is at, or None before the first upgrade."""
        with self.engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    def read_scalar(self, sql: str, *params: object) -> Any:
        """The first column of the first row of a read-only ``sql`` query (``?`` placeholders).

        The cheapest read there is, for values checked on every request: straight to the driver
        on a pooled connection, with no ORM session and no SQLAlchemy statement. Measured on
        SQLite, 0.04 ms a call against 0.45 ms through a Core ``select``. Only for SELECTs.
        """
        rows = self._quick_read(sql, params, one=True)
        return rows[0][0] if rows else None

    def read_rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Every row of a read-only ``sql`` query (``?`` placeholders), as the driver's tuples.

        :meth:`read_scalar`'s path for the small reads a status refresh makes on every change.
        """
        return self._quick_read(sql, params, one=False)

    def _quick_read(
        self, sql: str, params: tuple[object, ...], *, one: bool
    ) -> list[tuple[Any, ...]]:
        if self.engine.dialect.paramstyle != "qmark":
            sql = sql.replace("?", "%s")
        dialect = self._quick.dialect
        driver_error: type[Exception] = dialect.loaded_dbapi.Error
        watched = self.dialect == "postgresql"
        for attempt in (1, 2):
            try:
                connection = self._quick.raw_connection()
            except driver_error as error:  # connecting failed; say so as every other query does
                raise exc.DBAPIError.instance(
                    sql, params, error, driver_error, dialect=dialect
                ) from error
            cut_before = self._watchdog.cut
            try:
                if watched:
                    self._watchdog.watch(
                        connection.dbapi_connection,
                        self.timeouts.statement + WATCHDOG_GRACE_SECONDS,
                    )
                cursor = connection.cursor()
                try:
                    cursor.execute(sql, params)
                    found = cursor.fetchmany(1) if one else cursor.fetchall()
                finally:
                    cursor.close()
            except driver_error as error:
                # Straight to the driver, so SQLAlchemy never saw the error: drop a broken
                # connection as the pool would, and raise SQLAlchemy's exception as every other
                # query does. A pooled connection the server had closed (a restart, an idle
                # timeout) is retried once on a fresh one; one the watchdog cut (a hanging
                # server) is not, or a hang would last twice as long.
                lost = dialect.is_disconnect(error, connection.dbapi_connection, None)  # type: ignore[arg-type]
                if lost:
                    connection.invalidate(error)
                if lost and attempt == 1 and self._watchdog.cut == cut_before:
                    continue
                raise exc.DBAPIError.instance(
                    sql, params, error, driver_error, dialect=dialect, connection_invalidated=lost
                ) from error
            finally:
                if watched and connection.dbapi_connection is not None:
                    self._watchdog.done(connection.dbapi_connection)
                connection.close()  # back to the pool (a no-op if invalidated)
            return [tuple(r) for r in found]
        raise AssertionError("unreachable")

    def ping(self, timeout: float) -> None:
        """Raise unless the database answers ``SELECT 1`` within about ``timeout`` seconds.

        The readiness check: on PostgreSQL it has its own one-connection pool (so it neither
        waits for nor takes a connection that commands need), and its statement is cut at
        ``timeout``. Connecting may take up to ``Timeouts.connect`` (at least 2 s, libpq's
        minimum), so callers that must answer sooner run it on a thread of their own.
        """
        if self.dialect != "postgresql":
            with self.session(read_only=True) as session:
                session.execute(text("SELECT 1"))
            return
        with self._probe_engine().connect() as connection:
            connection.execution_options(**{_DEADLINE: timeout}).execute(text("SELECT 1"))

    def _probe_engine(self) -> Engine:
        with self._probe_lock:
            if self._probe is None:
                timeouts = Timeouts(
                    connect=self.timeouts.connect,
                    statement=self.timeouts.statement,
                    pool=0.1,
                    ping=self.timeouts.ping,
                )
                self._probe = create_engine(
                    self.url,
                    pool_size=1,
                    max_overflow=0,
                    pool_timeout=0.1,
                    connect_args=_postgres_connect_args(self.url, timeouts, timeouts.statement),
                )
                _configure_postgres(self._probe, self._watchdog, timeouts)
            return self._probe

    @property
    def connections_cut(self) -> int:
        """How many hung PostgreSQL connections the watchdog has cut (a metric)."""
        return self._watchdog.cut

    @contextmanager
    def session(self, *, read_only: bool = False) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises.

        Pass ``read_only=True`` for queries: on SQLite they then neither wait for nor block
        writers, and PostgreSQL refuses any write made in them.
        """
        sessions = self._readers if read_only else self._sessions
        with sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        """Close every pooled connection (call before dropping the database or at shutdown)."""
        self.engine.dispose()
        if self._quick is not self._reader_engine:
            self._quick.dispose()
        with self._probe_lock:
            if self._probe is not None:
                self._probe.dispose()
                self._probe = None

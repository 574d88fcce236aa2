"""Timeouts on both databases: nothing waits for ever, a hung server is cut, recovery needs no restart.

The hanging cases use ``HangingProxy``: a local TCP proxy in front of the test PostgreSQL that
accepts connections and then never answers, exactly what froze chat in the operator's campaign.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError, OperationalError

from kpibot.store.database import Database, Timeouts, unavailable
from tests.conftest import postgres_only
from tests.hanging_proxy import HangingProxy

QUICK = Timeouts(connect=2, statement=1, pool=1, ping=0.5)
pg = postgres_only


def _through(db: Database, proxy: HangingProxy) -> URL:
    return db.url.set(host="127.0.0.1", port=proxy.port)


def _target(db: Database) -> tuple[str, int]:
    return (db.url.host or "127.0.0.1", db.url.port or 5432)


def _select_one(db: Database) -> int:
    with db.session(read_only=True) as session:
        return int(session.execute(text("SELECT 1")).scalar_one())


def _failure(call) -> tuple[BaseException, float]:
    started = time.monotonic()
    with pytest.raises(Exception) as caught:
        call()
    return caught.value, time.monotonic() - started


def test_every_connection_carries_the_configured_timeouts(db: Database) -> None:
    timed = Database(db.url, timeouts=Timeouts(statement=5))
    try:
        with timed.session(read_only=True) as session:
            if timed.dialect == "postgresql":
                assert session.execute(text("SHOW statement_timeout")).scalar_one() == "5s"
                # A session its client abandoned mid-transaction cannot hold its locks for ever.
                idle = session.execute(text("SHOW idle_in_transaction_session_timeout"))
                assert idle.scalar_one() == "5min"
                # The URL's own options (the test schema's search_path) are kept beside it.
                with db.session(read_only=True) as own:
                    schema = own.execute(text("SELECT current_schema()")).scalar_one()
                assert session.execute(text("SELECT current_schema()")).scalar_one() == schema
            else:
                assert session.execute(text("PRAGMA busy_timeout")).scalar_one() == 5000
    finally:
        timed.dispose()


def test_migrations_run_without_the_statement_timeout(db: Database) -> None:
    # An upgrade may wait for another replica's lock or rebuild a big table: no deadline there.
    timed = Database(db.url, timeouts=Timeouts(statement=0.5))
    try:
        timed.upgrade()
        assert timed.revision() == db.revision()
    finally:
        timed.dispose()


@pytest.mark.postgres
def test_a_server_that_accepts_and_never_answers_fails_within_the_connect_timeout(
    pg: Database,
) -> None:
    db = pg
    with HangingProxy(_target(db)) as proxy:
        proxy.hang()
        hung = Database(_through(db, proxy), timeouts=QUICK)
        try:
            error, seconds = _failure(lambda: _select_one(hung))
        finally:
            hung.dispose()
    assert unavailable(error), repr(error)
    assert seconds < 3.5, seconds


@pytest.mark.postgres
def test_a_server_that_hangs_mid_session_is_cut_and_recovery_needs_no_restart(
    pg: Database,
) -> None:
    db = pg
    with HangingProxy(_target(db)) as proxy:
        flaky = Database(_through(db, proxy), timeouts=QUICK)
        try:
            assert _select_one(flaky) == 1
            held = flaky.engine.connect()  # a connection in use when the server hangs
            held.execute(text("SELECT 1"))
            proxy.hang()

            # A statement on it: the watchdog cuts it at its deadline (statement + 1 s).
            error, seconds = _failure(lambda: held.execute(text("SELECT 2")))
            assert unavailable(error) and seconds < 3.5, (error, seconds)
            held.close()

            # A new command: the pooled connection's ping is cut, and reconnecting times out.
            error, seconds = _failure(lambda: _select_one(flaky))
            assert unavailable(error) and seconds < 4.5, (error, seconds)

            # The per-request fast path (straight to the driver) is bounded too.
            error, seconds = _failure(lambda: flaky.read_scalar("SELECT 3"))
            assert unavailable(error) and seconds < 4.5, (error, seconds)
            assert flaky.connections_cut >= 1

            proxy.recover()
            assert _select_one(flaky) == 1  # the same Database object: no restart
            assert flaky.read_scalar("SELECT 3") == 3
        finally:
            flaky.dispose()


@pytest.mark.postgres
def test_the_readiness_ping_has_its_own_pool(pg: Database) -> None:
    db = pg
    small = Database(db.url, timeouts=Timeouts(pool=0.3))
    held = []
    try:
        # Every connection the commands' pool may open (5 + 10 overflow) is in use…
        for _ in range(15):
            held.append(small.engine.connect())
        error, seconds = _failure(lambda: _select_one(small))
        assert unavailable(error) and seconds < 1.5, (error, seconds)
        # …and the readiness check still gets its answer.
        small.ping(0.5)
    finally:
        for connection in held:
            connection.close()
        small.dispose()


@pytest.mark.postgres
def test_the_readiness_ping_gives_up_on_a_hung_server(pg: Database) -> None:
    db = pg
    with HangingProxy(_target(db)) as proxy:
        probe = Database(_through(db, proxy), timeouts=QUICK)
        try:
            probe.ping(0.5)
            proxy.hang()
            error, seconds = _failure(lambda: probe.ping(0.5))
            assert unavailable(error) and seconds < 4.5, (error, seconds)
            proxy.recover()
            probe.ping(0.5)
        finally:
            probe.dispose()


def test_a_locked_sqlite_database_is_unavailable_after_its_timeout(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    Database(f"sqlite:///{path}").upgrade()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, and not letting go
    quick = Database(f"sqlite:///{path}", timeouts=Timeouts(statement=0.3))
    try:

        def write() -> None:
            with quick.session() as session:  # a writer's transaction: BEGIN IMMEDIATE
                session.execute(text("SELECT 1"))

        error, seconds = _failure(write)
        assert isinstance(error, OperationalError) and unavailable(error)
        assert seconds < 2, seconds
        holder.execute("ROLLBACK")
        with quick.session() as session:  # the lock is gone: writes go through again
            session.execute(text("SELECT 1"))
    finally:
        holder.close()
        quick.dispose()


def test_a_read_only_sqlite_file_is_unavailable_for_writes_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    # A read-only mount or a full disk: the user is told the database cannot take the change,
    # not "something went wrong", and nothing half-written is left behind.
    path = tmp_path / "ro.db"
    Database(f"sqlite:///{path}").upgrade()
    read_only = Database(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with pytest.raises(OperationalError) as caught, read_only.session() as session:
            session.execute(text("INSERT INTO shared_values (name, value) VALUES ('k', 'v')"))
        assert unavailable(caught.value)
        with read_only.session(read_only=True) as session:
            assert session.execute(text("SELECT count(*) FROM shared_values")).scalar_one() == 0
    finally:
        read_only.dispose()


def test_only_reachability_problems_count_as_unavailable(db: Database) -> None:
    with pytest.raises(IntegrityError) as caught, db.session() as session:
        session.execute(text("INSERT INTO shared_values (name, value) VALUES ('k', 'v')"))
        session.execute(text("INSERT INTO shared_values (name, value) VALUES ('k', 'w')"))
    assert not unavailable(caught.value)
    missing = OperationalError if db.dialect == "sqlite" else Exception
    with pytest.raises(missing) as caught, db.session() as session:
        session.execute(text("SELECT * FROM no_such_table"))
    assert not unavailable(caught.value)


def test_the_watchdog_leaves_healthy_statements_alone(db: Database) -> None:
    quick = Database(db.url, timeouts=Timeouts(statement=0.5))
    try:
        for _ in range(50):
            assert _select_one(quick) == 1
        threads = [threading.Thread(target=_select_one, args=(quick,)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        time.sleep(1.6)  # past every deadline the watchdog ever set
        assert _select_one(quick) == 1
        assert quick.connections_cut == 0
    finally:
        quick.dispose()

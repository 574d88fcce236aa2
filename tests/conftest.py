"""Shared fixtures. Database fixtures run every test that uses them on SQLite and on PostgreSQL.

PostgreSQL comes from ``KPIBOT_TEST_POSTGRES_URL`` (default: the local trust-auth server). Each test
gets a fresh schema, dropped afterwards, so runs are isolated and repeatable. When the server is
unreachable the PostgreSQL variants are skipped with the reason, except under ``CI=true``, where
they fail: CI must never pass by silently testing one backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from kpibot.app.wiring import services_for_database
from kpibot.store.database import Database, normalise_url

pytest_plugins = ["tests.slack_mock.fixtures"]

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[Engine | None, str]]:
    """An admin engine for the test server (or None) and the URL it was tried at."""
    url = normalise_url(os.environ.get("KPIBOT_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL))
    engine = create_engine(url, connect_args={"connect_timeout": 5}, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        engine.dispose()
        reason = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
        yield None, f"{url.render_as_string(hide_password=True)} ({reason})"
        return
    yield engine, url.render_as_string(hide_password=False)
    engine.dispose()


@contextmanager
def _postgres_database(server: tuple[Engine | None, str]) -> Iterator[Database]:
    admin, url = server
    if admin is None:
        message = f"PostgreSQL is unreachable at {url}; start it or set KPIBOT_TEST_POSTGRES_URL"
        if _in_ci():
            pytest.fail(f"{message} (CI=true requires the PostgreSQL tests to run).", pytrace=False)
        pytest.skip(message)
    schema = f"kpibot_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    database = Database(
        normalise_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    )
    try:
        yield database
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@contextmanager
def _database(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if backend == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'kpibot.db'}")
        try:
            yield database
        finally:
            database.dispose()
    else:
        with _postgres_database(request.getfixturevalue("postgres_server")) as database:
            yield database


@pytest.fixture(params=BACKENDS)
def bare_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database with no tables yet, on each backend."""
    with _database(request.param, request, tmp_path) as database:
        yield database


@pytest.fixture
def postgres_only(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A migrated PostgreSQL database in its own schema, for what only PostgreSQL can show
    (a server that hangs behind a TCP connection)."""
    with _postgres_database(request.getfixturevalue("postgres_server")) as database:
        database.upgrade()
        yield database


@pytest.fixture
def db(bare_db: Database) -> Database:
    """A database migrated to the latest schema, on each backend."""
    bare_db.upgrade()
    return bare_db


# ---------------------------------------------------------------- contracts, services and the bot

CONTRACTS_DIR = Path(__file__).resolve().parent.parent / "config" / "contracts"
ACCESS_FILE = Path(__file__).resolve().parent.parent / "config" / "access.yaml"


@pytest.fixture(scope="session")
def seed_contracts():
    """The four shipped contracts, parsed once per session."""
    from kpibot.files.contracts import load_contracts

    return {c.id: c for c in load_contracts([CONTRACTS_DIR])}


class FixedClock:
    """A settable clock for tests: ``clock.now`` is Europe/London."""

    def __init__(self, when):
        self.when = when

    def __call__(self):
        return self.when


@pytest.fixture
def clock():
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return FixedClock(datetime(2020, 2, 20, 10, 0, tzinfo=ZoneInfo("Europe/London")))


@pytest.fixture
def services(db, clock, seed_contracts):
    """Services on each backend with the four seed contracts and their demo history loaded."""
    from kpibot.core.settings import Settings

    svc = services_for_database(db, Settings(access_file=ACCESS_FILE), clock)
    svc.store_contracts(list(seed_contracts.values()), actor="test")
    return svc


@pytest.fixture
def bot(services):
    from kpibot.commands.bot import Bot
    from kpibot.core.access import AccessPolicy

    return Bot(services, AccessPolicy.load(ACCESS_FILE), b"test-secret")

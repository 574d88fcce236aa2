"""Alembic environment for kpibot; ``Database.upgrade()`` runs it with its own open connection.

Run by hand, it builds a :class:`~kpibot.store.database.Database` from ``sqlalchemy.url``:

>>> Database("sqlite:///kpibot.db").upgrade()  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection

from kpibot.store.database import DEFAULT_URL, Database
from kpibot.store.schema import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def render_item(kind: str, item: Any, autogen: AutogenContext) -> str | Literal[False]:
    """Render kpibot's column types as plain SQLAlchemy, so migrations never import the models."""
    if kind == "type" and isinstance(item, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_item=render_item,
        # SQLite cannot ALTER most things; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Write the migration SQL instead of running it (``alembic upgrade head --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Migrate through the caller's connection, or open one from ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if isinstance(connection, Connection):
        _configure(connection)
        return
    database = Database(config.get_main_option("sqlalchemy.url") or DEFAULT_URL)
    try:
        with database.engine.begin() as opened:
            _configure(opened)
    finally:
        database.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

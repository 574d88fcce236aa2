"""Quarterly returns: the return per contract and period, its event log and exception reports.

Also installs triggers, on SQLite and PostgreSQL alike, that keep the log and the exception
reports append-only and returns undeletable (a return's state and narrative may change; every
change is logged in ``return_events``).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types and value lists, so later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)
STATES = "('draft', 'submitted', 'approved', 'queried')"
EVENTS = "('edit', 'submit', 'approve', 'query', 'correct', 'reopen', 'narrative', 'exception')"
RETURN_FACTS = ("id", "contract_id", "period_label", "opened_at", "opened_by")


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "returns",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("period_label", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", UTC_DATETIME, nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=True),
        sa.Column("rounds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("working", sa.Text(), nullable=True),
        sa.Column("challenges", sa.Text(), nullable=True),
        sa.Column("actions", sa.Text(), nullable=True),
        sa.CheckConstraint(f"state IN {STATES}", name=op.f("ck_returns_state")),
        sa.CheckConstraint("rounds >= 0", name=op.f("ck_returns_rounds")),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_returns_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_returns")),
        sa.UniqueConstraint(
            "contract_id", "period_label", name=op.f("uq_returns_contract_id_period_label")
        ),
    )
    op.create_table(
        "return_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("return_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("detail", _json(), nullable=False),
        sa.CheckConstraint(f"event IN {EVENTS}", name=op.f("ck_return_events_event")),
        sa.CheckConstraint(f"to_state IN {STATES}", name=op.f("ck_return_events_to_state")),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_return_events_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_events")),
    )
    op.create_index("ix_return_events_return_at", "return_events", ["return_id", "at"])
    op.create_table(
        "return_exceptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("return_id", sa.Integer(), nullable=False),
        sa.Column("kpi_code", sa.String(length=64), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.Column("filed_by", sa.String(length=200), nullable=False),
        sa.Column("filed_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint("length(trim(report)) > 0", name=op.f("ck_return_exceptions_report")),
        sa.ForeignKeyConstraint(
            ["return_id"], ["returns.id"], name=op.f("fk_return_exceptions_return_id_returns")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_return_exceptions")),
    )
    op.create_index(
        "ix_return_exceptions_return_kpi", "return_exceptions", ["return_id", "kpi_code"]
    )
    _create_append_only_triggers()


def _guards() -> list[tuple[str, str, str]]:
    """(trigger name, table, what it refuses): the same guards on both backends."""
    return [
        ("returns_no_delete", "returns", "DELETE"),
        ("returns_facts_fixed", "returns", f"UPDATE OF {', '.join(RETURN_FACTS)}"),
        ("return_events_no_delete", "return_events", "DELETE"),
        ("return_events_no_update", "return_events", "UPDATE"),
        ("return_exceptions_no_delete", "return_exceptions", "DELETE"),
        ("return_exceptions_no_update", "return_exceptions", "UPDATE"),
    ]


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, event in _guards():
        if dialect == "postgresql":
            # kpibot_refuse_change() comes from revision 0001.
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW "
                "EXECUTE FUNCTION kpibot_refuse_change()"
            )
        elif dialect == "sqlite":
            verb = event.split()[0].lower()
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} BEGIN SELECT RAISE(ABORT, "
                f"'{verb} of {table} rows is not allowed: they are append-only'); END"
            )


def _drop_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, _event in reversed(_guards()):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index("ix_return_exceptions_return_kpi", table_name="return_exceptions")
    op.drop_table("return_exceptions")
    op.drop_index("ix_return_events_return_at", table_name="return_events")
    op.drop_table("return_events")
    op.drop_table("returns")

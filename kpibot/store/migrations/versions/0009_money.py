"""Sanctions: the event log (sums per event, penalty points) and commissioners' waivers.

Also installs triggers, on SQLite and PostgreSQL alike: no event or waiver is ever deleted, what
an event records never changes, a waiver never changes, and an event's rectification is recorded
once (the only update allowed).

Revision ID: 0009_money
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_money"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column type and value lists, so later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)
SOURCES = "('chat', 'import', 'cli')"
EVENT_FACTS = (
    "id",
    "contract_id",
    "kind",
    "reference",
    "occurred_at",
    "value",
    "affected",
    "note",
    "source",
    "recorded_by",
    "recorded_at",
    "rectify_until",
)


def upgrade() -> None:
    op.create_table(
        "sanction_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("occurred_at", UTC_DATETIME, nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("affected", sa.Integer(), server_default="1", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("recorded_by", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", UTC_DATETIME, nullable=False),
        sa.Column("rectified_at", UTC_DATETIME, nullable=True),
        sa.Column("rectified_by", sa.String(length=200), nullable=True),
        sa.Column("rectification_recorded_at", UTC_DATETIME, nullable=True),
        sa.Column("rectify_until", UTC_DATETIME, nullable=True),
        sa.CheckConstraint(f"source IN {SOURCES}", name=op.f("ck_sanction_events_source")),
        sa.CheckConstraint("affected >= 1", name=op.f("ck_sanction_events_affected")),
        sa.CheckConstraint(
            "length(trim(reference)) > 0", name=op.f("ck_sanction_events_reference")
        ),
        sa.CheckConstraint(
            "(rectified_at IS NULL AND rectified_by IS NULL AND rectification_recorded_at IS NULL)"
            " OR (rectified_at IS NOT NULL AND rectified_by IS NOT NULL"
            " AND rectification_recorded_at IS NOT NULL)",
            name=op.f("ck_sanction_events_rectified"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_sanction_events_contract_id_contracts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanction_events")),
        sa.UniqueConstraint(
            "contract_id",
            "kind",
            "reference",
            "occurred_at",
            name=op.f("uq_sanction_events_contract_id_kind_reference_occurred_at"),
        ),
    )
    op.create_index(
        "ix_sanction_events_contract_occurred_at",
        "sanction_events",
        ["contract_id", "occurred_at"],
    )
    op.create_index(op.f("ix_sanction_events_recorded_at"), "sanction_events", ["recorded_at"])
    op.create_index(op.f("ix_sanction_events_rectify_until"), "sanction_events", ["rectify_until"])
    op.create_table(
        "sanction_waivers",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("waived_by", sa.String(length=200), nullable=False),
        sa.Column("waived_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint("length(trim(reason)) > 0", name=op.f("ck_sanction_waivers_reason")),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_sanction_waivers_contract_id_contracts"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanction_waivers")),
        sa.UniqueConstraint(
            "contract_id", "item", name=op.f("uq_sanction_waivers_contract_id_item")
        ),
    )
    _create_guards()


def _guards() -> list[tuple[str, str, str, str]]:
    """(trigger, table, event, condition): the same guards on both backends."""
    return [
        ("sanction_events_no_delete", "sanction_events", "DELETE", ""),
        (
            "sanction_events_facts_fixed",
            "sanction_events",
            f"UPDATE OF {', '.join(EVENT_FACTS)}",
            "",
        ),
        (
            "sanction_events_rectified_once",
            "sanction_events",
            "UPDATE",
            "OLD.rectified_at IS NOT NULL",
        ),
        ("sanction_waivers_no_delete", "sanction_waivers", "DELETE", ""),
        ("sanction_waivers_no_update", "sanction_waivers", "UPDATE", ""),
    ]


def _create_guards() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, event, condition in _guards():
        if dialect == "postgresql":
            when = f" WHEN ({condition})" if condition else ""
            # kpibot_refuse_change() comes from revision 0001.
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table} FOR EACH ROW{when} "
                "EXECUTE FUNCTION kpibot_refuse_change()"
            )
        elif dialect == "sqlite":
            when = f" WHEN {condition}" if condition else ""
            verb = event.split()[0].lower()
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} ON {table}{when} BEGIN SELECT RAISE(ABORT, "
                f"'{verb} of {table} rows is not allowed: the sanction log is append-only'); END"
            )


def _drop_guards() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, _event, _condition in reversed(_guards()):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def downgrade() -> None:
    _drop_guards()
    op.drop_table("sanction_waivers")
    op.drop_index(op.f("ix_sanction_events_rectify_until"), table_name="sanction_events")
    op.drop_index(op.f("ix_sanction_events_recorded_at"), table_name="sanction_events")
    op.drop_index("ix_sanction_events_contract_occurred_at", table_name="sanction_events")
    op.drop_table("sanction_events")

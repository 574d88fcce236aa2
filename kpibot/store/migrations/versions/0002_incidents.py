"""The incident register: one row per incident, opened with a deadline and later reported.

Also installs triggers that keep the register append-only on SQLite and PostgreSQL alike: no row
is ever deleted, what was logged (kind, description, who, when, deadline) never changes, and a
reported incident is final. The one update allowed is the one that records the report.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the column type, so that later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)

# What was logged when the incident was opened; none of it may change afterwards.
INCIDENT_FACTS = (
    "id",
    "contract_id",
    "kind",
    "label",
    "description",
    "opened_by",
    "opened_at",
    "deadline",
)
_REFUSED = "of incidents rows is not allowed: the incident register is append-only"


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("deadline", UTC_DATETIME, nullable=False),
        sa.Column("status", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("reported_at", UTC_DATETIME, nullable=True),
        sa.Column("reported_by", sa.String(length=200), nullable=True),
        sa.Column("report", sa.Text(), nullable=True),
        sa.Column("action_plan", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'reported')", name=op.f("ck_incidents_status")),
        sa.CheckConstraint("length(trim(description)) > 0", name=op.f("ck_incidents_description")),
        sa.CheckConstraint("deadline >= opened_at", name=op.f("ck_incidents_deadline")),
        sa.CheckConstraint(
            "(status = 'open' AND reported_at IS NULL AND reported_by IS NULL AND report IS NULL)"
            " OR (status = 'reported' AND reported_at IS NOT NULL AND reported_by IS NOT NULL"
            " AND report IS NOT NULL AND length(trim(report)) > 0)",
            name=op.f("ck_incidents_report"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_incidents_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_incidents")),
    )
    op.create_index("ix_incidents_contract_opened_at", "incidents", ["contract_id", "opened_at"])
    op.create_index(op.f("ix_incidents_deadline"), "incidents", ["deadline"])
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        # kpibot_refuse_change() comes from revision 0001.
        op.execute(
            "CREATE TRIGGER incidents_no_delete BEFORE DELETE ON incidents "
            "FOR EACH ROW EXECUTE FUNCTION kpibot_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER incidents_facts_fixed BEFORE UPDATE OF {', '.join(INCIDENT_FACTS)} "
            "ON incidents FOR EACH ROW EXECUTE FUNCTION kpibot_refuse_change()"
        )
        op.execute(
            "CREATE TRIGGER incidents_reported_final BEFORE UPDATE ON incidents "
            "FOR EACH ROW WHEN (OLD.status = 'reported') EXECUTE FUNCTION kpibot_refuse_change()"
        )
    elif dialect == "sqlite":
        for name, event in [
            ("incidents_no_delete", "DELETE ON incidents"),
            ("incidents_facts_fixed", f"UPDATE OF {', '.join(INCIDENT_FACTS)} ON incidents"),
            ("incidents_reported_final", "UPDATE ON incidents WHEN OLD.status = 'reported'"),
        ]:
            verb = event.split()[0].lower()
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {event} "
                f"BEGIN SELECT RAISE(ABORT, '{verb} {_REFUSED}'); END"
            )


def _drop_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for name in ("incidents_reported_final", "incidents_facts_fixed", "incidents_no_delete"):
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON incidents")
        elif dialect == "sqlite":
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_index(op.f("ix_incidents_deadline"), table_name="incidents")
    op.drop_index("ix_incidents_contract_opened_at", table_name="incidents")
    op.drop_table("incidents")

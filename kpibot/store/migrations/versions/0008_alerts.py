"""Alerts and subscriptions: watches and digests, mutes, the alert ledger and the alert runs.

* ``subscriptions``: a watch or a digest, for a person (direct messages) or a channel;
* ``mutes``: a person or channel that muted a contract until a moment;
* ``alerts``: one row per (contract, kind, subject, period), so each alert fires once;
* ``alert_runs``: the submissions whose alerts were worked out (written with their outbox rows);
  every submission stored before this revision gets one, with no alerts: they came before
  alerts existed, and the tick's catch-up must not announce them as news on the day of the upgrade;
* an index on ``submissions.submitted_at`` for the sweep that catches up missed alert runs.

Revision ID: 0008_alerts
Revises: 0007
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0008_alerts"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types, so later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_index(op.f("ix_submissions_submitted_at"), "submissions", ["submitted_at"])
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("owner_email", sa.String(length=300), nullable=True),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=400), nullable=False),
        sa.Column("direct", sa.Boolean(), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=True),
        sa.Column("kpi_code", sa.String(length=64), nullable=True),
        sa.Column("what", sa.String(length=16), nullable=True),
        sa.Column("frequency", sa.String(length=16), nullable=True),
        sa.Column("contracts", _json(), nullable=False),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.Column("last_digest_at", UTC_DATETIME, nullable=True),
        sa.Column("previous_digest_at", UTC_DATETIME, nullable=True),
        sa.CheckConstraint("kind IN ('watch', 'digest')", name=op.f("ck_subscriptions_kind")),
        sa.CheckConstraint(
            "(kind = 'watch' AND contract_id IS NOT NULL AND what IS NOT NULL)"
            " OR (kind = 'digest' AND frequency IS NOT NULL)",
            name=op.f("ck_subscriptions_shape"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_subscriptions_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("key", name=op.f("uq_subscriptions_key")),
    )
    op.create_index("ix_subscriptions_contract_id", "subscriptions", ["contract_id"])
    op.create_index("ix_subscriptions_kind", "subscriptions", ["kind"])
    op.create_table(
        "mutes",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=400), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("until", UTC_DATETIME, nullable=False),
        sa.Column("muted_by", sa.String(length=200), nullable=False),
        sa.Column("muted_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_mutes_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("platform", "channel", "contract_id", name=op.f("pk_mutes")),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("raised_at", UTC_DATETIME, nullable=False),
        sa.Column("submission_id", sa.Integer(), nullable=True),
        sa.Column("cleared_at", UTC_DATETIME, nullable=True),
        sa.Column("messages", _json(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_alerts_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint(
            "contract_id",
            "kind",
            "subject",
            "period",
            name=op.f("uq_alerts_contract_id_kind_subject_period"),
        ),
    )
    op.create_table(
        "alert_runs",
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("processed_at", UTC_DATETIME, nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_alert_runs_submission_id_submissions"),
        ),
        sa.PrimaryKeyConstraint("submission_id", name=op.f("pk_alert_runs")),
    )
    op.execute(
        "INSERT INTO alert_runs (submission_id, processed_at, rows) "
        "SELECT id, submitted_at, 0 FROM submissions"
    )


def downgrade() -> None:
    op.drop_table("alert_runs")
    op.drop_table("alerts")
    op.drop_table("mutes")
    op.drop_index("ix_subscriptions_kind", table_name="subscriptions")
    op.drop_index("ix_subscriptions_contract_id", table_name="subscriptions")
    op.drop_table("subscriptions")
    op.drop_index(op.f("ix_submissions_submitted_at"), table_name="submissions")

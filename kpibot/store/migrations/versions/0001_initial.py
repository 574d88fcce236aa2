"""The initial schema: contracts, KPIs, targets, submissions, figures, audit, outbox, scheduler.

Also installs triggers that keep ``audit_events`` and the facts of ``figures`` append-only
(only ``figures.status`` may be updated), on SQLite and PostgreSQL alike.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types, so that later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)

# Every figure column except ``status`` is a fact that must never change after insert.
FIGURE_FACTS = (
    "id",
    "contract_id",
    "kpi_code",
    "period_label",
    "period_start",
    "period_end",
    "period_kind",
    "value",
    "numerator",
    "denominator",
    "benchmark",
    "submission_id",
    "submitted_by",
    "submitted_at",
    "late",
    "note",
    "supersedes_id",
    "amendment_reason",
)


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "contracts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("provider_name", sa.String(length=300), nullable=False),
        sa.Column("commissioner_name", sa.String(length=300), nullable=False),
        sa.Column("definition", _json(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("loaded_at", UTC_DATETIME, nullable=False),
        sa.Column("loaded_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contracts")),
    )
    op.create_table(
        "kpis",
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=True),
        sa.Column("polarity", sa.String(length=16), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_kpis_contract_id_contracts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contract_id", "code", name=op.f("pk_kpis")),
    )
    op.create_table(
        "targets",
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("kpi_code", sa.String(length=64), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("target_text", sa.Text(), nullable=True),
        sa.Column("tolerance_text", sa.Text(), nullable=True),
        sa.Column("critical_text", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contract_id", "kpi_code"],
            ["kpis.contract_id", "kpis.code"],
            name=op.f("fk_targets_contract_id_kpi_code_kpis"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("contract_id", "kpi_code", "year", name=op.f("pk_targets")),
    )
    op.create_table(
        "submissions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("submitted_at", UTC_DATETIME, nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("filename", sa.String(length=500), nullable=True),
        sa.Column("row_count", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "source IN ('chat', 'import', 'cli', 'history', 'api')",
            name=op.f("ck_submissions_source"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_submissions_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submissions")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_submissions_idempotency_key")),
    )
    op.create_index(op.f("ix_submissions_contract_id"), "submissions", ["contract_id"])
    op.create_table(
        "figures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("kpi_code", sa.String(length=64), nullable=False),
        sa.Column("period_label", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("period_kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("numerator", sa.Float(), nullable=True),
        sa.Column("denominator", sa.Float(), nullable=True),
        sa.Column("benchmark", sa.Float(), nullable=True),
        sa.Column("submission_id", sa.Integer(), nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("submitted_at", UTC_DATETIME, nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("amendment_reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="submitted", nullable=False),
        sa.CheckConstraint(
            "period_kind IN ('quarter', 'year', 'month')", name=op.f("ck_figures_period_kind")
        ),
        sa.CheckConstraint("period_end >= period_start", name=op.f("ck_figures_period_dates")),
        sa.CheckConstraint(
            "status IN ('submitted', 'pending', 'approved', 'queried')",
            name=op.f("ck_figures_status"),
        ),
        sa.CheckConstraint(
            "numerator IS NULL OR numerator >= 0", name=op.f("ck_figures_numerator")
        ),
        sa.CheckConstraint(
            "denominator IS NULL OR denominator >= 0", name=op.f("ck_figures_denominator")
        ),
        sa.CheckConstraint(
            "supersedes_id IS NULL OR amendment_reason IS NOT NULL",
            name=op.f("ck_figures_amendment_reason"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_figures_contract_id_contracts")
        ),
        sa.ForeignKeyConstraint(
            ["submission_id"],
            ["submissions.id"],
            name=op.f("fk_figures_submission_id_submissions"),
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"], ["figures.id"], name=op.f("fk_figures_supersedes_id_figures")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_figures")),
        sa.UniqueConstraint("supersedes_id", name=op.f("uq_figures_supersedes_id")),
    )
    op.create_index(
        "ix_figures_contract_kpi_period", "figures", ["contract_id", "kpi_code", "period_label"]
    )
    op.create_index(
        "uq_figures_first_version",
        "figures",
        ["contract_id", "kpi_code", "period_label"],
        unique=True,
        sqlite_where=sa.text("supersedes_id IS NULL"),
        postgresql_where=sa.text("supersedes_id IS NULL"),
    )
    op.create_index(op.f("ix_figures_submission_id"), "figures", ["submission_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", _json(), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('ok', 'refused', 'error')", name=op.f("ck_audit_events_outcome")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index(op.f("ix_audit_events_at"), "audit_events", ["at"])
    op.create_index("ix_audit_events_contract_at", "audit_events", ["contract_id", "at"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=300), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("audience", sa.String(length=32), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=200), nullable=False),
        sa.Column("period", sa.String(length=32), nullable=True),
        sa.Column("step", sa.String(length=32), nullable=True),
        sa.Column("due_at", UTC_DATETIME, nullable=False),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTC_DATETIME, nullable=False),
        sa.Column("claimed_by", sa.String(length=200), nullable=True),
        sa.Column("claimed_at", UTC_DATETIME, nullable=True),
        sa.Column("sent_at", UTC_DATETIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTC_DATETIME, nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'claimed', 'sent', 'failed')", name=op.f("ck_outbox_status")
        ),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_attempts")),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_outbox_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(op.f("ix_outbox_contract_id"), "outbox", ["contract_id"])
    op.create_index("ix_outbox_status_next_attempt_at", "outbox", ["status", "next_attempt_at"])
    op.create_table(
        "scheduler_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("watermark", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_state")),
    )
    _create_append_only_triggers()


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            """
            CREATE FUNCTION kpibot_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '% of % rows is not allowed: they are append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
            END $$
            """
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION kpibot_refuse_change()"
        )
        op.execute(
            f"CREATE TRIGGER figures_append_only BEFORE DELETE OR UPDATE OF "
            f"{', '.join(FIGURE_FACTS)} ON figures "
            "FOR EACH ROW EXECUTE FUNCTION kpibot_refuse_change()"
        )
    elif dialect == "sqlite":
        for table, event in [
            ("audit_events", "UPDATE"),
            ("audit_events", "DELETE"),
            ("figures", f"UPDATE OF {', '.join(FIGURE_FACTS)}"),
            ("figures", "DELETE"),
        ]:
            verb = event.split()[0].lower()
            op.execute(
                f"CREATE TRIGGER {table}_no_{verb} BEFORE {event} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, '{verb} of {table} rows is not allowed: "
                "they are append-only'); END"
            )


def _drop_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS figures_append_only ON figures")
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS kpibot_refuse_change()")
    elif dialect == "sqlite":
        for name in [
            "audit_events_no_update",
            "audit_events_no_delete",
            "figures_no_update",
            "figures_no_delete",
        ]:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")


def downgrade() -> None:
    _drop_append_only_triggers()
    op.drop_table("scheduler_state")
    op.drop_index("ix_outbox_status_next_attempt_at", table_name="outbox")
    op.drop_index(op.f("ix_outbox_contract_id"), table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_audit_events_contract_at", table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_at"), table_name="audit_events")
    op.drop_table("audit_events")
    op.drop_index(op.f("ix_figures_submission_id"), table_name="figures")
    op.drop_index("uq_figures_first_version", table_name="figures")
    op.drop_index("ix_figures_contract_kpi_period", table_name="figures")
    op.drop_table("figures")
    op.drop_index(op.f("ix_submissions_contract_id"), table_name="submissions")
    op.drop_table("submissions")
    op.drop_table("targets")
    op.drop_table("kpis")
    op.drop_table("contracts")

"""Underperformance action plans (with their actions and transition log) and expenditure statements
(with their exception reports).

Also installs triggers, on SQLite and PostgreSQL alike, that keep them append-only: no row is ever
deleted; a plan's facts never change (only its state moves); an action's facts never change and a
done action is final; the transition log, statements and exception reports are never updated.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types and value lists, so later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)
STATES = "('opened', 'plan_agreed', 'under_review', 'final_plan', 'final_review', 'closed', 'penalty', 'decommissioned')"
PLAN_FACTS = (
    "id",
    "contract_id",
    "opened_at",
    "opened_by",
    "trigger_key",
    "trigger_text",
    "kpis",
    "areas",
)
ACTION_FACTS = (
    "id",
    "plan_id",
    "number",
    "description",
    "owner",
    "due",
    "stage",
    "added_at",
    "added_by",
)
TABLES = (
    "expenditure_exceptions",
    "expenditure_statements",
    "action_plan_transitions",
    "action_plan_actions",
    "action_plans",
)


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "action_plans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_since", UTC_DATETIME, nullable=False),
        sa.Column("opened_at", UTC_DATETIME, nullable=False),
        sa.Column("opened_by", sa.String(length=200), nullable=False),
        sa.Column("trigger_key", sa.String(length=100), nullable=True),
        sa.Column("trigger_text", sa.Text(), nullable=True),
        sa.Column("kpis", _json(), nullable=False),
        sa.Column("areas", sa.Text(), nullable=False),
        sa.CheckConstraint(f"state IN {STATES}", name=op.f("ck_action_plans_state")),
        sa.CheckConstraint("length(trim(areas)) > 0", name=op.f("ck_action_plans_areas")),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_action_plans_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_plans")),
        sa.UniqueConstraint(
            "contract_id", "trigger_key", name=op.f("uq_action_plans_contract_id_trigger_key")
        ),
    )
    op.create_index("ix_action_plans_contract_state", "action_plans", ["contract_id", "state"])
    op.create_table(
        "action_plan_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner", sa.String(length=200), nullable=False),
        sa.Column("due", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=8), nullable=False),
        sa.Column("added_at", UTC_DATETIME, nullable=False),
        sa.Column("added_by", sa.String(length=200), nullable=False),
        sa.Column("done_at", UTC_DATETIME, nullable=True),
        sa.Column("done_by", sa.String(length=200), nullable=True),
        sa.Column("done_note", sa.Text(), nullable=True),
        sa.CheckConstraint("number >= 1", name=op.f("ck_action_plan_actions_number")),
        sa.CheckConstraint("stage IN ('plan', 'final')", name=op.f("ck_action_plan_actions_stage")),
        sa.CheckConstraint(
            "length(trim(description)) > 0", name=op.f("ck_action_plan_actions_description")
        ),
        sa.CheckConstraint("length(trim(owner)) > 0", name=op.f("ck_action_plan_actions_owner")),
        sa.CheckConstraint(
            "(done_at IS NULL AND done_by IS NULL) OR (done_at IS NOT NULL AND done_by IS NOT NULL)",
            name=op.f("ck_action_plan_actions_done"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["action_plans.id"],
            name=op.f("fk_action_plan_actions_plan_id_action_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_plan_actions")),
        sa.UniqueConstraint(
            "plan_id", "number", name=op.f("uq_action_plan_actions_plan_id_number")
        ),
    )
    op.create_table(
        "action_plan_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("from_state", sa.String(length=16), nullable=True),
        sa.Column("to_state", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("at", UTC_DATETIME, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("action_number", sa.Integer(), nullable=True),
        sa.CheckConstraint(
            f"to_state IN {STATES}", name=op.f("ck_action_plan_transitions_to_state")
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["action_plans.id"],
            name=op.f("fk_action_plan_transitions_plan_id_action_plans"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_action_plan_transitions")),
    )
    op.create_index(
        "ix_action_plan_transitions_plan_at", "action_plan_transitions", ["plan_id", "at"]
    )
    op.create_table(
        "expenditure_statements",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("period_label", sa.String(length=32), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("actual_pence", sa.BigInteger(), nullable=False),
        sa.Column("projected_pence", sa.BigInteger(), nullable=False),
        sa.Column("submitted_at", UTC_DATETIME, nullable=False),
        sa.Column("submitted_by", sa.String(length=200), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("correction", sa.Text(), nullable=True),
        sa.CheckConstraint("actual_pence >= 0", name=op.f("ck_expenditure_statements_actual")),
        sa.CheckConstraint(
            "projected_pence >= 0", name=op.f("ck_expenditure_statements_projected")
        ),
        sa.CheckConstraint(
            "period_end >= period_start", name=op.f("ck_expenditure_statements_period_dates")
        ),
        sa.CheckConstraint(
            "supersedes_id IS NULL OR correction IS NOT NULL",
            name=op.f("ck_expenditure_statements_correction"),
        ),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_expenditure_statements_contract_id_contracts"),
        ),
        sa.ForeignKeyConstraint(
            ["supersedes_id"],
            ["expenditure_statements.id"],
            name=op.f("fk_expenditure_statements_supersedes_id_expenditure_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expenditure_statements")),
        sa.UniqueConstraint("supersedes_id", name=op.f("uq_expenditure_statements_supersedes_id")),
    )
    op.create_index(
        "uq_expenditure_statements_first_version",
        "expenditure_statements",
        ["contract_id", "period_label"],
        unique=True,
        sqlite_where=sa.text("supersedes_id IS NULL"),
        postgresql_where=sa.text("supersedes_id IS NULL"),
    )
    op.create_table(
        "expenditure_exceptions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("period_label", sa.String(length=32), nullable=False),
        sa.Column("statement_id", sa.Integer(), nullable=False),
        sa.Column("reasons", sa.Text(), nullable=False),
        sa.Column("measures", sa.Text(), nullable=False),
        sa.Column("budget_pence", sa.BigInteger(), nullable=False),
        sa.Column("filed_at", UTC_DATETIME, nullable=False),
        sa.Column("filed_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "length(trim(reasons)) > 0", name=op.f("ck_expenditure_exceptions_reasons")
        ),
        sa.CheckConstraint(
            "length(trim(measures)) > 0", name=op.f("ck_expenditure_exceptions_measures")
        ),
        sa.CheckConstraint("budget_pence >= 0", name=op.f("ck_expenditure_exceptions_budget")),
        sa.ForeignKeyConstraint(
            ["contract_id"],
            ["contracts.id"],
            name=op.f("fk_expenditure_exceptions_contract_id_contracts"),
        ),
        sa.ForeignKeyConstraint(
            ["statement_id"],
            ["expenditure_statements.id"],
            name=op.f("fk_expenditure_exceptions_statement_id_expenditure_statements"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expenditure_exceptions")),
    )
    op.create_index(
        "ix_expenditure_exceptions_contract_period",
        "expenditure_exceptions",
        ["contract_id", "period_label"],
    )
    _create_append_only_triggers()


def _guards() -> list[tuple[str, str, str]]:
    """(trigger name, table, what it refuses): the same guards on both backends."""
    out: list[tuple[str, str, str]] = []
    for table in TABLES:
        out.append((f"{table}_no_delete", table, "DELETE"))
    out += [
        ("action_plans_facts_fixed", "action_plans", f"UPDATE OF {', '.join(PLAN_FACTS)}"),
        (
            "action_plan_actions_facts_fixed",
            "action_plan_actions",
            f"UPDATE OF {', '.join(ACTION_FACTS)}",
        ),
        ("action_plan_actions_done_final", "action_plan_actions", "UPDATE WHEN done"),
        ("action_plan_transitions_no_update", "action_plan_transitions", "UPDATE"),
        ("expenditure_statements_no_update", "expenditure_statements", "UPDATE"),
        ("expenditure_exceptions_no_update", "expenditure_exceptions", "UPDATE"),
    ]
    return out


def _create_append_only_triggers() -> None:
    dialect = op.get_bind().dialect.name
    for name, table, event in _guards():
        done_only = event == "UPDATE WHEN done"
        if dialect == "postgresql":
            # kpibot_refuse_change() comes from revision 0001.
            when = " WHEN (OLD.done_at IS NOT NULL)" if done_only else ""
            what = "UPDATE" if done_only else event
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {what} ON {table} FOR EACH ROW{when} "
                "EXECUTE FUNCTION kpibot_refuse_change()"
            )
        elif dialect == "sqlite":
            what = (
                f"UPDATE ON {table} WHEN OLD.done_at IS NOT NULL"
                if done_only
                else f"{event} ON {table}"
            )
            verb = event.split()[0].lower()
            op.execute(
                f"CREATE TRIGGER {name} BEFORE {what} BEGIN SELECT RAISE(ABORT, "
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
    op.drop_index("ix_expenditure_exceptions_contract_period", table_name="expenditure_exceptions")
    op.drop_table("expenditure_exceptions")
    op.drop_index("uq_expenditure_statements_first_version", table_name="expenditure_statements")
    op.drop_table("expenditure_statements")
    op.drop_index("ix_action_plan_transitions_plan_at", table_name="action_plan_transitions")
    op.drop_table("action_plan_transitions")
    op.drop_table("action_plan_actions")
    op.drop_index("ix_action_plans_contract_state", table_name="action_plans")
    op.drop_table("action_plans")

"""Chat conversations (Teams conversation references for proactive messages) and channel bindings.

``conversations`` keeps, per platform and conversation, the reference a bot needs to post there
unprompted (the ``serviceUrl`` above all), from the first event seen there. ``bindings`` holds the
channels bound to a contract with ``kpi bind``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types, so that later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)


def _json() -> sa.JSON:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "conversations",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("conversation_id", sa.String(length=400), nullable=False),
        sa.Column("service_url", sa.String(length=500), nullable=False),
        sa.Column("tenant_id", sa.String(length=100), nullable=True),
        sa.Column("conversation_type", sa.String(length=32), nullable=True),
        sa.Column("bot_id", sa.String(length=200), nullable=False),
        sa.Column("reference", _json(), nullable=False),
        sa.Column("first_seen", UTC_DATETIME, nullable=False),
        sa.Column("last_seen", UTC_DATETIME, nullable=False),
        sa.PrimaryKeyConstraint("platform", "conversation_id", name=op.f("pk_conversations")),
    )
    op.create_table(
        "bindings",
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=400), nullable=False),
        sa.Column("contract_id", sa.String(length=64), nullable=False),
        sa.Column("bound_by", sa.String(length=200), nullable=False),
        sa.Column("bound_at", UTC_DATETIME, nullable=False),
        sa.ForeignKeyConstraint(
            ["contract_id"], ["contracts.id"], name=op.f("fk_bindings_contract_id_contracts")
        ),
        sa.PrimaryKeyConstraint("platform", "channel", name=op.f("pk_bindings")),
    )
    op.create_index(op.f("ix_bindings_contract_id"), "bindings", ["contract_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_bindings_contract_id"), table_name="bindings")
    op.drop_table("bindings")
    op.drop_table("conversations")

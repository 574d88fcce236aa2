"""Values shared between replicas: long Slack button values and the generated signing key.

A Confirm button whose signed token outgrows Slack's 2,000-character button value carries a
reference instead; the value behind it lives here, so a click that lands on another replica
finds it. Without ``KPIBOT_SECRET_KEY`` the key that signs confirmations is generated once and
kept here too, so every replica on the database signs and verifies with the same key.

Revision ID: 0012_operations
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_operations"
down_revision: str | Sequence[str] | None = "0009_money"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the column type, so that later model changes cannot rewrite history.
UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "shared_values",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.Column("expires_at", UTC_DATETIME, nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shared_values")),
    )
    op.create_index(op.f("ix_shared_values_expires_at"), "shared_values", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_shared_values_expires_at"), table_name="shared_values")
    op.drop_table("shared_values")

"""Phrase readings kept beside each contract: ``contracts.readings`` and ``readings_key``.

A contract's first status in a process (after a start or an amendment) compiles its terms;
reading every target phrase again took most of that time (about 30 ms for 40 KPIs). The store
now keeps the readings with the contract, with the grammar they were made by
(``kpibot.store.readings``); readings of another grammar are ignored and the phrases read
afresh. Contracts loaded before this revision have none until they are loaded again.

Revision ID: 0015_readings
Revises: 0014_scale
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_readings"
down_revision: str | Sequence[str] | None = "0014_scale"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("contracts") as batch:
        batch.add_column(sa.Column("readings", sa.Text(), nullable=True))
        batch.add_column(sa.Column("readings_key", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contracts") as batch:
        batch.drop_column("readings_key")
        batch.drop_column("readings")

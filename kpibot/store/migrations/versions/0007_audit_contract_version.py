"""An index for a contract's version: the latest audit entry id per contract.

``Services.contract_version`` reads ``max(id) … where contract_id = ?`` on every ``/kpi status``;
with ``(contract_id, id)`` indexed that is one index lookup on SQLite and PostgreSQL alike.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_audit_events_contract_id", "audit_events", ["contract_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_contract_id", table_name="audit_events")

"""An index for what a contract received since a status refresh: figures by (contract, id).

A cached status overview is refreshed after a submission by reading only the figures stored
since it was built (``FigureRepository.added_since``) and each contract's latest figure id
(``latest_ids``); with ``(contract_id, id)`` indexed both are index range reads.

Revision ID: 0014_scale
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014_scale"
down_revision: str | Sequence[str] | None = "0012_operations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_figures_contract_id", "figures", ["contract_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_figures_contract_id", table_name="figures")

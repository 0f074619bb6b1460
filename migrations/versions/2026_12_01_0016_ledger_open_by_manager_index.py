"""Drop the ledger's open-rows-by-manager index: no query reads it (a manager's current book
is read from customers.manager_id, kept equal to the open ledger row's owner by the guard),
and every ledger row a move opens paid one more index entry for it

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_assignments_manager_open", table_name="assignments")


def downgrade() -> None:
    op.create_index(
        "ix_assignments_manager_open",
        "assignments",
        ["manager_id"],
        unique=False,
        postgresql_where=sa.text("ended_at IS NULL"),
    )

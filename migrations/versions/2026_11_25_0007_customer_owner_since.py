"""customers.owner_since, backfilled from the open ledger rows

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 01:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("owner_since", sa.DateTime(timezone=True), nullable=True))
    op.execute(
        "UPDATE customers AS c SET owner_since = a.started_at FROM assignments AS a "
        "WHERE a.customer_id = c.id AND a.ended_at IS NULL"
    )


def downgrade() -> None:
    op.drop_column("customers", "owner_since")

"""Scenarios: draft re-divisions previewed and activated as one; ledger reason redivision

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_REASONS = (
    "'manual', 'auto', 'rebalance', 'handover', 'interim', 'cover', 'cover_return', "
    "'refusal', 'rollback', 'webhook', 'import', 'seed', 'repair'"
)


def upgrade() -> None:
    op.create_table(
        "scenarios",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("state", sa.Text(), server_default="draft", nullable=False),
        sa.Column("changes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("preview", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("preview_options", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("preview_digests", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("preview_moves", sa.LargeBinary(), nullable=True),
        sa.Column("previewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("previewed_by", sa.Text(), nullable=True),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("activated_by", sa.Text(), nullable=True),
        sa.Column("activation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.CheckConstraint(
            "state IN ('draft', 'activated', 'archived')", name=op.f("ck_scenarios_state_valid")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scenarios")),
    )
    op.create_index("ix_scenarios_state", "scenarios", ["state", "created_at"])
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"),
        "assignments",
        f"reason IN ({_OLD_REASONS}, 'redivision')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"), "assignments", f"reason IN ({_OLD_REASONS})"
    )
    op.drop_index("ix_scenarios_state", table_name="scenarios")
    op.drop_table("scenarios")

"""Ownership guard: violations, reviewed placement plans, round-robin cursors, audit details

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 16:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_REASONS = (
    "'manual', 'auto', 'rebalance', 'handover', 'interim', 'cover', 'cover_return', "
    "'refusal', 'rollback', 'webhook', 'import', 'seed'"
)


def upgrade() -> None:
    op.create_table(
        "ownership_violations",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("customer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("manager_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("rules", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column(
            "detected_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolution", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_ownership_violations_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_ownership_violations_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ownership_violations")),
    )
    op.create_index(
        "uq_ownership_violations_open_per_customer",
        "ownership_violations",
        ["customer_id"],
        unique=True,
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_index(
        "ix_ownership_violations_manager_open",
        "ownership_violations",
        ["manager_id"],
        postgresql_where=sa.text("resolved_at IS NULL"),
    )
    op.create_table(
        "placement_plans",
        sa.Column("token", sa.Text(), nullable=False),
        sa.Column("request", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("digests", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rules_version", sa.Integer(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_placement_plans")),
    )
    op.create_table(
        "rotation_cursors",
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("last_manager_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("pool", name=op.f("pk_rotation_cursors")),
    )
    op.add_column(
        "audit_events",
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"), "assignments", f"reason IN ({_OLD_REASONS}, 'repair')"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"), "assignments", f"reason IN ({_OLD_REASONS})"
    )
    op.drop_column("audit_events", "details")
    op.drop_table("rotation_cursors")
    op.drop_table("placement_plans")
    op.drop_index("ix_ownership_violations_manager_open", table_name="ownership_violations")
    op.drop_index("uq_ownership_violations_open_per_customer", table_name="ownership_violations")
    op.drop_table("ownership_violations")

"""Availability, intake caps and the pool: manager absences, intake caps, follow-up
activities, reclaim policies; ledger reasons claim and reclaimed_inactive

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_REASONS = (
    "'manual', 'auto', 'rebalance', 'handover', 'interim', 'cover', 'cover_return', "
    "'refusal', 'rollback', 'webhook', 'import', 'seed', 'repair', 'redivision'"
)
_REASONS = f"{_OLD_REASONS}, 'claim', 'reclaimed_inactive'"


def upgrade() -> None:
    op.add_column("managers", sa.Column("max_new_per_day", sa.Integer(), nullable=True))
    op.add_column("managers", sa.Column("max_new_per_week", sa.Integer(), nullable=True))
    op.create_check_constraint(
        op.f("ck_managers_max_new_per_day_non_negative"), "managers", "max_new_per_day >= 0"
    )
    op.create_check_constraint(
        op.f("ck_managers_max_new_per_week_non_negative"), "managers", "max_new_per_week >= 0"
    )
    op.create_table(
        "manager_absences",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        sa.Column("manager_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("cover", sa.Text(), server_default="none", nullable=False),
        sa.Column("interim_manager_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("cover_handover_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
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
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_manager_absences_period_valid")),
        sa.CheckConstraint(
            "kind IN ('leave', 'sick', 'out_of_office', 'training', 'other')",
            name=op.f("ck_manager_absences_kind_valid"),
        ),
        sa.CheckConstraint(
            "cover IN ('none', 'interim', 'auto')", name=op.f("ck_manager_absences_cover_valid")
        ),
        sa.CheckConstraint(
            "(cover = 'interim') = (interim_manager_id IS NOT NULL)",
            name=op.f("ck_manager_absences_interim_named"),
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_manager_absences_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["interim_manager_id"],
            ["managers.id"],
            name=op.f("fk_manager_absences_interim_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["cover_handover_id"],
            ["handovers.id"],
            name=op.f("fk_manager_absences_cover_handover_id_handovers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_absences")),
    )
    op.create_index("ix_manager_absences_manager", "manager_absences", ["manager_id", "starts_at"])

    op.add_column(
        "customers", sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.create_table(
        "customer_activities",
        sa.Column(
            "id",
            postgresql.UUID(as_uuid=True),
            server_default=sa.text("gen_random_uuid()"),
            nullable=False,
        ),
        sa.Column("customer_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_manager_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("external_id", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('call', 'email', 'meeting', 'visit', 'message', 'note', 'other')",
            name=op.f("ck_customer_activities_kind_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_activities_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["by_manager_id"],
            ["managers.id"],
            name=op.f("fk_customer_activities_by_manager_id_managers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_activities")),
        sa.UniqueConstraint("external_id", name=op.f("uq_customer_activities_external_id")),
    )
    op.create_index(
        "ix_customer_activities_customer_at", "customer_activities", ["customer_id", "at"]
    )

    op.add_column(
        "customers", sa.Column("reclaim_warned_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column(
        "customers", sa.Column("first_touch_missed_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("assignments", sa.Column("end_reason", sa.Text(), nullable=True))
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"), "assignments", f"reason IN ({_REASONS})"
    )
    op.create_check_constraint(
        op.f("ck_assignments_end_reason_valid"),
        "assignments",
        f"end_reason IS NULL OR end_reason IN ({_REASONS})",
    )
    op.create_table(
        "reclaim_policies",
        sa.Column("tier_code", sa.Text(), nullable=False),
        sa.Column("inactive_days", sa.Integer(), nullable=False),
        sa.Column("warning_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cooldown_days", sa.Integer(), server_default="0", nullable=False),
        sa.Column("daily_claim_cap", sa.Integer(), nullable=True),
        sa.Column("first_touch_hours", sa.Integer(), nullable=True),
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
            "inactive_days > 0", name=op.f("ck_reclaim_policies_inactive_days_positive")
        ),
        sa.CheckConstraint(
            "warning_days >= 0 AND warning_days < inactive_days",
            name=op.f("ck_reclaim_policies_warning_days_range"),
        ),
        sa.CheckConstraint(
            "cooldown_days >= 0", name=op.f("ck_reclaim_policies_cooldown_days_non_negative")
        ),
        sa.CheckConstraint(
            "daily_claim_cap >= 0", name=op.f("ck_reclaim_policies_daily_claim_cap_non_negative")
        ),
        sa.CheckConstraint(
            "first_touch_hours > 0", name=op.f("ck_reclaim_policies_first_touch_hours_positive")
        ),
        sa.ForeignKeyConstraint(
            ["tier_code"],
            ["tiers.code"],
            name=op.f("fk_reclaim_policies_tier_code_tiers"),
            onupdate="CASCADE",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("tier_code", name=op.f("pk_reclaim_policies")),
    )


def downgrade() -> None:
    op.drop_table("reclaim_policies")
    op.drop_constraint(op.f("ck_assignments_end_reason_valid"), "assignments", type_="check")
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"), "assignments", f"reason IN ({_OLD_REASONS})"
    )
    op.drop_column("assignments", "end_reason")
    op.drop_column("customers", "first_touch_missed_at")
    op.drop_column("customers", "reclaim_warned_at")
    op.drop_index("ix_customer_activities_customer_at", table_name="customer_activities")
    op.drop_table("customer_activities")
    op.drop_column("customers", "last_activity_at")
    op.drop_index("ix_manager_absences_manager", table_name="manager_absences")
    op.drop_table("manager_absences")
    op.drop_constraint(op.f("ck_managers_max_new_per_week_non_negative"), "managers", type_="check")
    op.drop_constraint(op.f("ck_managers_max_new_per_day_non_negative"), "managers", type_="check")
    op.drop_column("managers", "max_new_per_week")
    op.drop_column("managers", "max_new_per_day")

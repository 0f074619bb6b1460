"""Rotation with memory, working hours, first-touch re-placement: manager rotation weight,
time zone and working hours; rotation counters; the reclaim policy's first-touch action;
ledger reason first_touch_missed

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_REASONS = (
    "'manual', 'auto', 'rebalance', 'handover', 'interim', 'cover', 'cover_return', "
    "'refusal', 'rollback', 'webhook', 'import', 'seed', 'repair', 'redivision', "
    "'claim', 'reclaimed_inactive'"
)
_REASONS = f"{_OLD_REASONS}, 'first_touch_missed'"


def _reasons(allowed: str) -> None:
    op.drop_constraint(op.f("ck_assignments_end_reason_valid"), "assignments", type_="check")
    op.drop_constraint(op.f("ck_assignments_reason_valid"), "assignments", type_="check")
    op.create_check_constraint(
        op.f("ck_assignments_reason_valid"), "assignments", f"reason IN ({allowed})"
    )
    op.create_check_constraint(
        op.f("ck_assignments_end_reason_valid"),
        "assignments",
        f"end_reason IS NULL OR end_reason IN ({allowed})",
    )


def upgrade() -> None:
    op.add_column(
        "managers",
        sa.Column("rotation_weight", sa.Integer(), server_default="1", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_managers_rotation_weight_range"),
        "managers",
        "rotation_weight BETWEEN 1 AND 1000",
    )
    op.add_column("managers", sa.Column("time_zone", sa.Text(), nullable=True))
    op.add_column(
        "managers",
        sa.Column("working_hours", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.create_table(
        "rotation_counters",
        sa.Column("pool", sa.Text(), nullable=False),
        sa.Column("manager_id", postgresql.UUID(as_uuid=True), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received", sa.Integer(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["manager_id"],
            ["managers.id"],
            name=op.f("fk_rotation_counters_manager_id_managers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pool", "manager_id", name=op.f("pk_rotation_counters")),
    )
    op.add_column(
        "reclaim_policies",
        sa.Column("first_touch_action", sa.Text(), server_default="escalate", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_reclaim_policies_first_touch_action_valid"),
        "reclaim_policies",
        "first_touch_action IN ('escalate', 'replace')",
    )
    _reasons(_REASONS)
    # intake caps count the ledger's last 7 days, set-based: a range over started_at
    op.create_index("ix_assignments_started", "assignments", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_assignments_started", table_name="assignments")
    op.execute("UPDATE assignments SET reason = 'auto' WHERE reason = 'first_touch_missed'")
    op.execute("UPDATE assignments SET end_reason = NULL WHERE end_reason = 'first_touch_missed'")
    _reasons(_OLD_REASONS)
    op.drop_constraint(
        op.f("ck_reclaim_policies_first_touch_action_valid"), "reclaim_policies", type_="check"
    )
    op.drop_column("reclaim_policies", "first_touch_action")
    op.drop_table("rotation_counters")
    op.drop_column("managers", "working_hours")
    op.drop_column("managers", "time_zone")
    op.drop_constraint(op.f("ck_managers_rotation_weight_range"), "managers", type_="check")
    op.drop_column("managers", "rotation_weight")

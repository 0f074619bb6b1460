"""handovers: handovers, items, checklist tasks, audit events; satisfaction scores

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 00:25:46.163710
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "handovers",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("from_manager_id", sa.UUID(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("strategy", sa.Text(), nullable=False),
        sa.Column("successor_id", sa.UUID(), nullable=True),
        sa.Column("interim_manager_id", sa.UUID(), nullable=True),
        sa.Column("interim_applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.Text(), server_default="draft", nullable=False),
        sa.Column("scope", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notify_customers", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("force_transfer_limit", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("prior_manager_status", sa.Text(), nullable=False),
        sa.Column("plan_metrics", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cover_returned_at", sa.DateTime(timezone=True), nullable=True),
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
            "reason IN ('departure', 'leave', 'role_change', 'performance', 'rebalance')",
            name=op.f("ck_handovers_reason_valid"),
        ),
        sa.CheckConstraint(
            "state IN ('draft', 'planned', 'approved', 'executing', 'completed', 'cancelled', 'rolled_back')",
            name=op.f("ck_handovers_state_valid"),
        ),
        sa.CheckConstraint(
            "strategy <> 'successor' OR successor_id IS NOT NULL",
            name=op.f("ck_handovers_successor"),
        ),
        sa.CheckConstraint(
            "strategy IN ('balanced', 'optimal', 'successor', 'round_robin')",
            name=op.f("ck_handovers_strategy_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["from_manager_id"],
            ["managers.id"],
            name=op.f("fk_handovers_from_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["interim_manager_id"],
            ["managers.id"],
            name=op.f("fk_handovers_interim_manager_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"],
            ["managers.id"],
            name=op.f("fk_handovers_successor_id_managers"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handovers")),
    )
    op.create_index(
        "ix_handovers_cover_due",
        "handovers",
        ["until"],
        unique=False,
        postgresql_where=sa.text(
            "state = 'completed' AND until IS NOT NULL AND cover_returned_at IS NULL"
        ),
    )
    op.create_index("ix_handovers_created", "handovers", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_handovers_due",
        "handovers",
        ["effective_at"],
        unique=False,
        postgresql_where=sa.text("state = 'approved'"),
    )
    op.create_index(
        "uq_handovers_open_per_manager",
        "handovers",
        ["from_manager_id"],
        unique=True,
        postgresql_where=sa.text("state IN ('draft', 'planned', 'approved', 'executing')"),
    )
    op.create_table(
        "handover_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("handover_id", sa.UUID(), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=True),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_events_handover_id_handovers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handover_events")),
    )
    op.create_index(
        "ix_handover_events_handover", "handover_events", ["handover_id", "id"], unique=False
    )
    op.create_table(
        "handover_items",
        sa.Column("handover_id", sa.UUID(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("original_manager_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("proposed_manager_id", sa.UUID(), nullable=True),
        sa.Column("score", sa.Numeric(precision=12, scale=6), nullable=True),
        sa.Column("reasons", sa.ARRAY(sa.Text()), server_default="{}", nullable=False),
        sa.Column("explanation", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("override_manager_id", sa.UUID(), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("override_forced", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("override_by", sa.Text(), nullable=True),
        sa.Column("override_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("final_manager_id", sa.UUID(), nullable=True),
        sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("briefing", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("briefing_by", sa.Text(), nullable=True),
        sa.Column("briefing_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("notification_status", sa.Text(), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("refused_manager_id", sa.UUID(), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "notification_status IS NULL OR notification_status IN ('pending', 'sent')",
            name=op.f("ck_handover_items_notification_status_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'proposed', 'overridden', 'unplaced', 'moved', 'pooled', 'skipped', 'refused', 'restored', 'returned')",
            name=op.f("ck_handover_items_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_handover_items_customer_id_customers"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_items_handover_id_handovers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("handover_id", "customer_id", name=op.f("pk_handover_items")),
    )
    op.create_index("ix_handover_items_customer", "handover_items", ["customer_id"], unique=False)
    op.create_index(
        "ix_handover_items_notification_pending",
        "handover_items",
        ["handover_id"],
        unique=False,
        postgresql_where=sa.text("notification_status = 'pending'"),
    )
    op.create_table(
        "handover_tasks",
        sa.Column("handover_id", sa.UUID(), nullable=False),
        sa.Column("task", sa.Text(), nullable=False),
        sa.Column("done", sa.Boolean(), server_default="false", nullable=False),
        sa.Column("done_by", sa.Text(), nullable=True),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "task IN ('customer_list_exported', 'projects_reviewed', 'contracts_finances_reviewed', 'customers_notified', 'team_informed', 'successors_trained')",
            name=op.f("ck_handover_tasks_task_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_tasks_handover_id_handovers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("handover_id", "task", name=op.f("pk_handover_tasks")),
    )
    op.create_table(
        "satisfaction_scores",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=False),
        sa.Column("score", sa.Numeric(precision=4, scale=2), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.Text(), server_default="api", nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "score BETWEEN 0 AND 10", name=op.f("ck_satisfaction_scores_score_range")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_satisfaction_scores_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_satisfaction_scores")),
    )
    op.create_index(
        "ix_satisfaction_scores_customer_at",
        "satisfaction_scores",
        ["customer_id", "recorded_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_satisfaction_scores_customer_at", table_name="satisfaction_scores")
    op.drop_table("satisfaction_scores")
    op.drop_table("handover_tasks")
    op.drop_index(
        "ix_handover_items_notification_pending",
        table_name="handover_items",
        postgresql_where=sa.text("notification_status = 'pending'"),
    )
    op.drop_index("ix_handover_items_customer", table_name="handover_items")
    op.drop_table("handover_items")
    op.drop_index("ix_handover_events_handover", table_name="handover_events")
    op.drop_table("handover_events")
    op.drop_index(
        "uq_handovers_open_per_manager",
        table_name="handovers",
        postgresql_where=sa.text("state IN ('draft', 'planned', 'approved', 'executing')"),
    )
    op.drop_index(
        "ix_handovers_due", table_name="handovers", postgresql_where=sa.text("state = 'approved'")
    )
    op.drop_index("ix_handovers_created", table_name="handovers")
    op.drop_index(
        "ix_handovers_cover_due",
        table_name="handovers",
        postgresql_where=sa.text(
            "state = 'completed' AND until IS NOT NULL AND cover_returned_at IS NULL"
        ),
    )
    op.drop_table("handovers")

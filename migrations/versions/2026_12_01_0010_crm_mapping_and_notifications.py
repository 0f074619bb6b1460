"""CRM field mappings and Zoho sources; handover notifications tied to their deliveries;
batched ownership events

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 15:30:00

A source may say which CRM field holds tier, status, owner and satisfaction (``mapping``;
null = the adapter's defaults) and, for Zoho, which notification channel it listens to.
A handover item's notification names the outbound event that carries it, so it is ``sent``
only once a delivery of that event succeeded (``not_sent`` with the reason otherwise); the
new owners' briefings are tracked the same way, one row per owner; with SMTP configured the
same notifications are also e-mailed (``handover_emails``). A subscription to
``ownership.changed.batch`` receives up to ``batch_size`` changes per delivery.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_sources", sa.Column("mapping", postgresql.JSONB(astext_type=sa.Text())))
    op.add_column("webhook_sources", sa.Column("channel_id", sa.Text()))
    op.drop_constraint(op.f("ck_webhook_sources_adapter_valid"), "webhook_sources", type_="check")
    op.create_check_constraint(
        op.f("ck_webhook_sources_adapter_valid"),
        "webhook_sources",
        "adapter IN ('standard', 'hubspot', 'generic-hmac', 'zoho')",
    )

    op.add_column(
        "webhook_subscriptions",
        sa.Column("batch_size", sa.Integer(), server_default="1000", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_webhook_subscriptions_batch_size_valid"),
        "webhook_subscriptions",
        "batch_size BETWEEN 1 AND 10000",
    )
    op.add_column("handover_items", sa.Column("notification_event_id", sa.UUID()))
    op.add_column("handover_items", sa.Column("notification_error", sa.Text()))
    op.drop_constraint(
        op.f("ck_handover_items_notification_status_valid"), "handover_items", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_handover_items_notification_status_valid"),
        "handover_items",
        "notification_status IS NULL OR notification_status IN ('pending', 'sent', 'not_sent')",
    )
    # the flag these rows waited for never stood for a delivery: say so rather than send late
    op.execute(
        "UPDATE handover_items SET notification_status = 'not_sent',"
        " notification_error = 'executed before notifications were delivered'"
        " WHERE notification_status = 'pending'"
    )
    op.create_table(
        "handover_owner_notifications",
        sa.Column("handover_id", sa.UUID(), nullable=False),
        sa.Column("manager_id", sa.UUID(), nullable=False),
        sa.Column("event_id", sa.UUID(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'not_sent')",
            name=op.f("ck_handover_owner_notifications_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_owner_notifications_handover_id_handovers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "handover_id", "manager_id", name=op.f("pk_handover_owner_notifications")
        ),
    )
    op.create_index(
        "ix_handover_owner_notifications_pending",
        "handover_owner_notifications",
        ["handover_id"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "handover_emails",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("handover_id", sa.UUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.UUID(), nullable=True),
        sa.Column("manager_id", sa.UUID(), nullable=True),
        sa.Column("recipients", sa.ARRAY(sa.Text()), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "next_attempt_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('customer_notification', 'owner_briefing')",
            name=op.f("ck_handover_emails_kind_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')",
            name=op.f("ck_handover_emails_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["handover_id"],
            ["handovers.id"],
            name=op.f("fk_handover_emails_handover_id_handovers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_handover_emails")),
    )
    op.create_index(
        "ix_handover_emails_due",
        "handover_emails",
        ["next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_handover_emails_handover", "handover_emails", ["handover_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_handover_emails_handover", table_name="handover_emails")
    op.drop_index("ix_handover_emails_due", table_name="handover_emails")
    op.drop_table("handover_emails")
    op.drop_index(
        "ix_handover_owner_notifications_pending", table_name="handover_owner_notifications"
    )
    op.drop_table("handover_owner_notifications")
    op.execute(
        "UPDATE handover_items SET notification_status = 'pending'"
        " WHERE notification_status = 'not_sent'"
    )
    op.drop_constraint(
        op.f("ck_handover_items_notification_status_valid"), "handover_items", type_="check"
    )
    op.create_check_constraint(
        op.f("ck_handover_items_notification_status_valid"),
        "handover_items",
        "notification_status IS NULL OR notification_status IN ('pending', 'sent')",
    )
    op.drop_column("handover_items", "notification_error")
    op.drop_constraint(
        op.f("ck_webhook_subscriptions_batch_size_valid"), "webhook_subscriptions", type_="check"
    )
    op.drop_column("webhook_subscriptions", "batch_size")
    op.drop_column("handover_items", "notification_event_id")
    op.execute("DELETE FROM webhook_sources WHERE adapter = 'zoho'")
    op.drop_constraint(op.f("ck_webhook_sources_adapter_valid"), "webhook_sources", type_="check")
    op.create_check_constraint(
        op.f("ck_webhook_sources_adapter_valid"),
        "webhook_sources",
        "adapter IN ('standard', 'hubspot', 'generic-hmac')",
    )
    op.drop_column("webhook_sources", "channel_id")
    op.drop_column("webhook_sources", "mapping")
